"""The request register: its tables (requests, their subjects' hashes, milestones, and the
answers kept as proof), read and written. Every write is idempotent, keyed by request id and
milestone key, so an activity retried after a crash records each milestone once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import (
    JSON,
    Boolean,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    false,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from dsr import ledger, notes
from dsr.models import Identity, RightsRequest
from dsr.orm import Base, UtcDateTime
from dsr.serverkeys import ServerKeys


class RequestRecord(Base):
    __tablename__ = "requests"
    # Server defaults (child) read back when used, not by RETURNING on every insert: a row
    # written at a revision before the column (as the migration tests do) still inserts.
    __mapper_args__ = {"eager_defaults": False}  # noqa: RUF012  (SQLAlchemy's declaration)

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rights: Mapped[list[str]] = mapped_column(JSON)
    jurisdiction: Mapped[str] = mapped_column(String(8), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    requester_kind: Mapped[str] = mapped_column(String(20))
    customer_account: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(5))
    subject_hashes: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), index=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    extended: Mapped[bool] = mapped_column(Boolean, default=False)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    # A report that the subject is a child (privacy statement s.10): a marker, no age or date.
    child: Mapped[bool] = mapped_column(Boolean, server_default=false())
    affiliates: Mapped[list[str]] = mapped_column(JSON, default=list)
    policy_version: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RequestSubjectRecord(Base):
    """One subject hash of a registered request: the index possible duplicates are found by."""

    __tablename__ = "request_subjects"
    __table_args__ = (
        Index("ix_request_subjects_subject_hash_received_at", "subject_hash", "received_at"),
    )

    subject_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(
        ForeignKey("requests.request_id"), primary_key=True, index=True  # the purge's delete
    )
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)  # the request's, for the window


class MilestoneRecord(Base):
    __tablename__ = "milestones"
    __table_args__ = (UniqueConstraint("request_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.request_id"), index=True)
    key: Mapped[str] = mapped_column(String(80))
    step: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ConfirmationRecord(Base):
    """The answer as sent: proof that the request was honoured, kept for its retention."""

    __tablename__ = "confirmations"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)
    retain_until: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    message: Mapped[bytes] = mapped_column(LargeBinary)  # sealed: dsr.codec.unseal reads it


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
