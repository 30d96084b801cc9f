"""The Video store: its tables (``meetings`` and ``visitors``), the categories and their treatments,
and whose rows a subject's are (``connectors.video`` is the connector that works on it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    false,
    func,
    or_,
    select,
    text,
    union,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connectors.kit.restrictions import RestrictionMixin
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import Scope, Strategy, treat
from dsr.models import Identity, IdentityType

MEETING_DETAILS = "meeting_details"
VISITOR_DETAILS = "visitor_details"
RECORDINGS = "recordings"
CATEGORIES = (MEETING_DETAILS, VISITOR_DETAILS, RECORDINGS)
RECTIFIABLE = ("name", "email", "phone")
IDENTITY_FIELDS = {"email": IdentityType.EMAIL, "phone": IdentityType.PHONE}
DETAIL_FIELDS = ("description", "review", "summary")
VISITOR_FIELDS = ("name", "email", "phone", "ip")
CLEAR_DETAILS = tuple((column, Strategy.NULL) for column in DETAIL_FIELDS)
CLEAR_RECORDING = (("recording_ref", Strategy.NULL),)
UNLINK_VISITOR = (
    *((column, Strategy.NULL) for column in VISITOR_FIELDS),
    ("anonymised_at", Strategy.MARK),
)


TREATMENTS = (
    *treat(MEETING_DETAILS, "meetings", CLEAR_DETAILS),
    *treat(RECORDINGS, "meetings", CLEAR_RECORDING),
    *treat(VISITOR_DETAILS, "visitors", UNLINK_VISITOR),
    # A meeting the subject can no longer be found in loses its details and recording.
    *treat(VISITOR_DETAILS, "meetings", CLEAR_DETAILS + CLEAR_RECORDING),
)


class VideoBase(DeclarativeBase):
    pass


class Meeting(VideoBase):
    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    scheduled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    description: Mapped[str | None] = mapped_column(Text)
    review: Mapped[str | None] = mapped_column(Text)  # optional
    summary: Mapped[str | None] = mapped_column(Text)  # optional
    recording_ref: Mapped[str | None] = mapped_column(String(200))  # optional


class Visitor(VideoBase):
    """One person who joined a meeting; ``customer_account`` repeats the meeting's, so that
    one subject's visits at one customer are found by index."""

    __tablename__ = "visitors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))  # optional
    ip: Mapped[str | None] = mapped_column(String(45))
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_visitors_phone", "customer_account", "phone"),
        # locating the controllers of an identity, across customers
        Index("ix_visitors_locate_email", func.lower(text("email"))),
        Index("ix_visitors_locate_phone", "phone"),
    )


class Restriction(RestrictionMixin, VideoBase):
    pass


class VideoOperationLog(OperationLogMixin, VideoBase):
    pass


# One subject's visits at one customer by email; addresses match case-insensitively.
Index("ix_visitors_email", Visitor.customer_account, func.lower(Visitor.email))


# --- the subject ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoSubject:
    customer_account: str
    emails: tuple[str, ...]  # lower-cased
    phones: tuple[str, ...]
    # A sweep's filter in place of the identities: the visits it names, any customer's.
    where: tuple[ColumnElement[bool], ...] = ()

    @property
    def identities(self) -> list[Identity]:
        return [Identity(type=IdentityType.EMAIL, value=email) for email in self.emails] + [
            Identity(type=IdentityType.PHONE, value=phone) for phone in self.phones
        ]


def video_subject(scope: Scope) -> VideoSubject | None:
    """The addresses and numbers to look up at the scope's customer; none without a customer
    account."""
    emails = sorted({i.value.lower() for i in scope.identities if i.type is IdentityType.EMAIL})
    phones = sorted({i.value for i in scope.identities if i.type is IdentityType.PHONE})
    if scope.customer_account is None or not (emails or phones):
        return None
    return VideoSubject(scope.customer_account, tuple(emails), tuple(phones))


def locate_holders(scope: Scope) -> Select[str] | None:
    """The customers holding visits of these addresses and numbers, across customers: one
    lookup per identity type (``ix_visitors_locate_email`` and ``ix_visitors_locate_phone``);
    none without either."""
    emails = sorted({i.value.lower() for i in scope.identities if i.type is IdentityType.EMAIL})
    phones = sorted({i.value for i in scope.identities if i.type is IdentityType.PHONE})
    lookups = [
        select(Visitor.customer_account).where(match, Visitor.anonymised_at.is_(None))
        for match in (
            func.lower(Visitor.email).in_(emails) if emails else None,
            Visitor.phone.in_(phones) if phones else None,
        )
        if match is not None
    ]
    if not lookups:
        return None
    held = union(*lookups).subquery()
    return select(held.c.customer_account).order_by(held.c.customer_account)


def visitor_where(subject: VideoSubject) -> list[ColumnElement[bool]]:
    """The subject's visits: one indexed lookup per identity type, each confined to the
    customer, joined by id (an OR across the indexes is left to the planner's guesses)."""
    if subject.where:
        return [*subject.where, Visitor.anonymised_at.is_(None)]
    lookups = [
        select(Visitor.id).where(Visitor.customer_account == subject.customer_account, match)
        for match in (
            func.lower(Visitor.email).in_(subject.emails) if subject.emails else None,
            Visitor.phone.in_(subject.phones) if subject.phones else None,
        )
        if match is not None
    ]
    return [
        Visitor.id.in_(union(*lookups)) if lookups else false(),
        Visitor.anonymised_at.is_(None),
    ]


def subject_visitors(
    customer_account: str, emails: list[str], phones: list[str]
) -> Select[Visitor]:
    """The subject lookup every operation starts from (``ix_visitors_email`` and
    ``ix_visitors_phone``)."""
    subject = VideoSubject(customer_account, tuple(e.lower() for e in emails), tuple(phones))
    return select(Visitor).where(*visitor_where(subject))


def meeting_ids(subject: VideoSubject) -> Select[int]:
    return select(Visitor.meeting_id).where(*visitor_where(subject))


def has_details() -> ColumnElement[bool]:
    return or_(*(getattr(Meeting, name).is_not(None) for name in DETAIL_FIELDS))


def held(subject: VideoSubject, category: str) -> Select[int, datetime]:
    """The ids and dates of the subject's rows still holding ``category``."""
    if category == VISITOR_DETAILS:
        return (
            select(Visitor.id, Meeting.scheduled_at)
            .join(Meeting, Meeting.id == Visitor.meeting_id)
            .where(*visitor_where(subject))
        )
    holds = has_details() if category == MEETING_DETAILS else Meeting.recording_ref.is_not(None)
    return select(Meeting.id, Meeting.scheduled_at).where(
        Meeting.id.in_(meeting_ids(subject)), holds
    )
