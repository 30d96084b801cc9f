"""The server secret (``DSR_HMAC_KEY``): every keyed hash, token and derived key of the product
rests on it, so a guessable one is refused at start, naming the setting; on the embedded stack
it is generated once, atomically, so processes starting at once on a fresh data folder agree
(and none reads a half-written file)."""

from __future__ import annotations

import secrets
from pathlib import Path

from dsr.files import folder_lock, write_private_atomically

MIN_CHARS = 32
MIN_DISTINCT = 10
# Words no random value of this length holds by chance (a short one such as "xxx" would turn
# away about one base64 secret in a thousand).
PLACEHOLDER_WORDS = ("change", "example", "placeholder", "secret", "password")
GENERATE = 'python -c "import secrets; print(secrets.token_hex(32))"'


def weakness(value: str) -> str | None:
    """Why ``value`` cannot be the server secret, or None if it can."""
    if not value.strip():
        return "is empty"
    if len(value) < MIN_CHARS:
        return f"is {len(value)} characters; it needs at least {MIN_CHARS} random ones"
    lowered = value.lower()
    if any(word in lowered for word in PLACEHOLDER_WORDS):
        return "looks like a placeholder"
    if len(set(value)) < MIN_DISTINCT:
        return f"repeats too few characters ({len(set(value))} distinct) to be random"
    return None


def refusal(value: str) -> str | None:
    """Why ``value`` is refused and how to make a good one (the caller names the setting);
    never the value itself."""
    why = weakness(value)
    if why is None:
        return None
    return (f"{why}: set it to 32 random bytes, for example the output of {GENERATE} "
            "(deploy/README.md: changing the server secret)")


def embedded_secret(path: Path) -> bytes:
    """The embedded stack's secret in ``path``: made when absent, under a lock and by an
    atomic rename, so every process starting at once reads the same whole value."""
    with folder_lock(path.parent):
        if not path.exists():
            write_private_atomically(path, secrets.token_hex(32))
        value = path.read_text().strip()
    problem = refusal(value)
    if problem is not None:
        raise ValueError(f"the server secret in {path} {problem}")
    return value.encode()
