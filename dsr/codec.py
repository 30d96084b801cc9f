"""Encryption of every Temporal payload the product writes.

Workflow and activity inputs and results, Update and Query arguments and results, and (through
the failure converter) failure messages and stack traces go to Temporal encrypted with AES-GCM.
Each encrypted payload names its key in the metadata (``encryption-key-id``), so several keys
can be active: new payloads use the newest, payloads under older keys still decrypt. Payloads
written before encryption was switched on carry no such encoding and pass through unchanged, so
their histories still decode and replay.

Keys come from ``DSR_PAYLOAD_KEYS`` ("id:base64key,id2:base64key", 32-byte keys, newest last),
else from the key file (``DSR_PAYLOAD_KEY_FILE``, by default ``var/secrets/payload-keys``, which
the embedded stack generates once). The key file holds the same spec, one entry per line or
comma-separated. Worker, CLI and every other client build their converter with
:func:`data_converter`, so they all agree.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import secrets
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from dsr.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class KeyringError(Exception):
    """The payload keys are missing or malformed; the message never contains key material."""


class UnknownKeyError(KeyringError):
    """A payload names a key the keyring does not hold."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"payload encrypted with key {key_id!r}, which is not among the payload keys: "
            f"add the key {key_id!r} to DSR_PAYLOAD_KEYS (or the payload key file) and restart"
        )


class DecryptionError(KeyringError):
    """A payload does not decrypt under the key it names: tampered with or corrupted."""


class Keyring:
    """Named AES-256 keys, oldest first; new payloads are encrypted with the newest."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyringError("no payload keys: set DSR_PAYLOAD_KEYS as id:base64key,...")
        self._keys: dict[str, bytes] = {}
        for key_id, key in keys:
            if not _KEY_ID.match(key_id):
                raise KeyringError(
                    f"payload key id {key_id!r} must be 1-64 letters, digits, '.', '_' or '-'"
                )
            if key_id in self._keys:
                raise KeyringError(f"payload key id {key_id!r} appears twice")
            if len(key) != KEY_BYTES:
                raise KeyringError(
                    f"payload key {key_id!r} is {len(key)} bytes; it must be {KEY_BYTES}"
                )
            self._keys[key_id] = key
        self.newest_id: str = next(reversed(self._keys))

    @classmethod
    def from_spec(cls, spec: str) -> Keyring:
        """Parse ``id:base64key,id2:base64key`` (commas or newlines between entries, newest
        last). Errors name the entry and what is wrong with it, never the key."""
        entries = [e.strip() for e in re.split(r"[,\n]", spec)]
        entries = [e for e in entries if e and not e.startswith("#")]
        if not entries:
            raise KeyringError("no payload keys: expected id:base64key,id2:base64key")
        keys: list[tuple[str, bytes]] = []
        for number, entry in enumerate(entries, start=1):
            key_id, colon, encoded = entry.partition(":")
            key_id, encoded = key_id.strip(), encoded.strip()
            # An entry without a colon may be a bare key: name it by position only.
            if not colon:
                raise KeyringError(f"payload key entry {number} is not id:base64key")
            if not _KEY_ID.match(key_id):
                raise KeyringError(
                    f"payload key entry {number}: the id must be 1-64 letters, digits, "
                    "'.', '_' or '-'"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise KeyringError(
                    f"payload key entry {number} ({key_id!r}) is not valid base64"
                ) from None
            if len(key) != KEY_BYTES:
                raise KeyringError(
                    f"payload key entry {number} ({key_id!r}) is {len(key)} bytes; "
                    f"it must be {KEY_BYTES} (base64 of 32 random bytes)"
                )
            keys.append((key_id, key))
        return cls(keys)

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    def key(self, key_id: str) -> bytes:
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKeyError(key_id) from None

    def __repr__(self) -> str:  # never the keys themselves
        return f"Keyring(ids={self.ids!r}, newest={self.newest_id!r})"


def new_key_entry(key_id: str | None = None) -> str:
    """A fresh ``id:base64key`` entry, for a key file or DSR_PAYLOAD_KEYS."""
    key_id = key_id or "k" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def default_key_file(settings: Settings) -> Path:
    return settings.data_dir / "secrets" / "payload-keys"


def load_keyring(settings: Settings) -> Keyring:
    """The payload keys from ``DSR_PAYLOAD_KEYS``, else from the key file.

    The default key file of the embedded stack is generated once (mode 0600) when absent; a
    key file set explicitly must exist, so a missing secret fails at start instead of
    silently starting a new key."""
    if settings.payload_keys is not None:
        try:
            return Keyring.from_spec(settings.payload_keys.get_secret_value())
        except KeyringError as error:
            raise KeyringError(f"DSR_PAYLOAD_KEYS: {error}") from None
    path = settings.payload_key_file
    if path is None:
        path = default_key_file(settings)
        if not path.exists():
            _write_new_key_file(path)
    try:
        spec = path.read_text()
    except OSError as error:
        raise KeyringError(f"payload key file {path}: {error.strerror or error}") from None
    try:
        return Keyring.from_spec(spec)
    except KeyringError as error:
        raise KeyringError(f"payload key file {path}: {error}") from None


def _write_new_key_file(path: Path) -> None:
    """Write a new key file atomically: two processes starting at once agree on one key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(new_key_entry() + "\n")
            file.flush()
            os.fsync(file.fileno())
        with suppress(FileExistsError):  # another process was first: use its key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class EncryptionCodec(PayloadCodec):
    """AES-GCM over the whole serialised payload, with the newest key of the keyring and a
    random 12-byte nonce; the key id is both in the metadata and bound as associated data."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._ciphers: dict[str, AESGCM] = {}

    def _cipher(self, key_id: str) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            cipher = self._ciphers[key_id] = AESGCM(self.keyring.key(key_id))
        return cipher

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.keyring.newest_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher(key_id).encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was switched on
        raw_id = payload.metadata.get(KEY_ID_METADATA)
        if raw_id is None:
            raise DecryptionError(f"encrypted payload without {KEY_ID_METADATA} metadata")
        key_id = raw_id.decode(errors="replace")
        cipher = self._cipher(key_id)
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, raw_id)
        except InvalidTag:
            raise DecryptionError(
                f"payload encrypted with key {key_id!r} fails authentication: it was "
                "tampered with or corrupted, or the key under this id has changed"
            ) from None
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


def seal(codec: EncryptionCodec, data: bytes) -> bytes:
    """Bytes kept at rest (a confirmation email), encrypted as a payload is: key id inside."""
    return codec.encrypt(Payload(data=data)).SerializeToString()


def unseal(codec: EncryptionCodec, sealed: bytes) -> bytes:
    payload = Payload()
    payload.ParseFromString(sealed)
    return codec.decrypt(payload).data


def data_converter(keyring: Keyring) -> DataConverter:
    """The product's converter: pydantic payloads, encrypted; failure messages and stack
    traces moved into an (encrypted) payload, so the server sees "Encoded failure"."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
