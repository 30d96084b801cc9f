"""Judging the audit ledger's chain against its anchors (``dsr.ledger.verify``).

The chain (``dsr.ledger.walk_chain``) must reach every anchor and agree with it: an anchor
beyond the chain's end means entries were removed (a truncated tail, the head row rewound
with it), an anchor that disagrees means entries were rewritten. The anchors must be fresh:
the hourly Schedule and the daily purge both anchor, so no anchor newer than the maximum age
means anchoring has stopped and a truncation since would go unseen.

After a database restore the chain is legitimately shorter than the anchors: an
administrator records a ``restored_to`` entry (``dsr.ledger_restore``) naming the range
lost, and the anchors of the lost chain (those it names, and no later one) are set aside.
The gap is reported on every verification from then on, never hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from dsr.anchors import Anchor, StoredAnchor, genuine_anchors

GENESIS = "0" * 64
RESTORED_TO = "restored_to"  # the kind of an administrator's restore entry

Problem = tuple[int, str]  # the first entry it concerns, what is wrong


class Gap(BaseModel):
    """Entries lost in a database restore, as the administrator's entry records them."""

    first_seq: int
    last_seq: int
    chain_end: int
    lost_anchor_at: datetime
    recorded_seq: int
    recorded_at: datetime
    recorded_by: str

    @classmethod
    def from_entry(cls, seq: int, at: datetime, actor: str, detail: dict[str, Any]) -> Gap:
        return cls(first_seq=detail["lost_from"], last_seq=detail["lost_to"],
                   chain_end=detail["chain_end"], lost_anchor_at=detail["lost_anchor_at"],
                   recorded_seq=seq, recorded_at=at, recorded_by=actor)

    def covers(self, anchor: Anchor) -> bool:
        """An anchor of the lost chain: at or past the gap, and no newer than its newest."""
        return anchor.seq >= self.first_seq and anchor.at <= self.lost_anchor_at

    def describe(self) -> str:
        text = (f"entries {_span(self.first_seq, self.last_seq)} were lost in a database "
                f"restore, recorded as entry {self.recorded_seq} by {self.recorded_by} on "
                f"{self.recorded_at.isoformat()} (the chain then ended at entry "
                f"{self.chain_end}; the newest anchor lost is of "
                f"{self.lost_anchor_at.isoformat()})")
        if self.first_seq <= self.chain_end:
            text += (f"; entries {_span(self.first_seq, self.chain_end)} were written after "
                     "the restore, in place of lost ones")
        return text


@dataclass
class Chain:
    """The chain as recomputed: the MAC at each seq up to the first broken entry."""

    entries: int = 0
    last_seq: int = 0
    macs: dict[int, str] = field(default_factory=lambda: {0: GENESIS})
    problems: list[Problem] = field(default_factory=list)
    first_at: datetime | None = None
    gaps: list[Gap] = field(default_factory=list)
    head: tuple[int, str] | None = None


class VerifyResult(BaseModel):
    ok: bool
    entries: int
    last_seq: int
    anchors: int
    last_anchor_seq: int | None = None
    broken_seq: int | None = None
    problem: str | None = None
    last_anchor_at: datetime | None = None
    missing_range: list[int] | None = None  # [first, last] of the entries removed
    gaps: list[Gap] = Field(default_factory=list)  # lost in restores, as recorded
    problems: list[str] = Field(default_factory=list)  # all of them, the first as problem

    def describe(self) -> str:
        if self.ok:
            anchored = "none" if self.last_anchor_seq is None else str(self.last_anchor_seq)
            text = f"ledger intact: {self.entries} entries, last anchor seq {anchored}"
        elif self.broken_seq is not None:
            text = f"ledger broken at entry {self.broken_seq}: {self.problem}"
        else:
            text = f"ledger not verified: {self.problem}"
        if len(self.problems) > 1:
            text += f"\n({len(self.problems) - 1} more problems: --json lists them)"
        return text + "".join(f"\nnote: {gap.describe()}" for gap in self.gaps)


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


# Judging -----------------------------------------------------------------------------------


@dataclass
class Check:
    """What the anchors say: the problems with an entry, the others, the range removed."""

    at_entries: list[Problem] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    missing: list[int] | None = None


def judge(chain: Chain, stored: list[StoredAnchor], keys: Sequence[bytes], *, where: str,
          max_age: timedelta | None, now: datetime, read_problem: str | None = None
          ) -> VerifyResult:
    check = Check(at_entries=list(chain.problems))
    anchors: list[Anchor] = []
    for item in genuine_anchors(keys, stored):
        if isinstance(item, Anchor):
            anchors.append(item)
        else:
            check.elsewhere.append(item)
    if read_problem is not None:
        check.elsewhere.append(read_problem)
    live = [anchor for anchor in anchors if not any(gap.covers(anchor) for gap in chain.gaps)]
    if not chain.problems:
        _check_end(chain, live, check)
    check.at_entries += _disagreements(chain, live)
    if max_age is not None:
        check.elsewhere += _staleness(chain, anchors, max_age, now, where)
    return _result(chain, stored, live, check)


def _check_end(chain: Chain, live: list[Anchor], check: Check) -> None:
    """The chain must reach the head row and every anchor; the head must be its last MAC."""
    head_seq, head_mac = chain.head or (chain.last_seq, chain.macs[chain.last_seq])
    beyond = [anchor for anchor in live if anchor.seq > chain.last_seq]
    if beyond or head_seq > chain.last_seq:
        first = chain.last_seq + 1
        last, evidence = _beyond_the_chain(head_seq, beyond)
        missing = (f"entry {first} is missing" if first == last
                   else f"entries {first}-{last} are missing")
        check.missing = [first, last]
        check.at_entries.append((first, f"{missing}: the chain ends at {chain.last_seq} but "
                                        f"{evidence} (tail truncated)"))
    elif head_seq == chain.last_seq and head_mac != chain.macs[chain.last_seq]:
        check.at_entries.append(
            (chain.last_seq, "the head does not match the last entry (chain rewritten)"))


def _beyond_the_chain(head_seq: int, beyond: list[Anchor]) -> tuple[int, str]:
    """The last entry missing, and what records it: the newest anchor beyond, else the head
    row (which someone with database access could have rewound too)."""
    if not beyond:
        return head_seq, f"the head row records {head_seq}"
    newest = max(beyond, key=lambda anchor: (anchor.seq, anchor.at))
    evidence = f"an anchor of {newest.at.isoformat()} records {newest.seq}"
    if head_seq > newest.seq:
        evidence += f" (and the head row {head_seq})"
    return max(newest.seq, head_seq), evidence


def _disagreements(chain: Chain, live: list[Anchor]) -> list[Problem]:
    """The lowest anchor the chain disagrees with, blaming the entries since the last one it
    agrees with."""
    within = [anchor for anchor in live if anchor.seq in chain.macs]
    wrong = [anchor for anchor in within if anchor.mac != chain.macs[anchor.seq]]
    if not wrong:
        return []
    mark = min(wrong, key=lambda anchor: (anchor.seq, anchor.at))
    matched = max((anchor.seq for anchor in within
                   if anchor.seq < mark.seq and anchor.mac == chain.macs[anchor.seq]), default=0)
    return [(mark.seq, f"does not match its anchor of {mark.at.isoformat()}: an entry from seq "
                       f"{matched + 1} to {mark.seq} was rewritten and the chain recomputed "
                       "(or entries were removed and the chain went on)")]


def _staleness(chain: Chain, anchors: list[Anchor], max_age: timedelta, now: datetime,
               where: str) -> list[str]:
    hours = f"{max_age.total_seconds() / 3600:g}"
    fix = ("check the Schedule dsr-ledger-anchor (python starter.py setup-cluster recreates "
           "it) and the orchestrator worker, or run python starter.py ledger anchor on the "
           "server")
    if anchors:
        newest = max(anchors, key=lambda anchor: anchor.at)
        if now - newest.at <= max_age:
            return []
        return [f"the newest anchor is of {newest.at.isoformat()}, more than {hours} hours "
                f"ago: anchoring has stopped, so entries removed since would go unseen; {fix}"]
    if chain.first_at is None or now - chain.first_at <= max_age:
        return []  # an empty ledger, or one younger than the maximum age, needs none yet
    return [f"no anchor in {where}, though the ledger has had entries since "
            f"{chain.first_at.isoformat()}: nothing anchors it, or anchors go where this "
            "service does not read (DSR_LEDGER_ANCHOR_URL must be the same for the workers "
            f"and the officer service); {fix}"]


def _result(chain: Chain, stored: list[StoredAnchor], live: list[Anchor],
            check: Check) -> VerifyResult:
    """The first problem at an entry, else the first other; the newest anchor not set aside
    by a restore."""
    ordered = sorted(check.at_entries, key=lambda problem: problem[0])
    messages = [message for _, message in ordered] + check.elsewhere
    newest = max(live, key=lambda anchor: (anchor.at, anchor.seq), default=None)
    return VerifyResult(
        ok=not messages, entries=chain.entries, last_seq=chain.last_seq, anchors=len(stored),
        last_anchor_seq=newest.seq if newest else None,
        last_anchor_at=newest.at if newest else None,
        broken_seq=ordered[0][0] if ordered else None,
        problem=messages[0] if messages else None,
        missing_range=check.missing, gaps=chain.gaps, problems=messages)


def lost_anchors(chain: Chain, anchors: list[Anchor]) -> list[Anchor]:
    """The anchors a restore would set aside: beyond the chain, or disagreeing with it, and
    not set aside by an earlier restore."""
    live = [anchor for anchor in anchors if not any(gap.covers(anchor) for gap in chain.gaps)]
    return [anchor for anchor in live
            if anchor.seq > chain.last_seq or anchor.mac != chain.macs.get(anchor.seq)]
