"""Keys by purpose: each use of the server secret gets a key of its own.

A key is derived from the server secret (``settings.secret``) with HKDF-SHA256, the purpose
and its version as the ``info``: a key for one purpose says nothing about another, and a
purpose changes its key by changing its version. Each derived key has a short public id (a
hash of the key, never the key), recorded beside what it sealed or hashed, so that a record
made under another secret or version is recognised as such.

Used by the officers' notes (sealed in the register, keyed hashes in the ledger), the officer
authority (``dsr.credentials``), verification codes, download links, Web UI sessions and the
identity index (``dsr.serverkeys``, with key ids), the ledger (``dsr.ledger``: a key change
starts a new segment of the chain) and the download limiter's counters.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
KEY_ID_CHARS = 16

# The purposes, each with its version: a new version is a new key.
OFFICER_NOTES = "officer notes v1"  # AES-GCM: notes sealed in the register
OFFICER_NOTE_HASHES = "officer note hashes v1"  # HMAC-SHA256: notes as the ledger keeps them
OFFICER_AUTHORITY = "officer authority v1"  # Ed25519 seed: certifies officers' keys
CODES = "verification codes v1"  # HMAC-SHA256: one-time codes, and their check hashes
DOWNLOAD_LINKS = "download links v1"  # HMAC-SHA256: package link tokens and their hashes
SESSIONS = "ui sessions v1"  # HMAC-SHA256: session links and cookies as stored
# HMAC-SHA256: identities as the product matches them without keeping them (holds, possible
# duplicates, connectors' restrictions and suppression entries).
IDENTITY_INDEX = "identity index v1"
AUDIT_LEDGER = "audit ledger v1"  # HMAC-SHA256: the ledger's chain and its anchors
RATE_LIMITS = "rate limits v1"  # HMAC-SHA256: clients and links as the download limiter counts
PURPOSES = (OFFICER_NOTES, OFFICER_NOTE_HASHES, OFFICER_AUTHORITY, CODES, DOWNLOAD_LINKS,
            SESSIONS, IDENTITY_INDEX, AUDIT_LEDGER, RATE_LIMITS)


def purpose_key(secret: bytes, purpose: str) -> bytes:
    """The 32-byte key for ``purpose`` (one of PURPOSES), derived from the server secret."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                info=b"dsr " + purpose.encode())
    return hkdf.derive(secret)


def key_id(key: bytes) -> str:
    """A public name for a derived key: matching records to it discloses nothing of it."""
    return hashlib.sha256(b"dsr key id\x00" + key).hexdigest()[:KEY_ID_CHARS]
