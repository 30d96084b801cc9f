"""The payload keys: named AES-256 keys, oldest first, the newest encrypting.

Keys come from ``DSR_PAYLOAD_KEYS`` ("id:base64key,id2:base64key:bound", 32-byte keys, newest
last), else from the key file (``DSR_PAYLOAD_KEY_FILE``, by default ``var/secrets/payload-keys``,
which the embedded stack generates once). The key file holds the same spec, one entry per line
or comma-separated.

A key marked ``bound`` was made after payloads began to be bound to their workflow
(``dsr.codec``): a payload under it without a binding is refused. A key without the mark may
have encrypted payloads before binding, so its unbound payloads are still accepted, until it
is retired (``starter.py keys retire``). Binding starts with a new key: the embedded stack
adds a bound key to its key file when the newest one is not.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dsr.files import folder_lock, write_private_atomically
from dsr.settings import Settings

KEY_BYTES = 32
BOUND = "bound"
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


@dataclass(frozen=True)
class PayloadKey:
    key_id: str
    key: bytes = b""
    bound: bool = True  # False: may hold payloads from before binding

    def __repr__(self) -> str:  # never the key itself
        return f"PayloadKey({self.key_id!r}, bound={self.bound})"

    def entry(self) -> str:
        """The key's line in a key file or DSR_PAYLOAD_KEYS."""
        mark = f":{BOUND}" if self.bound else ""
        return f"{self.key_id}:{base64.b64encode(self.key).decode()}{mark}"


class Keyring:
    """Named AES-256 keys, oldest first; new payloads are encrypted with the newest."""

    def __init__(self, keys: Sequence[PayloadKey | tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyringError("no payload keys: set DSR_PAYLOAD_KEYS as id:base64key,...")
        self._keys: dict[str, PayloadKey] = {}
        for item in keys:
            key = item if isinstance(item, PayloadKey) else PayloadKey(*item)
            if not _KEY_ID.match(key.key_id):
                raise KeyringError(
                    f"payload key id {key.key_id!r} must be 1-64 letters, digits, '.', '_' or '-'"
                )
            if key.key_id in self._keys:
                raise KeyringError(f"payload key id {key.key_id!r} appears twice")
            if len(key.key) != KEY_BYTES:
                raise KeyringError(
                    f"payload key {key.key_id!r} is {len(key.key)} bytes; it must be {KEY_BYTES}"
                )
            self._keys[key.key_id] = key
        self.newest_id: str = next(reversed(self._keys))

    @classmethod
    def from_spec(cls, spec: str) -> Keyring:
        """Parse ``id:base64key[:bound]`` entries (commas or newlines between them, newest
        last). Errors name the entry and what is wrong with it, never the key."""
        entries = [e.strip() for e in re.split(r"[,\n]", spec)]
        entries = [e for e in entries if e and not e.startswith("#")]
        if not entries:
            raise KeyringError("no payload keys: expected id:base64key,id2:base64key")
        return cls([_parse_entry(number, entry) for number, entry in enumerate(entries, 1)])

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    @property
    def keys(self) -> list[PayloadKey]:
        return list(self._keys.values())

    def key(self, key_id: str) -> bytes:
        return self._get(key_id).key

    def accepts_unbound(self, key_id: str) -> bool:
        """Whether a payload under this key may come without a binding (from before it)."""
        return not self._get(key_id).bound

    def _get(self, key_id: str) -> PayloadKey:
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKeyError(key_id) from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __repr__(self) -> str:  # never the keys themselves
        return f"Keyring(ids={self.ids!r}, newest={self.newest_id!r})"

    def spec(self) -> str:
        return "".join(key.entry() + "\n" for key in self._keys.values())


def _parse_entry(number: int, entry: str) -> PayloadKey:
    key_id, colon, rest = entry.partition(":")
    key_id, rest = key_id.strip(), rest.strip()
    # An entry without a colon may be a bare key: name it by position only.
    if not colon:
        raise KeyringError(f"payload key entry {number} is not id:base64key")
    if not _KEY_ID.match(key_id):
        raise KeyringError(
            f"payload key entry {number}: the id must be 1-64 letters, digits, '.', '_' or '-'"
        )
    encoded, colon, mark = rest.partition(":")
    if colon and mark.strip() != BOUND:
        raise KeyringError(
            f"payload key entry {number} ({key_id!r}): after the key, only ':{BOUND}' may follow"
        )
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"payload key entry {number} ({key_id!r}) is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(
            f"payload key entry {number} ({key_id!r}) is {len(key)} bytes; "
            f"it must be {KEY_BYTES} (base64 of 32 random bytes)"
        )
    return PayloadKey(key_id, key, bound=bool(colon))


def new_key(key_id: str | None = None) -> PayloadKey:
    key_id = key_id or "k" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return PayloadKey(key_id, secrets.token_bytes(KEY_BYTES), bound=True)


def new_key_entry(key_id: str | None = None) -> str:
    """A fresh bound ``id:base64key:bound`` entry, for a key file or DSR_PAYLOAD_KEYS."""
    return new_key(key_id).entry()


def default_key_file(settings: Settings) -> Path:
    return settings.data_dir / "secrets" / "payload-keys"


def load_keyring(settings: Settings) -> Keyring:
    """The payload keys from ``DSR_PAYLOAD_KEYS``, else from the key file.

    The default key file of the embedded stack is generated once (mode 0600) when absent, and
    gains a bound key when its newest is not; a key file set explicitly must exist, so a
    missing secret fails at start instead of silently starting a new key."""
    if settings.payload_keys is not None:
        try:
            return Keyring.from_spec(settings.payload_keys.get_secret_value())
        except KeyringError as error:
            raise KeyringError(f"DSR_PAYLOAD_KEYS: {error}") from None
    path = settings.payload_key_file
    if path is None:
        path = default_key_file(settings)
        return _embedded_keyring(path)
    return read_key_file(path)


def read_key_file(path: Path) -> Keyring:
    try:
        spec = path.read_text()
    except OSError as error:
        raise KeyringError(f"payload key file {path}: {error.strerror or error}") from None
    try:
        return Keyring.from_spec(spec)
    except KeyringError as error:
        raise KeyringError(f"payload key file {path}: {error}") from None


def _embedded_keyring(path: Path) -> Keyring:
    """The embedded stack's key file: made when absent, given a bound newest key when its
    newest is from before binding. Under a lock: processes starting at once agree."""
    with key_file_lock(path):
        if not path.exists():
            write_key_file(path, Keyring([new_key()]))
        keyring = read_key_file(path)
        if keyring.accepts_unbound(keyring.newest_id):
            keyring = Keyring([*keyring.keys, new_key()])
            write_key_file(path, keyring)
        return keyring


def key_file_lock(path: Path) -> AbstractContextManager[None]:
    return folder_lock(path.parent)  # the folder itself is the lock


def write_key_file(path: Path, keyring: Keyring) -> None:
    """Replace the key file atomically (mode 0600); call under :func:`key_file_lock`."""
    write_private_atomically(path, keyring.spec())
