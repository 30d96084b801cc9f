"""Recording a database restore in the audit ledger (``starter.py ledger restored``).

A restored database ends its chain before the anchors written since the backup: exactly what
a truncation looks like. An administrator, signed through the officer service, records a
``restored_to`` entry naming the entries lost and the newest anchor of the lost chain: from
the chain's end (or, if the restored database was written to before the restore was
recorded, from the first entry the anchors disagree with or written after that anchor) to the
newest sequence an anchor records. ``ledger verify`` then sets those anchors aside, passes,
and reports the gap every time; an anchor written after them still counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from dsr import ledger
from dsr.anchors import Anchor, AnchorStore, genuine_anchors
from dsr.ledger_checks import RESTORED_TO, Chain, lost_anchors


class RestoreRefused(Exception):
    """Nothing to record, or a chain a restore does not explain; says why."""


class RestoreRecorded(BaseModel):
    seq: int  # the restored_to entry
    chain_end: int
    lost_from: int
    lost_to: int
    lost_anchor_at: datetime
    anchors_set_aside: int


def record_restore(engine: Engine, key: bytes, store: AnchorStore, actor: str,
                   reason_hash: dict[str, str], now: datetime,
                   previous: Sequence[bytes] = ()) -> RestoreRecorded:
    """Append the ``restored_to`` entry for the anchors the chain no longer reaches
    (``previous``: the ledger keys of earlier server secrets)."""
    chain = ledger.walk_chain(engine, key, previous)
    _check_restorable(chain)
    anchors = [item for item in genuine_anchors([key, *previous], store.read())
               if isinstance(item, Anchor)]
    lost = lost_anchors(chain, anchors)  # a forged or malformed one: verify keeps naming it
    if not lost:
        raise RestoreRefused(
            f"nothing to record: every anchor agrees with the chain (ending at entry "
            f"{chain.last_seq}); ledger restored is for after a database restore, when "
            "anchors record entries the restored database lacks")
    newest = max(anchor.at for anchor in lost)
    detail = _gap_detail(chain, lost, _first_entry_after(engine, newest)) | {
        "reason": reason_hash}
    with Session(engine) as session, session.begin():
        entry = ledger.append(session, RESTORED_TO, actor, now.astimezone(UTC), None, detail,
                              key)
        seq = entry.seq
    return RestoreRecorded(seq=seq, chain_end=detail["chain_end"],
                           lost_from=detail["lost_from"], lost_to=detail["lost_to"],
                           lost_anchor_at=detail["lost_anchor_at"],
                           anchors_set_aside=detail["anchors_set_aside"])


def _check_restorable(chain: Chain) -> None:
    if chain.problems:
        seq, problem = chain.problems[0]
        raise RestoreRefused(f"the chain itself is broken at entry {seq} ({problem}): a "
                             "restore does not explain that; restore the whole database from "
                             "a backup, then record the restore")
    if chain.head is not None and chain.head[0] > chain.last_seq:
        raise RestoreRefused(f"the head row records entry {chain.head[0]} but the chain ends "
                             f"at {chain.last_seq}: the ledger table and its head row were "
                             "not restored together; restore the whole database")


def _first_entry_after(engine: Engine, at: datetime) -> int | None:
    """The first entry written after the newest lost anchor: the restored database was
    written to before the restore was recorded, so the gap begins there at the latest."""
    with Session(engine) as session:
        first: int | None = session.scalar(
            select(func.min(ledger.LedgerEntry.seq)).where(ledger.LedgerEntry.at > at))
    return first


def _gap_detail(chain: Chain, lost: list[Anchor], appended_from: int | None
                ) -> dict[str, int | str]:
    """From the chain's end, or earlier: the first anchor it disagrees with, the first entry
    appended since the lost chain's newest anchor; to the newest seq an anchor records."""
    starts = [chain.last_seq + 1, *(a.seq for a in lost if a.seq <= chain.last_seq)]
    return {
        "chain_end": chain.last_seq,
        "lost_from": min(starts + ([appended_from] if appended_from is not None else [])),
        "lost_to": max(anchor.seq for anchor in lost),
        "lost_anchor_at": max(anchor.at for anchor in lost).astimezone(UTC).isoformat(),
        "anchors_set_aside": len(lost),
    }
