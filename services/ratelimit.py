"""Rate limits of one server process, kept in memory: at most ``limit`` hits per key in any
``window`` seconds (a sliding window: the times of the last ``limit`` hits per key).

Several replicas each keep their own counts, so behind a load balancer that spreads one
client over R replicas the limits are up to R times as high; a restart forgets them. Keys are
keyed hashes (``client_key``, the callers' token hashes), never an address or a token.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from dsr.hashing import keyed_hash
from dsr.purposes import RATE_LIMITS, purpose_key

Clock = Callable[[], float]
MAX_KEYS = 100_000


class SlidingWindowLimiter:
    def __init__(self, limit: int, window: float = 60.0, clock: Clock = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self.limit, self.window, self.clock, self.max_keys = limit, window, clock, max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str) -> float:
        """Count a hit and return 0; or, past the limit, count nothing and return the seconds
        until the key's oldest hit leaves the window."""
        now = self.clock()
        hits = self._hits.pop(key, None) or deque()
        self._hits[key] = hits  # the most recently used last
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window - now
        hits.append(now)
        self._bound(now)
        return 0.0

    def _bound(self, now: float) -> None:
        """Past ``max_keys``: forget the keys with no hit in the window, then the least
        recently used (under a flood of new keys a forgotten key starts afresh)."""
        if len(self._hits) <= self.max_keys:
            return
        for key in [k for k, hits in self._hits.items() if hits[-1] <= now - self.window]:
            del self._hits[key]
        while len(self._hits) > self.max_keys:
            self._hits.popitem(last=False)


def client_address(peer: str | None, forwarded_for: str | None, proxy_hops: int) -> str:
    """The client's address: the peer's, or behind ``proxy_hops`` trusted reverse proxies the
    entry the farthest of them appended to X-Forwarded-For (entries to its left are the
    client's to write). An IPv6 address stands for its /64, which one client may roam."""
    address = peer or ""
    if proxy_hops:
        entries = [e.strip() for e in (forwarded_for or "").split(",") if e.strip()]
        if len(entries) >= proxy_hops:
            address = entries[-proxy_hops]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(parsed), 64), strict=False))
    return str(parsed)


def client_key(secret: bytes, address: str) -> str:
    """What stands for a client in the limiter and the log: a client's address is personal
    data, so only a keyed hash of it (16 hex digits), never the address."""
    return counted(secret, "download-client", address)


def counted(secret: bytes, kind: str, value: str) -> str:
    """``value`` as the limiter counts it: under the limiter's own key, 16 hex digits."""
    return keyed_hash(purpose_key(secret, RATE_LIMITS), value, purpose=kind)[:16]
