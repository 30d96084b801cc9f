"""The server secret's keys by purpose, with key ids, across a change of secret.

Each purpose (codes, download links, sessions, ...) has its own key, derived from the server
secret with HKDF (``dsr.purposes``). What a key makes is tagged with that key's id, so the
product knows which key made each record: ``<key id>.<HMAC>``, 64 characters like the bare
HMACs made before key ids (which carry no ``.``). After a change of secret
(``DSR_HMAC_KEY`` new, the old one in ``DSR_HMAC_KEY_PREVIOUS`` for matching only), new
records are made under the new key and what the old one made still matches: every candidate
form of a value is tried (:meth:`PurposeKeys.candidates`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from dsr.hashing import keyed_hash
from dsr.purposes import IDENTITY_INDEX, key_id, purpose_key

TAG_ID_CHARS = 12
TAG_MAC_CHARS = 51  # with the id and the dot, 64 characters: the columns' width


@dataclass(frozen=True)
class PurposeKey:
    key_id: str
    key: bytes

    def tag(self, value: str) -> str:
        """``value``'s keyed hash under this key, tagged with the key's id."""
        mac = hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()
        return f"{self.key_id}.{mac[:TAG_MAC_CHARS]}"

    def mac(self, value: str) -> bytes:
        return hmac.new(self.key, value.encode(), hashlib.sha256).digest()


class PurposeKeys:
    """One purpose's keys for one kind of value (``label``): the current key first, then those
    of previous secrets; and the secrets themselves, for what was hashed before key ids
    (``dsr.hashing.keyed_hash`` under ``label``)."""

    def __init__(self, keys: Sequence[PurposeKey], secrets: Sequence[bytes], label: str) -> None:
        self.keys = list(keys)
        self._secrets = list(secrets)
        self._label = label

    @property
    def current(self) -> PurposeKey:
        return self.keys[0]

    def tag(self, value: str) -> str:
        return self.current.tag(self._labelled(value))

    def candidates(self, value: str) -> list[str]:
        """Every form ``value`` may have been stored in: under each key, and bare (before key
        ids) under each secret."""
        return [key.tag(self._labelled(value)) for key in self.keys] + [
            keyed_hash(secret, value, self._label) for secret in self._secrets]

    def _labelled(self, value: str) -> str:
        return f"{self._label}\x00{value}"

    def matches(self, value: str, stored: str) -> bool:
        """Whether ``stored`` is ``value``'s, compared in constant time."""
        found = False
        for candidate in self.candidates(value):
            found |= hmac.compare_digest(candidate, stored)
        return found

    def key_of(self, stored: str) -> PurposeKey | None:
        """The key that made ``stored``; None for a bare hash or a key no longer held."""
        prefix = stored.partition(".")[0]
        return next((key for key in self.keys if key.key_id == prefix), None)


class ServerKeys:
    """The current server secret and the previous ones still held for matching."""

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        self._secrets = [current, *previous]

    @property
    def secrets(self) -> list[bytes]:
        """Every secret held, the current first."""
        return list(self._secrets)

    @property
    def secret(self) -> bytes:
        """The current secret itself, for what derives its own keys from it (the ledger, the
        officers' notes, the officer authority)."""
        return self._secrets[0]

    @property
    def identities(self) -> PurposeKeys:
        """The identity index: a normalised identity's keyed hash (``Identity.normalised``)."""
        return self.purpose(IDENTITY_INDEX, "identity")

    def purpose(self, purpose: str, label: str) -> PurposeKeys:
        """``purpose``'s keys (``dsr.purposes``) for values of the kind ``label``."""
        keys = []
        for secret in self._secrets:
            derived = purpose_key(secret, purpose)
            keys.append(PurposeKey(key_id(derived)[:TAG_ID_CHARS], derived))
        return PurposeKeys(keys, self._secrets, label)
