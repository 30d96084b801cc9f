"""Officers' notes: sealed in the register, only a keyed hash in the audit ledger.

What an officer types (the note on a verification by hand, the reason for a denial, a
cancellation or an extension, a connector decision) can hold personal data: what was checked,
who called. In a milestone's ``detail`` each of the NOTE_FIELDS is stored sealed, AES-GCM
under the officers'-notes key (``dsr.purposes``), bound as associated data to the request id,
the milestone key and the field, so a sealed note copied to another row or field does not
open. The register row and its milestones, notes included, are deleted together at the end of
the proof period. The ledger, which is never purged, keeps an HMAC of each note under a key of
its own instead: whoever holds that key can tell two equal notes apart, nobody can read one.

A note kept in a text column of its own (a legal hold's reason and release reason) is stored
the same way, as the sealed form's JSON, bound to its table, row and column; the ledger keeps
its keyed hash.

Milestones and holds recorded before notes were sealed keep them readable, and are shown as
they are. A sealed note that does not open (another key, altered, moved) is shown as
UNREADABLE.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dsr.purposes import OFFICER_NOTE_HASHES, OFFICER_NOTES, key_id, purpose_key

# The fields of a milestone's detail that hold an officer's free text.
NOTE_FIELDS = ("note", "reason", "question")
UNREADABLE = "(note unreadable)"
SEALED, HASHED, KEY_ID = "sealed", "hmac", "key_id"
NONCE_BYTES = 12
SEALED_TEXT_START = '{"sealed":'  # how a sealed note in a text column begins


@dataclass(frozen=True)
class NoteKeys:
    """The key notes are sealed with and the key the ledger's hashes of them are made with."""

    seal: bytes = field(repr=False)
    match: bytes = field(repr=False)
    seal_id: str
    match_id: str
    # The sealing keys of earlier server secrets, by id: notes sealed under them still open.
    earlier: dict[str, bytes] = field(default_factory=dict, repr=False)

    @classmethod
    def from_secret(cls, secret: bytes, previous: Sequence[bytes] = ()) -> NoteKeys:
        """The current secret's keys; ``previous``: earlier secrets, to open what they
        sealed."""
        seal = purpose_key(secret, OFFICER_NOTES)
        match = purpose_key(secret, OFFICER_NOTE_HASHES)
        earlier = {key_id(old): old for old in (purpose_key(s, OFFICER_NOTES) for s in previous)}
        return cls(seal=seal, match=match, seal_id=key_id(seal), match_id=key_id(match),
                   earlier=earlier)

    def opening(self, sealed_with: object) -> bytes:
        """The key a note says it was sealed with (the current one if it does not say)."""
        return self.earlier.get(str(sealed_with), self.seal)


def _bound(*where: str) -> bytes:
    """The associated data: where the note belongs."""
    return json.dumps(list(where)).encode()


def _milestone(request_id: str, milestone_key: str, name: str) -> bytes:
    return _bound("dsr officer note", request_id, milestone_key, name)


def _column(table: str, row_id: str, column: str) -> bytes:
    return _bound("dsr officer note in a column", table, row_id, column)


def _seal(keys: NoteKeys, bound: bytes, text: str) -> dict[str, str]:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(keys.seal).encrypt(nonce, text.encode(), bound)
    return {SEALED: base64.b64encode(nonce + sealed).decode(), KEY_ID: keys.seal_id}


def _unseal(keys: NoteKeys, bound: bytes, value: Any) -> str:
    try:
        raw = base64.b64decode(value[SEALED], validate=True)
        key = keys.opening(value.get(KEY_ID))
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound).decode()
    except (KeyError, TypeError, ValueError, binascii.Error, InvalidTag):
        return UNREADABLE  # UnicodeDecodeError is a ValueError


def seal(
    keys: NoteKeys, request_id: str, milestone_key: str, name: str, text: str
) -> dict[str, str]:
    return _seal(keys, _milestone(request_id, milestone_key, name), text)


def unseal(keys: NoteKeys, request_id: str, milestone_key: str, name: str, value: Any) -> str:
    """The note, or UNREADABLE if it does not open here."""
    return _unseal(keys, _milestone(request_id, milestone_key, name), value)


def sealed_text(keys: NoteKeys, table: str, row_id: str, column: str, text: str) -> str:
    """A note as a text column stores it: its sealed form as JSON, bound to the row and column."""
    return json.dumps(_seal(keys, _column(table, row_id, column), text), separators=(",", ":"))


def opened_text(keys: NoteKeys, table: str, row_id: str, column: str, stored: str) -> str:
    """A text column's note as an officer reads it: opened (UNREADABLE if it does not open
    here), or as it is when it was written readable, before notes were sealed."""
    if not stored.startswith(SEALED_TEXT_START):
        return stored
    try:
        value = json.loads(stored)
    except ValueError:
        return UNREADABLE
    return _unseal(keys, _column(table, row_id, column), value)


def note_hash(keys: NoteKeys, text: str) -> dict[str, str]:
    """The note as the ledger keeps it: equal notes, equal hashes, under the same key."""
    digest = hmac.new(keys.match, text.encode(), hashlib.sha256).hexdigest()
    return {HASHED: digest, KEY_ID: keys.match_id}


def _is_note(name: str, value: Any) -> bool:
    return name in NOTE_FIELDS and isinstance(value, str)


def sealed_detail(
    keys: NoteKeys, request_id: str, milestone_key: str, detail: dict[str, Any]
) -> dict[str, Any]:
    """``detail`` as the register stores it: each note sealed to its row and field."""
    return {name: seal(keys, request_id, milestone_key, name, value)
            if _is_note(name, value) else value for name, value in detail.items()}


def hashed_detail(keys: NoteKeys, detail: dict[str, Any]) -> dict[str, Any]:
    """``detail`` as the ledger keeps it: each note as its keyed hash."""
    return {name: note_hash(keys, value) if _is_note(name, value) else value
            for name, value in detail.items()}


def opened_detail(
    keys: NoteKeys, request_id: str, milestone_key: str, detail: dict[str, Any]
) -> dict[str, Any]:
    """``detail`` as an officer reads it: sealed notes opened (any other object in a note's
    place is unreadable), notes recorded readable before sealing as they are."""
    return {name: unseal(keys, request_id, milestone_key, name, value)
            if name in NOTE_FIELDS and isinstance(value, dict) else value
            for name, value in detail.items()}
