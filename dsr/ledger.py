"""The audit ledger: an append-only, tamper-evident record of every step of every request.

Each entry is chained to the one before by an HMAC-SHA256 under a ledger key derived from the
server-side secret, so an entry changed or removed in the database, a truncated tail, or a
chain recomputed without the key is detected. The chain head is also anchored outside the
database (a JSON line in ``data_dir/ledger-anchors.jsonl`` and a line in the operator's log)
by the daily confirmation purge, so a chain rewritten by someone holding the key is detected
against the anchors. ``starter.py ledger verify`` names the first broken entry.

No personal data is written here: entries refer to requests by id and carry ids, counts,
dates and reasons only; an officer's note on a request, and a hold's reasons, only as a keyed
hash (``dsr.notes``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import JSON, Engine, Integer, String, event, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from dsr.database import Base, UtcDateTime
from dsr.hashing import keyed_hash
from dsr.logging import get_logger

if TYPE_CHECKING:
    from dsr.settings import Settings

GENESIS = "0" * 64
ANCHORS_FILE = "ledger-anchors.jsonl"

log = get_logger()


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
    return bytes.fromhex(keyed_hash(secret, "audit-ledger-chain", purpose="ledger"))


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
    last = session.execute(
        select(LedgerEntry.seq, LedgerEntry.mac).order_by(LedgerEntry.seq.desc()).limit(1)
    ).first()
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
    seq += 1
    mac = compute_mac(key, prev_mac, seq, at, request_id, kind, actor, detail)
    entry = LedgerEntry(
        seq=seq,
        at=at,
        request_id=request_id,
        kind=kind,
        actor=actor,
        detail=detail,
        prev_mac=prev_mac,
        mac=mac,
    )
    session.add(entry)
    session.execute(update(LedgerHead).where(LedgerHead.id == 1).values(seq=seq, mac=mac))
    return entry


# Anchoring ---------------------------------------------------------------------------------


class Anchor(BaseModel):
    seq: int
    mac: str
    at: datetime


def anchor(engine: Engine, key: bytes, anchors_file: Path, now: datetime | None = None) -> Anchor:
    """Write the chain head to ``anchors_file`` (one JSON line) and to the operator's log."""
    del key  # the head is anchored as stored; verify checks it against the recomputed chain
    with Session(engine) as session:
        last = session.execute(
            select(LedgerEntry.seq, LedgerEntry.mac).order_by(LedgerEntry.seq.desc()).limit(1)
        ).first()
    head = Anchor(
        seq=last.seq if last else 0, mac=last.mac if last else GENESIS, at=now or datetime.now(UTC)
    )
    anchors_file.parent.mkdir(parents=True, exist_ok=True)
    with anchors_file.open("a", encoding="utf-8") as file:
        file.write(head.model_dump_json() + "\n")
    log.info("ledger anchored", seq=head.seq, mac=head.mac, anchored_at=head.at.isoformat())
    return head


def read_anchors(anchors_file: Path) -> list[Anchor]:
    if not anchors_file.exists():
        return []
    lines = anchors_file.read_text(encoding="utf-8").splitlines()
    return [Anchor.model_validate_json(line) for line in lines if line.strip()]


# Verifying ---------------------------------------------------------------------------------


class VerifyResult(BaseModel):
    ok: bool
    entries: int
    last_seq: int
    anchors: int
    last_anchor_seq: int | None = None
    broken_seq: int | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.ok:
            anchored = "none" if self.last_anchor_seq is None else str(self.last_anchor_seq)
            return f"ledger intact: {self.entries} entries, last anchor seq {anchored}"
        return f"ledger broken at entry {self.broken_seq}: {self.problem}"


def verify(engine: Engine, key: bytes, anchors_file: Path) -> VerifyResult:
    """Recompute the chain and check it against the head row and the anchors."""
    anchors = read_anchors(anchors_file)
    problems: list[tuple[int, str]] = []
    macs: dict[int, str] = {0: GENESIS}
    expected_prev, expected_seq = GENESIS, 1
    with Session(engine) as session:
        head = session.execute(select(LedgerHead.seq, LedgerHead.mac)).first()
        entries = list(session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq)))
        for entry in entries:
            if entry.seq != expected_seq:
                missing = (
                    f"entry {expected_seq} is missing (deleted)"
                    if entry.seq == expected_seq + 1
                    else f"entries {expected_seq} to {entry.seq - 1} are missing (deleted)"
                )
                problems.append((expected_seq, missing))
                break
            if entry.prev_mac != expected_prev:
                problems.append(
                    (
                        entry.seq,
                        "its link to the previous entry does not match "
                        "(an entry before it was changed or removed)",
                    )
                )
                break
            mac = compute_mac(
                key,
                entry.prev_mac,
                entry.seq,
                entry.at,
                entry.request_id,
                entry.kind,
                entry.actor,
                entry.detail,
            )
            if not hmac.compare_digest(mac, entry.mac):
                problems.append((entry.seq, "its mac does not match its content (changed)"))
                break
            macs[entry.seq] = mac
            expected_prev, expected_seq = mac, entry.seq + 1
    last_seq = expected_seq - 1
    if not problems and head is not None and head.seq > last_seq:
        problems.append(
            (
                last_seq + 1,
                f"the head says the ledger ends at seq {head.seq} but "
                f"the last entry is {last_seq} (tail truncated)",
            )
        )
    if not problems and head is not None and head.seq == last_seq and head.mac != macs[last_seq]:
        problems.append((last_seq, "the head does not match the last entry (chain rewritten)"))
    matched, scanned_clean = 0, not problems
    for mark in anchors:
        if mark.seq > last_seq:
            if scanned_clean:
                problems.append(
                    (
                        last_seq + 1,
                        f"anchored at seq {mark.seq} on "
                        f"{mark.at.isoformat()} but the ledger ends at "
                        f"seq {last_seq} (tail truncated)",
                    )
                )
            break
        if not hmac.compare_digest(macs[mark.seq], mark.mac):
            problems.append(
                (
                    mark.seq,
                    f"does not match its anchor of {mark.at.isoformat()}: "
                    f"an entry from seq {matched + 1} to {mark.seq} was "
                    "rewritten and the chain recomputed",
                )
            )
            break
        matched = max(matched, mark.seq)
    first = min(problems, key=lambda problem: problem[0], default=None)
    return VerifyResult(
        ok=first is None,
        entries=len(entries),
        last_seq=last_seq,
        anchors=len(anchors),
        last_anchor_seq=anchors[-1].seq if anchors else None,
        broken_seq=first[0] if first else None,
        problem=first[1] if first else None,
    )


LEDGER = "ledger"  # what officers' ledger actions name as their target (dsr.officerservice)
