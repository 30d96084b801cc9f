"""Encryption of every Temporal payload the product writes, bound to where it belongs.

Workflow and activity inputs and results, Update, Signal and Query arguments and results, and
(through the failure converter) failure messages and stack traces go to Temporal encrypted with
AES-GCM under the newest payload key (``dsr.keyring``). Each payload names, in its metadata,
its key and the namespace and workflow it belongs to, and all three are bound as associated
data: a payload copied into another workflow no longer matches. The SDK tells the codec where
each payload goes or comes from (``WithSerializationContext``); a decoder compares the binding
with that context exactly, or, for a workflow that a Schedule starts (its id is the Schedule's
configured id, a dash and the time), by the configured id as a prefix. Without a context (the
codec server, a history read by an operator) the binding is still authenticated and can be
read from the metadata.

Only the product's own payloads are trusted. One that is not (unencrypted, under an unknown
key, failing authentication, unbound under a bound key, or bound to another workflow) is never
an exception here: the codec runs over a whole workflow activation, and one stray payload
would fail a genuine request's task. It decodes to a refusal marker instead, which the
product's converter (``dsr.converter``) refuses where it is used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from dsr.keyring import Keyring, KeyringError, UnknownKeyError

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NAMESPACE_METADATA = "dsr-namespace"
WORKFLOW_METADATA = "dsr-workflow-id"
PREFIX_METADATA = "dsr-workflow-id-prefix"
REFUSED_ENCODING = b"binary/dsr-refused"
REFUSAL_METADATA = "dsr-refusal"
NONCE_BYTES = 12
# The workflow ids the product's Schedules start (each run's id is this, "-" and the time).
PURGE_RUN_ID = "dsr-confirmation-purge-run"
SWEEP_RUN_ID = "dsr-retention-sweep-run"
ANCHOR_RUN_ID = "dsr-ledger-anchor-run"
SCHEDULED_WORKFLOW_IDS = frozenset({PURGE_RUN_ID, SWEEP_RUN_ID, ANCHOR_RUN_ID})


class DecryptionError(KeyringError):
    """A payload does not decrypt under the key it names: tampered with or corrupted."""


class Refusal(DecryptionError):
    """A payload that is not the product's; ``reason`` is one of the REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


REASONS = ("unencrypted", "unknown-key", "unauthenticated", "unbound", "other-workflow")


@dataclass(frozen=True)
class Binding:
    """Where a payload belongs: a namespace and a workflow id (or, for a workflow a Schedule
    starts, the Schedule's configured id as a prefix)."""

    namespace: str
    workflow_id: str
    prefix: bool = False

    @classmethod
    def of(cls, context: SerializationContext) -> Binding | None:
        kinds = WorkflowSerializationContext | ActivitySerializationContext
        if isinstance(context, kinds) and context.workflow_id:
            scheduled = context.workflow_id in SCHEDULED_WORKFLOW_IDS
            return cls(context.namespace, context.workflow_id, scheduled)
        return None

    @classmethod
    def read(cls, payload: Payload) -> Binding | None:
        namespace = payload.metadata.get(NAMESPACE_METADATA)
        if namespace is None:
            return None
        prefix = payload.metadata.get(PREFIX_METADATA)
        workflow = prefix if prefix is not None else payload.metadata.get(WORKFLOW_METADATA, b"")
        return cls(namespace.decode(errors="replace"), workflow.decode(errors="replace"),
                   prefix is not None)

    def stamp(self, metadata: dict[str, bytes]) -> None:
        metadata[NAMESPACE_METADATA] = self.namespace.encode()
        metadata[PREFIX_METADATA if self.prefix else WORKFLOW_METADATA] = self.workflow_id.encode()

    def associated(self, key_id: bytes) -> bytes:
        kind = b"prefix" if self.prefix else b"id"
        return b"\x00".join((key_id, self.namespace.encode(), kind, self.workflow_id.encode()))

    def admits(self, context: Binding) -> bool:
        """Whether a payload bound here may be read where ``context`` says it is."""
        if self.namespace != context.namespace:
            return False
        if self.prefix:
            wanted = context.workflow_id
            return wanted == self.workflow_id or wanted.startswith(self.workflow_id + "-")
        return self.workflow_id == context.workflow_id


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """AES-GCM over the whole serialised payload, with the newest key and a random 12-byte
    nonce; the key id and the binding are in the metadata and bound as associated data."""

    def __init__(self, keyring: Keyring, context: Binding | None = None,
                 ciphers: dict[str, AESGCM] | None = None) -> None:
        self.keyring = keyring
        self.context = context
        self._ciphers: dict[str, AESGCM] = {} if ciphers is None else ciphers

    def with_context(self, context: SerializationContext) -> Self:
        return type(self)(self.keyring, Binding.of(context), self._ciphers)

    def _cipher(self, key_id: str) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            cipher = self._ciphers[key_id] = AESGCM(self.keyring.key(key_id))
        return cipher

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Never raises on a payload: one that is not the product's becomes a marker."""
        return [self.open(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.keyring.newest_id
        raw_id = key_id.encode()
        metadata = {"encoding": ENCODING, KEY_ID_METADATA: raw_id}
        associated = raw_id
        if self.context is not None:
            self.context.stamp(metadata)
            associated = self.context.associated(raw_id)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher(key_id).encrypt(nonce, payload.SerializeToString(), associated)
        return Payload(metadata=metadata, data=nonce + sealed)

    def open(self, payload: Payload) -> Payload:
        try:
            return self.decrypt(payload)
        except Refusal as refusal:
            return refusal_marker(refusal.reason, payload)

    def decrypt(self, payload: Payload) -> Payload:
        """The payload as it was encoded; :class:`Refusal` when it is not the product's."""
        if payload.metadata.get("encoding") != ENCODING:
            raise Refusal("unencrypted", "the payload is not encrypted")
        raw_id = payload.metadata.get(KEY_ID_METADATA, b"")
        key_id = raw_id.decode(errors="replace")
        if key_id not in self.keyring:
            raise Refusal("unknown-key", str(UnknownKeyError(key_id)))
        binding = Binding.read(payload)
        associated = binding.associated(raw_id) if binding else raw_id
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = self._cipher(key_id).decrypt(nonce, sealed, associated)
        except InvalidTag:
            raise Refusal(
                "unauthenticated",
                f"payload encrypted with key {key_id!r} fails authentication: it was "
                "tampered with or corrupted, or the key under this id has changed",
            ) from None
        if self.context is not None:
            self._check_binding(key_id, binding, self.context)
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


    def _check_binding(self, key_id: str, binding: Binding | None, context: Binding) -> None:
        if binding is None and not self.keyring.accepts_unbound(key_id):
            raise Refusal("unbound", f"payload under key {key_id!r} is bound to no workflow")
        if binding is not None and not binding.admits(context):
            raise Refusal("other-workflow", "payload belongs to another workflow")


def refusal_marker(reason: str, payload: Payload) -> Payload:
    """What a foreign payload decodes to: its reason and its (cleaned) encoding, no data."""
    return Payload(metadata={
        "encoding": REFUSED_ENCODING,
        REFUSAL_METADATA: reason.encode(),
        "refused-encoding": printable(payload.metadata.get("encoding", b"none")).encode(),
    })


def printable(raw: bytes, limit: int = 40) -> str:
    """An encoding name as a sender wrote it, safe for a log line."""
    text = raw.decode("ascii", errors="replace")[:limit]
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in text)


def seal(codec: EncryptionCodec, data: bytes) -> bytes:
    """Bytes kept at rest (a confirmation email), encrypted as a payload is: key id inside."""
    return codec.encrypt(Payload(data=data)).SerializeToString()


def unseal(codec: EncryptionCodec, sealed: bytes) -> bytes:
    payload = Payload()
    payload.ParseFromString(sealed)
    return codec.decrypt(payload).data
