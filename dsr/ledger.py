"""The audit ledger: an append-only, tamper-evident record of every step of every request.

Each entry is chained to the one before by an HMAC-SHA256 under a ledger key derived from the
server-side secret, so an entry changed or removed in the database, or a chain recomputed
without the key, is detected. The chain head is anchored outside the database, hourly and by
the daily purge: a record with its own MAC under the ledger key, in an anchor store
(``dsr.anchors``: the file ``data_dir/ledger-anchors.jsonl``, or a bucket with Object Lock),
and a line in the operator's log. ``starter.py ledger verify`` checks the chain against every
anchor (``dsr.ledger_checks``), so a truncated tail with its head row rewound, or a chain
rewritten by someone holding the key, is detected, and names the first broken entry. After a
database restore an administrator records the entries lost (``dsr.ledger_restore``).

No personal data is written here: entries refer to requests by id and carry ids, counts,
dates and reasons only; an officer's note on a request, a hold's reasons, and the reason
given for a restore, only as a keyed hash (``dsr.notes``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Engine, Integer, String, event, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from dsr.anchors import (
    ANCHORS_FILE,
    Anchor,
    AnchorStore,
    AnchorStoreError,
    anchor_store,
    as_store,
    sealed_anchor,
)
from dsr.hashing import keyed_hash
from dsr.ledger_checks import GENESIS, RESTORED_TO, Chain, Gap, VerifyResult, judge
from dsr.logging import get_logger
from dsr.orm import Base, UtcDateTime
from dsr.purposes import AUDIT_LEDGER, key_id, purpose_key
from dsr.settings import Settings

__all__ = ["ANCHORS_FILE", "GENESIS", "Anchor", "AnchorStore", "AnchorStoreError", "Gap",
           "VerifyResult", "anchor", "anchor_store", "verify", "verify_configured"]

log = get_logger()
KEY_CHANGED = "key_changed"  # the first entry under a new ledger key (a new server secret)


class LedgerEntry(Base):
    """One step. Never updated or deleted: the ledger only grows."""

    __tablename__ = "ledger"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_mac: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))


class LedgerHead(Base):
    """One row: the last entry's seq and mac. Appenders lock it, so the chain never forks."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    mac: Mapped[str] = mapped_column(String(64), default=GENESIS)


@event.listens_for(LedgerHead.__table__, "after_create")
def _head_row(target: Any, connection: Any, **_: Any) -> None:
    connection.execute(insert(LedgerHead).values(id=1, seq=0, mac=GENESIS))


# Keys and anchor files ---------------------------------------------------------------------


def ledger_key(secret: bytes) -> bytes:
    """The ledger's own key, derived from the server-side secret for this purpose only."""
    return purpose_key(secret, AUDIT_LEDGER)


def _key_before_hkdf(secret: bytes) -> bytes:
    """How the ledger's key was derived before every purpose's key came from HKDF: the chain
    made under it verifies, and the next entry starts a segment under the new key."""
    return bytes.fromhex(keyed_hash(secret, "audit-ledger-chain", purpose="ledger"))


def ledger_key_id(key: bytes) -> str:
    """The public name of a ledger key, as a ``key_changed`` entry records it."""
    return key_id(key)[:12]


def held_keys(settings: Settings) -> list[bytes]:
    """The ledger keys of the current secret and of each previous one still held."""
    return [key for secret in settings.server_keys.secrets
            for key in (ledger_key(secret), _key_before_hkdf(secret))]


def anchors_path(settings: Settings) -> Path:
    return settings.data_dir / ANCHORS_FILE


# Appending ---------------------------------------------------------------------------------


def _canonical(
    seq: int, at: datetime, request_id: str | None, kind: str, actor: str, detail: dict[str, Any]
) -> bytes:
    fields = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(),
        "request_id": request_id,
        "kind": kind,
        "actor": actor,
        "detail": detail,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_mac(
    key: bytes,
    prev_mac: str,
    seq: int,
    at: datetime,
    request_id: str | None,
    kind: str,
    actor: str,
    detail: dict[str, Any],
) -> str:
    message = prev_mac.encode() + b"\x00" + _canonical(seq, at, request_id, kind, actor, detail)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _lock_head(session: Session) -> tuple[int, str]:
    """Take the write lock on the head row and read it.

    The UPDATE is the transaction's first write on SQLite (the driver begins the transaction
    there), so it takes the database's write lock as BEGIN IMMEDIATE would; on PostgreSQL it
    locks the head row until commit. Either way a second appender waits here, then reads the
    head the first one committed.
    """
    locked = session.execute(
        update(LedgerHead).where(LedgerHead.id == 1).values(seq=LedgerHead.seq)
    )
    if locked.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(insert(LedgerHead).values(id=1, seq=0, mac=GENESIS))
    head = session.execute(select(LedgerHead.seq, LedgerHead.mac).where(LedgerHead.id == 1)).one()
    # The whole entry: loaded into the session, it is what the key check reads next.
    last = session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq.desc()).limit(1)).first()
    if last is not None and last.seq > head.seq:  # the head row is behind: trust the entries
        return last.seq, last.mac
    return head.seq, head.mac


def append(
    session: Session,
    kind: str,
    actor: str,
    at: datetime,
    request_id: str | None,
    detail: dict[str, Any],
    key: bytes,
) -> LedgerEntry:
    """Append an entry in ``session``'s transaction; it commits or rolls back with it.

    ``detail`` is ids, counts, dates and reasons, never identities.
    """
    detail = json.loads(json.dumps(detail, default=str))
    at = at.astimezone(UTC)
    seq, prev_mac = _lock_head(session)
    if _made_under_another_key(session, seq, key):
        changed = _entry(seq + 1, at, None, KEY_CHANGED, "ledger",
                         {"key_id": ledger_key_id(key)}, prev_mac, key)
        session.add(changed)
        seq, prev_mac = changed.seq, changed.mac
    entry = _entry(seq + 1, at, request_id, kind, actor, detail, prev_mac, key)
    session.add(entry)
    session.execute(update(LedgerHead).where(LedgerHead.id == 1).values(seq=entry.seq,
                                                                        mac=entry.mac))
    return entry


def _made_under_another_key(session: Session, seq: int, key: bytes) -> bool:
    """Whether the last entry's MAC was made under another key than ``key`` (the server
    secret changed): the next entry begins a new segment, announced by a ``key_changed``
    entry. A last entry changed by hand looks the same here; ``verify`` tells them apart.
    The entry is already in the session (``_lock_head`` read it): no second query."""
    last = session.get(LedgerEntry, seq) if seq else None
    if last is None:
        return False
    mac = compute_mac(key, last.prev_mac, last.seq, last.at, last.request_id, last.kind,
                      last.actor, last.detail)
    return not hmac.compare_digest(mac, last.mac)


def _entry(seq: int, at: datetime, request_id: str | None, kind: str, actor: str,
           detail: dict[str, Any], prev_mac: str, key: bytes) -> LedgerEntry:
    mac = compute_mac(key, prev_mac, seq, at, request_id, kind, actor, detail)
    return LedgerEntry(
        seq=seq,
        at=at,
        request_id=request_id,
        kind=kind,
        actor=actor,
        detail=detail,
        prev_mac=prev_mac,
        mac=mac,
    )


# Anchoring ---------------------------------------------------------------------------------


def anchor(engine: Engine, key: bytes, anchors: AnchorStore | Path,
           now: datetime | None = None) -> Anchor:
    """Write the chain head, MAC'd under the ledger key, to the anchor store and to the
    operator's log; raises ``AnchorStoreError`` if the store refuses it."""
    store = as_store(anchors)
    with Session(engine) as session:
        last = session.execute(
            select(LedgerEntry.seq, LedgerEntry.mac).order_by(LedgerEntry.seq.desc()).limit(1)
        ).first()
    head = sealed_anchor(key, last.seq if last else 0, last.mac if last else GENESIS,
                         now or datetime.now(UTC))
    store.write(head)
    log.info("ledger anchored", seq=head.seq, mac=head.mac, anchored_at=head.at.isoformat(),
             anchor_mac=head.anchor_mac, store=store.where())
    return head


def read_anchors(anchors: AnchorStore | Path) -> list[Anchor]:
    """The anchors as stored (a malformed record raises ``AnchorStoreError``; ``verify``
    reports it instead)."""
    records = as_store(anchors).read()
    for record in records:
        if record.anchor is None:
            raise AnchorStoreError(f"anchor {record.where} is malformed ({record.problem})")
    return [record.anchor for record in records if record.anchor is not None]


# Verifying ---------------------------------------------------------------------------------


def walk_chain(engine: Engine, key: bytes, previous: Sequence[bytes] = ()) -> Chain:
    """Recompute the chain up to its first broken entry, each segment under its own key (a
    ``key_changed`` entry starts the next; ``previous``: the keys of earlier secrets); the
    restores recorded on the way."""
    chain, keys = Chain(), {ledger_key_id(k): k for k in (key, *previous)}
    segment: list[bytes] = []  # the current segment's key, once known
    with Session(engine) as session:
        head = session.execute(select(LedgerHead.seq, LedgerHead.mac)).first()
        for entry in session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq)):
            chain.entries += 1
            chain.first_at = chain.first_at or entry.at
            if not chain.problems:
                _follow(chain, entry, _segment_key(chain, entry, keys, segment))
    chain.head = (head.seq, head.mac) if head is not None else None
    return chain


def _segment_key(chain: Chain, entry: LedgerEntry, keys: dict[str, bytes],
                 segment: list[bytes]) -> bytes | None:
    """The key ``entry`` must verify under: the one a ``key_changed`` entry names, else the
    segment's; for the first entry, whichever held key its MAC verifies under."""
    if entry.kind == KEY_CHANGED:
        named = keys.get(str(entry.detail.get("key_id")))
        if named is None:
            chain.problems.append((entry.seq, "entries from here on were made under a server "
                                   "secret no longer held: add it to DSR_HMAC_KEY_PREVIOUS"))
            return None
        segment[:] = [named]
    if not segment:
        made_under = [k for k in keys.values() if hmac.compare_digest(entry.mac, compute_mac(
            k, entry.prev_mac, entry.seq, entry.at, entry.request_id, entry.kind, entry.actor,
            entry.detail))]
        if not made_under:
            chain.problems.append((entry.seq, "its mac matches no key held: changed, or made "
                                   "under a server secret no longer held (add it to "
                                   "DSR_HMAC_KEY_PREVIOUS)"))
            return None
        segment[:] = made_under
    return segment[0]


def _follow(chain: Chain, entry: LedgerEntry, key: bytes | None) -> None:
    if key is None:
        return
    expected_seq, expected_prev = chain.last_seq + 1, chain.macs[chain.last_seq]
    if entry.seq != expected_seq:
        chain.problems.append((expected_seq, f"entry {expected_seq} is missing (deleted)"
                               if entry.seq == expected_seq + 1 else
                               f"entries {expected_seq} to {entry.seq - 1} are missing "
                               "(deleted)"))
        return
    if entry.prev_mac != expected_prev:
        chain.problems.append((entry.seq, "its link to the previous entry does not match "
                                          "(an entry before it was changed or removed)"))
        return
    mac = compute_mac(key, entry.prev_mac, entry.seq, entry.at, entry.request_id, entry.kind,
                      entry.actor, entry.detail)
    if not hmac.compare_digest(mac, entry.mac):
        chain.problems.append((entry.seq, "its mac does not match its content (changed)"))
        return
    chain.macs[entry.seq], chain.last_seq = mac, entry.seq
    if entry.kind == RESTORED_TO:
        chain.gaps.append(Gap.from_entry(entry.seq, entry.at, entry.actor, entry.detail))


def verify(engine: Engine, key: bytes, anchors: AnchorStore | Path, *,
           max_age: timedelta | None = None, now: datetime | None = None,
           previous: Sequence[bytes] = ()) -> VerifyResult:
    """Recompute the chain and check it against the head row and every anchor; with
    ``max_age``, the newest anchor must be younger (``verify_configured``: the setting);
    ``previous``: the ledger keys of earlier server secrets, for the segments they made."""
    store = as_store(anchors)
    chain = walk_chain(engine, key, previous)
    try:
        stored, read_problem = store.read(), None
    except AnchorStoreError as error:
        stored, read_problem = [], str(error)
    return judge(chain, stored, [key, *previous], where=store.where(), max_age=max_age,
                 now=now or datetime.now(UTC), read_problem=read_problem)


def verify_configured(engine: Engine, settings: Settings,
                      now: datetime | None = None) -> VerifyResult:
    """What ``ledger verify`` runs: the configured anchor store and maximum age."""
    current, *previous = held_keys(settings)
    return verify(engine, current, anchor_store(settings),
                  max_age=timedelta(hours=settings.ledger_anchor_max_age_hours), now=now,
                  previous=previous)


LEDGER = "ledger"  # what officers' ledger actions name as their target (services.officer_service)
