"""Keyed hashes (HMAC-SHA256 under the server-side secret): identities and one-time codes are
stored only this way, so they can be matched but not read back or brute-forced offline."""

import hashlib
import hmac


def keyed_hash(secret: bytes, value: str, purpose: str = "identity") -> str:
    message = f"{purpose}\x00{value}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()

