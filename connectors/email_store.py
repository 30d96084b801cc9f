"""The Email store: its tables (``recipients``, ``sends`` and ``events``), the categories and
their treatments, whose rows a subject's are and the subject's records as exported
(``connectors.email`` is the connector that works on it)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from connectors.kit.queries import Held, export_partitions, fields
from connectors.kit.restrictions import RestrictionMixin
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import Scope, Strategy, treat
from dsr.models import Identity, IdentityType

CONTACT_DETAILS = "contact_details"
SEGMENT_DATA = "segment_data"
USAGE_AND_DEVICE = "usage_and_device"
MESSAGE_CONTENT = "message_content"
CATEGORIES = (CONTACT_DETAILS, SEGMENT_DATA, USAGE_AND_DEVICE, MESSAGE_CONTENT)
EVENT_TYPES = ("delivery", "open", "click", "bounce")
RECTIFIABLE = ("name", "email")
# The usage data an event holds until it is anonymised, and the content a send holds.
USAGE_FIELDS = ("ip", "user_agent", "geo_country", "geo_city", "target_link", "cookie_id")
CONTENT_FIELDS = ("subject", "body")
CLEAR_CONTENT = tuple((column, Strategy.NULL) for column in CONTENT_FIELDS)
ANONYMISE_EVENT = (
    *((column, Strategy.NULL) for column in USAGE_FIELDS),
    ("occurred_at", Strategy.TO_DAY),
    ("anonymised_at", Strategy.MARK),
)
CLEAR_SEGMENTS = (("segment_data", Strategy.NULL),)
UNLINK_ENTRY = (
    ("email", Strategy.PSEUDONYM),
    ("name", Strategy.NULL),
    *CLEAR_SEGMENTS,
    ("anonymised_at", Strategy.MARK),
)
TREATMENTS = (
    *treat(MESSAGE_CONTENT, "sends", CLEAR_CONTENT),
    *treat(USAGE_AND_DEVICE, "events", ANONYMISE_EVENT),
    *treat(SEGMENT_DATA, "recipients", CLEAR_SEGMENTS),
    # Cutting an entry loose takes what hangs from it too.
    *treat(CONTACT_DETAILS, "recipients", UNLINK_ENTRY),
    *treat(CONTACT_DETAILS, "sends", CLEAR_CONTENT),
    *treat(CONTACT_DETAILS, "events", ANONYMISE_EVENT),
)


class EmailBase(DeclarativeBase):
    pass


class Recipient(EmailBase):
    __tablename__ = "recipients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    list_id: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(254))  # or a pseudonym once anonymised
    name: Mapped[str | None] = mapped_column(String(200))
    segment_data: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    # Locating the controllers of an address, across customers (case-insensitively).
    __table_args__ = (Index("ix_recipients_locate_email", func.lower(text("email"))),)


class Send(EmailBase):
    """One message sent to one recipient entry."""

    __tablename__ = "sends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"))
    campaign: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_sends_recipient", "recipient_id", "sent_at"),)


class Event(EmailBase):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"))
    send_id: Mapped[int | None] = mapped_column(ForeignKey("sends.id"))
    type: Mapped[str] = mapped_column(String(12))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    geo_country: Mapped[str | None] = mapped_column(String(2))
    geo_city: Mapped[str | None] = mapped_column(String(100))
    target_link: Mapped[str | None] = mapped_column(String(500))
    cookie_id: Mapped[str | None] = mapped_column(String(64))
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_events_recipient", "recipient_id", "occurred_at"),
        CheckConstraint("type IN ('delivery', 'open', 'click', 'bounce')", name="ck_events_type"),
    )


class Restriction(RestrictionMixin, EmailBase):
    pass


class EmailOperationLog(OperationLogMixin, EmailBase):
    pass


# One subject's entries at one customer; addresses match case-insensitively.
Index("ix_recipients_subject", Recipient.customer_account, func.lower(Recipient.email))
# A send still holding its content.
SEND_HOLDS_CONTENT = or_(Send.subject.is_not(None), Send.body.is_not(None))


# --- the subject ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailSubject:
    customer_account: str
    emails: tuple[str, ...]  # lower-cased
    # A sweep's filter in place of the addresses: the entries it names, any customer's.
    where: tuple[ColumnElement[bool], ...] = ()

    @property
    def identities(self) -> list[Identity]:
        return [Identity(type=IdentityType.EMAIL, value=email) for email in self.emails]


def email_subject(scope: Scope) -> EmailSubject | None:
    """The addresses to look up at the scope's customer; none without a customer account."""
    emails = sorted({i.value.lower() for i in scope.identities if i.type is IdentityType.EMAIL})
    if scope.customer_account is None or not emails:
        return None
    return EmailSubject(scope.customer_account, tuple(emails))


def locate_holders(scope: Scope) -> Select[str] | None:
    """The customers holding recipient entries of these addresses, across customers (served by
    ``ix_recipients_locate_email``); none without an email address."""
    emails = sorted({i.value.lower() for i in scope.identities if i.type is IdentityType.EMAIL})
    if not emails:
        return None
    return (
        select(Recipient.customer_account)
        .where(func.lower(Recipient.email).in_(emails), Recipient.anonymised_at.is_(None))
        .distinct()
        .order_by(Recipient.customer_account)
    )


def recipient_where(subject: EmailSubject) -> list[ColumnElement[bool]]:
    if subject.where:
        return [*subject.where, Recipient.anonymised_at.is_(None)]
    return [
        Recipient.customer_account == subject.customer_account,
        func.lower(Recipient.email).in_(subject.emails),
        Recipient.anonymised_at.is_(None),
    ]


def subject_recipients(customer_account: str, emails: list[str]) -> Select[Recipient]:
    """The subject lookup every operation starts from (served by ``ix_recipients_subject``)."""
    subject = EmailSubject(customer_account, tuple(email.lower() for email in emails))
    return select(Recipient).where(*recipient_where(subject))


def recipient_ids(subject: EmailSubject) -> Select[int]:
    return select(Recipient.id).where(*recipient_where(subject))


def part(subject: EmailSubject, category: str) -> Held:
    """Where one category lives: its table, its date and the subject's rows still holding it."""
    if category == CONTACT_DETAILS:
        return Held(Recipient.created_at, recipient_where(subject))
    if category == SEGMENT_DATA:
        held = [*recipient_where(subject), Recipient.segment_data.is_not(None)]
        return Held(Recipient.created_at, held)
    ids = recipient_ids(subject)
    if category == USAGE_AND_DEVICE:
        return Held(Event.occurred_at, [Event.recipient_id.in_(ids), Event.anonymised_at.is_(None)])
    return Held(Send.sent_at, [Send.recipient_id.in_(ids), SEND_HOLDS_CONTENT])


# --- export --------------------------------------------------------------------------------


def subject_export_chunks(
    session: Session, subject: EmailSubject
) -> Iterator[list[dict[str, Any]]]:
    """The subject's entries (contact and segment data), then its sends' content, then the
    usage its events hold, one chunk per partition."""
    sources: list[tuple[Select[Any], Any]] = [
        (select(Recipient).where(*recipient_where(subject)).order_by(Recipient.id), _entry),
        (select(Send).where(*part(subject, MESSAGE_CONTENT).where).order_by(Send.id), _send),
        (select(Event).where(*part(subject, USAGE_AND_DEVICE).where).order_by(Event.id), _event),
    ]
    for statement, records in sources:
        yield from export_partitions(session, statement, records)


def _entry(recipient: Recipient) -> Iterator[dict[str, Any]]:
    ids = {"recipient_id": recipient.id, "customer_account": recipient.customer_account}
    contact = fields(recipient, "list_id", "email", "name", "created_at")
    yield {"category": CONTACT_DETAILS, **ids, **contact}
    if recipient.segment_data is not None:
        yield {"category": SEGMENT_DATA, **ids, "segment_data": recipient.segment_data}


def _send(send: Send) -> Iterator[dict[str, Any]]:
    content = fields(send, "recipient_id", "campaign", "sent_at", *CONTENT_FIELDS)
    yield {"category": MESSAGE_CONTENT, "send_id": send.id, **content}


def _event(event: Event) -> Iterator[dict[str, Any]]:
    usage = fields(event, "recipient_id", "send_id", "type", "occurred_at", *USAGE_FIELDS)
    yield {"category": USAGE_AND_DEVICE, "event_id": event.id, **usage}
