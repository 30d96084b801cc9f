"""Video connector (24sessions): video meetings between a customer's staff and its end users,
and the visitors who joined them, held for the customers that host the meetings.

The customer is the controller of its end users' data and the group its processor, so every
lookup is confined to one customer account: without ``scope.customer_account`` the connector
finds nothing, and it never searches across customers. A visitor is found by email address
(case-insensitively) or phone number; a meeting is the subject's when the subject joined it.
Everything is dated by the meeting's ``scheduled_at``.

Erasure, per category:
- ``meeting_details``: the meeting's description, review and summary are cleared; its date stays;
- ``recordings``: the meeting's recording is deleted (its reference goes);
- ``visitor_details``: the visitor is cut loose from the person: name, email, phone and IP are
  cleared and the row is marked ``anonymised_at`` (the meeting still counts its visitors). A
  meeting the subject can no longer be found in must not keep what could identify them, so
  its details and recording go too.

Restriction is by keyed hash of each identity; a rectified address or number stays restricted
(the corrected identity is restricted too).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar, cast

from pydantic import ValidationError
from sqlalchemy import ColumnElement, CursorResult, func, select, update
from sqlalchemy.orm import Session

from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.cutoffs import id_chunks
from connectors.kit.errors import ConnectorInputError
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from connectors.kit.restrictions import is_restricted
from connectors.video_store import (
    CATEGORIES,
    DETAIL_FIELDS,
    IDENTITY_FIELDS,
    MEETING_DETAILS,
    RECORDINGS,
    RECTIFIABLE,
    TREATMENTS,
    VISITOR_DETAILS,
    VISITOR_FIELDS,
    Meeting,
    Restriction,
    VideoBase,
    VideoOperationLog,
    VideoSubject,
    Visitor,
    has_details,
    held,
    locate_holders,
    meeting_ids,
    video_subject,
    visitor_where,
)
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    FlagInput,
    Scope,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.models import Identity

# --- the connector -------------------------------------------------------------------------


class VideoConnector(CutoffConnector[VideoSubject]):
    name: ClassVar[str] = "video"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = (
        "discover",
        "access",
        "erase",
        "rectify",
        "restrict",
        "locate",
        "sweep",
    )

    schema = VideoBase
    operation_log = VideoOperationLog
    restriction_model = Restriction
    correctable = RECTIFIABLE

    subject = staticmethod(video_subject)
    holders = staticmethod(locate_holders)

    def holding(
        self, session: Session, subject: VideoSubject, category: str
    ) -> CategoryHolding | None:
        return _holding(session, subject, category)

    def export_chunks(
        self, session: Session, subject: VideoSubject
    ) -> Iterator[list[dict[str, Any]]]:
        return _export_chunks(session, subject)

    def corrected(self, field: str, value: str) -> str:
        return _corrected(field, value)

    def is_restricted(self, customer_account: str, identity: Identity) -> bool:
        """Whether processing of this end user's video data is restricted for this customer."""
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- erase, rectify and restrict, inside the operation's transaction -------------------

    def erase_now(
        self, session: Session, subject: VideoSubject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        as_of = scope.as_of
        erased: dict[str, int] = {}
        for category in (MEETING_DETAILS, RECORDINGS):
            if category in cutoffs:
                ids = _ids_before(session, subject, category, cutoffs[category])
                erased[category] = _clear_meetings(session, category, ids)
        if VISITOR_DETAILS in cutoffs:
            for category, count in _unlink(session, subject, cutoffs[VISITOR_DETAILS], as_of):
                if category in cutoffs or count:
                    erased[category] = erased.get(category, 0) + count
        retained = {category: _count(session, subject, category) for category in cutoffs}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The erase of every visit to a meeting scheduled before the widest cutoff (and of
        those meetings), a chunk of visits at a time."""
        scope = sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        if cutoffs:
            before = select(Meeting.id).where(Meeting.scheduled_at < max(cutoffs.values()))
            pending: list[ColumnElement[bool]] = [
                Visitor.anonymised_at.is_(None),
                Visitor.meeting_id.in_(before),
            ]
            for ids in id_chunks(session, Visitor.id, pending):
                chunk = VideoSubject("", (), (), (Visitor.id.in_(ids),))
                anonymised.update(self.erase_now(session, chunk, cutoffs, scope).erased)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def rectify_now(
        self, session: Session, subject: VideoSubject, values: dict[str, str], scope: Scope
    ) -> dict[str, int]:
        """Correct the subject's visits; a corrected address or number stays restricted if
        the subject was."""
        updated = _correct(session, subject, values)
        for name, value in values.items():
            if name in IDENTITY_FIELDS:
                corrected = _corrected_identity(name, value)
                self.restrictions.carry_over(session, subject.customer_account, scope, corrected)
        return updated

    def restrict_now(self, session: Session, subject: VideoSubject, call: FlagInput) -> int:
        customer = subject.customer_account
        self.restrictions.place_or_lift(session, customer, call, subject.identities)
        return _subject_rows(session, subject)


# --- queries -------------------------------------------------------------------------------


def _holding(session: Session, subject: VideoSubject, category: str) -> CategoryHolding | None:
    rows = held(subject, category).subquery()
    count, earliest, latest = session.execute(
        select(func.count(), func.min(rows.c.scheduled_at), func.max(rows.c.scheduled_at))
    ).one()
    if not count:
        return None
    return CategoryHolding(category=category, records=count, earliest=earliest, latest=latest)


def _count(session: Session, subject: VideoSubject, category: str) -> int:
    rows = held(subject, category).subquery()
    return session.scalar(select(func.count()).select_from(rows)) or 0


def _subject_rows(session: Session, subject: VideoSubject) -> int:
    """The subject's rows a restriction covers: its visits and the meetings they were in."""
    visits = _count(session, subject, VISITOR_DETAILS)
    meetings = select(func.count()).where(Meeting.id.in_(meeting_ids(subject)))
    return visits + (session.scalar(meetings) or 0)


def _ids_before(
    session: Session, subject: VideoSubject, category: str, before: datetime
) -> list[int]:
    rows = held(subject, category).subquery()
    return list(session.scalars(select(rows.c.id).where(rows.c.scheduled_at < before)))


def _changed(session: Session, statement: Any) -> int:
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _clear_meetings(session: Session, category: str, ids: list[int]) -> int:
    """Clear a meeting category on the given meetings where they still hold it."""
    if category == MEETING_DETAILS:
        holds, values = has_details(), dict.fromkeys(DETAIL_FIELDS)
    else:
        holds, values = Meeting.recording_ref.is_not(None), {"recording_ref": None}
    statement = (
        update(Meeting)
        .where(Meeting.id.in_(ids), holds)
        .values(values)
        .execution_options(synchronize_session=False)
    )
    return _changed(session, statement)


def _unlink(
    session: Session, subject: VideoSubject, before: datetime, as_of: datetime
) -> list[tuple[str, int]]:
    """Cut loose the subject's visits to meetings before ``before``, and clear what those
    meetings hold; returns the count per category."""
    visits = held(subject, VISITOR_DETAILS).subquery()
    rows = session.execute(
        select(Visitor.id, Visitor.meeting_id).where(
            Visitor.id.in_(select(visits.c.id).where(visits.c.scheduled_at < before))
        )
    ).all()
    meetings = sorted({row.meeting_id for row in rows})
    cleared = [
        (category, _clear_meetings(session, category, meetings))
        for category in (MEETING_DETAILS, RECORDINGS)
    ]
    statement = (
        update(Visitor)
        .where(Visitor.id.in_([row.id for row in rows]))
        .values({**dict.fromkeys(VISITOR_FIELDS), "anonymised_at": as_of})
        .execution_options(synchronize_session=False)
    )
    return [*cleared, (VISITOR_DETAILS, _changed(session, statement))]


def _correct(session: Session, subject: VideoSubject, values: dict[str, str]) -> dict[str, int]:
    """Correct each field where the subject's visits hold it (they are found first, so that
    correcting an identity does not lose them)."""
    ids = list(session.scalars(select(Visitor.id).where(*visitor_where(subject))))
    updated = {}
    for name, value in values.items():
        column = getattr(Visitor, name)
        statement = (
            update(Visitor)
            .where(Visitor.id.in_(ids), column.is_not(None))
            .values({name: value})
            .execution_options(synchronize_session=False)
        )
        updated[name] = _changed(session, statement)
    return updated


# --- export --------------------------------------------------------------------------------


def _export_chunks(session: Session, subject: VideoSubject) -> Iterator[list[dict[str, Any]]]:
    """Each of the subject's visits with the meeting it was in, one chunk per partition."""
    statement = (
        select(Visitor, Meeting)
        .join(Meeting, Meeting.id == Visitor.meeting_id)
        .where(*visitor_where(subject))
        .order_by(Meeting.scheduled_at, Visitor.id)
        .execution_options(yield_per=EXPORT_CHUNK_ROWS)
    )
    for partition in session.execute(statement).partitions():
        yield [record for visitor, meeting in partition for record in _records(visitor, meeting)]


def _records(visitor: Visitor, meeting: Meeting) -> Iterator[dict[str, Any]]:
    """One record per category: the visit, and what its meeting still holds."""
    ids = {"meeting_id": meeting.id, "customer_account": meeting.customer_account}
    yield {
        "category": VISITOR_DETAILS,
        "visitor_id": visitor.id,
        **ids,
        "scheduled_at": meeting.scheduled_at,
        **{name: getattr(visitor, name) for name in VISITOR_FIELDS},
    }
    if any(getattr(meeting, name) is not None for name in DETAIL_FIELDS):
        yield {
            "category": MEETING_DETAILS,
            **ids,
            "scheduled_at": meeting.scheduled_at,
            **{name: getattr(meeting, name) for name in DETAIL_FIELDS},
        }
    if meeting.recording_ref is not None:
        yield {"category": RECORDINGS, **ids, "recording_ref": meeting.recording_ref}


# --- rules ---------------------------------------------------------------------------------


def _corrected(field: str, value: str) -> str:
    """A corrected value; an identity is checked. An error names the field."""
    if field in IDENTITY_FIELDS:
        _corrected_identity(field, value)
    return value


def _corrected_identity(name: str, value: str) -> Identity:
    """A corrected address or number as an identity; an error names the field, never the
    value."""
    try:
        return Identity(type=IDENTITY_FIELDS[name], value=value)
    except ValidationError:
        raise ConnectorInputError(f"corrected {name} is malformed") from None
