"""Reading and writing the request register. Every write is idempotent, keyed by request id
and milestone key, so an activity retried after a crash records each milestone once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dsr import ledger, notes
from dsr.database import MilestoneRecord, RequestRecord, RequestSubjectRecord
from dsr.models import Identity, RightsRequest
from dsr.serverkeys import ServerKeys

# The same subject asking for the same right again within this is shown as a possible duplicate.
DUPLICATE_WINDOW = timedelta(days=30)
# What a milestone may change in the register (and the ledger records when it does).
MILESTONE_FIELDS = (
    "status", "due_at", "extended", "overdue", "affiliates", "policy_version", "outcome",
)


class Milestone(BaseModel):
    """A step reached. ``detail`` holds ids, counts, dates and an officer's notes and reasons
    (``notes.NOTE_FIELDS``: sealed in the register, a keyed hash in the ledger), never
    identities."""

    request_id: str
    key: str
    step: str
    at: datetime
    actor: str = "orchestrator"
    detail: dict[str, Any] = Field(default_factory=dict)
    status: str | None = None
    due_at: datetime | None = None
    extended: bool | None = None
    overdue: bool | None = None
    affiliates: list[str] | None = None
    policy_version: str | None = None
    outcome: str | None = None
    closed: bool = False


@dataclasses.dataclass(frozen=True)
class RegisterKeys:
    """What recording a milestone needs: the ledger's chain key and the notes' keys."""

    ledger_key: bytes = dataclasses.field(repr=False)
    note_keys: notes.NoteKeys

    @classmethod
    def from_secret(cls, secret: bytes) -> RegisterKeys:
        return cls(ledger.ledger_key(secret), notes.NoteKeys.from_secret(secret))


class RequestFilter(BaseModel):
    status: str | None = None
    right: str | None = None
    jurisdiction: str | None = None
    overdue: bool = False
    child: bool = False  # only requests reporting a child's data
    limit: int = 100


def subject_hashes(keys: ServerKeys, request: RightsRequest) -> list[str]:
    """The subject's identities as the register keeps them: under the current key."""
    return sorted({keys.identities.tag(identity.normalised) for identity in request.identities})


def subject_forms(keys: ServerKeys, identities: Iterable[Identity]) -> list[str]:
    """Every form the identities may be kept in: under each key held, and bare (before key
    ids): what a match looks for."""
    index = keys.identities
    return sorted({form for identity in identities for form in index.candidates(
        identity.normalised)})


def possible_duplicates(session: Session, keys: ServerKeys, request: RightsRequest) -> list[str]:
    """Earlier requests of the same subject (an identity's keyed hash in common) for one of
    the same rights, received within the window before this one: possibly the same request
    sent twice. From the register, since Temporal may no longer hold the first. An indexed
    lookup of ``request_subjects`` by subject hash and receipt time."""
    rights = {right.value for right in request.rights}
    candidates = session.execute(
        select(RequestRecord.request_id, RequestRecord.rights)
        .join(RequestSubjectRecord, RequestSubjectRecord.request_id == RequestRecord.request_id)
        .where(
            RequestSubjectRecord.subject_hash.in_(subject_forms(keys, request.identities)),
            RequestSubjectRecord.received_at >= request.received_at - DUPLICATE_WINDOW,
            RequestSubjectRecord.received_at <= request.received_at,
            RequestSubjectRecord.request_id != request.request_id,
        )
        .order_by(RequestRecord.received_at, RequestRecord.request_id)
    )
    same_right = [row.request_id for row in candidates if rights & set(row.rights)]
    return list(dict.fromkeys(same_right))  # once each, though found once per hash in common


def record_intake(
    engine: Engine,
    request: RightsRequest,
    keys: ServerKeys,
    at: datetime,
    submitted_by: str | None = None,
) -> list[str]:
    """Register the request; the ledger names the officer who entered it, or ``intake``.
    Returns the possible duplicates (see :func:`possible_duplicates`)."""
    with Session(engine) as session, session.begin():
        duplicates = possible_duplicates(session, keys, request)
        if session.get(RequestRecord, request.request_id) is not None:
            return duplicates
        hashes = subject_hashes(keys, request)
        session.add(
            RequestRecord(
                request_id=request.request_id,
                rights=[right.value for right in request.rights],
                jurisdiction=request.jurisdiction.value,
                channel=request.channel.value,
                requester_kind=request.requester.kind.value,
                customer_account=request.requester.customer_account,
                language=request.language.value,
                subject_hashes=hashes,
                child=request.is_child,
                status="received",
                received_at=request.received_at,
                updated_at=at,
            )
        )
        session.add_all(  # inserted after the request (the unit of work follows the FK)
            RequestSubjectRecord(
                subject_hash=subject_hash,
                request_id=request.request_id,
                received_at=request.received_at,
            )
            for subject_hash in hashes
        )
        ledger.append(
            session,
            "received",
            submitted_by or "intake",
            request.received_at,
            request.request_id,
            {
                "rights": [right.value for right in request.rights],
                "jurisdiction": request.jurisdiction.value,
                "channel": request.channel.value,
                "requester_kind": request.requester.kind.value,
                **({"possible_duplicate_of": duplicates} if duplicates else {}),
                **({"child": True} if request.is_child else {}),
            },
            ledger.ledger_key(keys.secret),
        )
    return duplicates


def record_milestone(engine: Engine, milestone: Milestone, keys: RegisterKeys) -> None:
    """Record a new milestone, and its audit-ledger entry in the same transaction: the
    officer's notes sealed in the register, as keyed hashes in the ledger."""
    with Session(engine) as session, session.begin():
        record = session.get(RequestRecord, milestone.request_id)
        if record is None:
            raise LookupError(f"request {milestone.request_id} is not in the register")
        exists = session.scalar(
            select(MilestoneRecord.id).where(
                MilestoneRecord.request_id == milestone.request_id,
                MilestoneRecord.key == milestone.key,
            )
        )
        if exists is not None:
            return
        session.add(
            MilestoneRecord(
                request_id=milestone.request_id,
                key=milestone.key,
                step=milestone.step,
                at=milestone.at,
                actor=milestone.actor,
                detail=notes.sealed_detail(
                    keys.note_keys, milestone.request_id, milestone.key, milestone.detail
                ),
            )
        )
        _apply(record, milestone)
        ledger.append(
            session,
            "milestone",
            milestone.actor,
            milestone.at,
            milestone.request_id,
            _ledger_detail(milestone, keys.note_keys),
            keys.ledger_key,
        )


def _ledger_detail(milestone: Milestone, note_keys: notes.NoteKeys) -> dict[str, Any]:
    """The milestone as the ledger keeps it: its key, step, detail (notes as keyed hashes)
    and register changes."""
    detail: dict[str, Any] = {"key": milestone.key, "step": milestone.step}
    if milestone.detail:
        detail["detail"] = notes.hashed_detail(note_keys, milestone.detail)
    for field in MILESTONE_FIELDS:
        value = getattr(milestone, field)
        if value is not None:
            detail[field] = value
    if milestone.closed:
        detail["closed"] = True
    return detail


def _apply(record: RequestRecord, milestone: Milestone) -> None:
    for field in MILESTONE_FIELDS:
        value = getattr(milestone, field)
        if value is not None:
            setattr(record, field, value)
    if milestone.closed:
        record.closed_at = milestone.at
    record.updated_at = milestone.at


def get_request(engine: Engine, request_id: str) -> tuple[RequestRecord, list[MilestoneRecord]]:
    with Session(engine, expire_on_commit=False) as session:
        record = session.get(RequestRecord, request_id)
        if record is None:
            raise LookupError(f"no request {request_id} in the register")
        milestones = session.scalars(
            select(MilestoneRecord)
            .where(MilestoneRecord.request_id == request_id)
            .order_by(MilestoneRecord.id)
        ).all()
        return record, list(milestones)


def readable_detail(milestone: MilestoneRecord, note_keys: notes.NoteKeys) -> dict[str, Any]:
    """A recorded milestone's detail as an officer reads it: its notes opened."""
    return notes.opened_detail(note_keys, milestone.request_id, milestone.key, milestone.detail)


def list_requests(engine: Engine, filters: RequestFilter, now: datetime) -> list[RequestRecord]:
    query = select(RequestRecord).order_by(RequestRecord.received_at.desc())
    if filters.status:
        query = query.where(RequestRecord.status == filters.status)
    if filters.jurisdiction:
        query = query.where(RequestRecord.jurisdiction == filters.jurisdiction)
    if filters.child:
        query = query.where(RequestRecord.child.is_(True))
    if filters.overdue:
        query = query.where(RequestRecord.closed_at.is_(None), RequestRecord.due_at < now)
    with Session(engine, expire_on_commit=False) as session:
        records = list(session.scalars(query).all())
    if filters.right:
        records = [record for record in records if filters.right in record.rights]
    return records[: filters.limit]
