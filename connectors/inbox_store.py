"""The Inbox store: its tables (``conversations`` and ``messages``), the categories and their
treatments, and whose rows a subject's are (``connectors.inbox`` is the connector that works on
it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    and_,
    false,
    or_,
    select,
    union,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, mapped_column

from connectors.kit.restrictions import RestrictionMixin
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import Scope, Strategy, Treatment
from dsr.models import Identity, IdentityType

CONTACT_IDENTIFIERS = "contact_identifiers"
CONVERSATION_CONTENT = "conversation_content"
AGENT_NOTES = "agent_notes"
CATEGORIES = (CONTACT_IDENTIFIERS, CONVERSATION_CONTENT, AGENT_NOTES)
MESSAGE_CATEGORIES = (CONVERSATION_CONTENT, AGENT_NOTES)
CONTACT_COLUMNS = ("contact_phone", "contact_email", "contact_channel_id", "contact_name")
CORRECTABLE = {"name": "contact_name", "email": "contact_email"}
TREATMENTS = (
    *(
        Treatment(
            category=CONTACT_IDENTIFIERS, table="conversations", column=column, strategy=strategy
        )
        for column, strategy in (
            *((column, Strategy.NULL) for column in CONTACT_COLUMNS),
            ("anonymised_at", Strategy.MARK),
        )
    ),
    *(
        Treatment(category=category, table="messages", column="*", strategy=Strategy.DELETE_ROW)
        for category in CATEGORIES
    ),
)


class InboxBase(DeclarativeBase):
    pass


class Conversation(InboxBase):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    contact_phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    contact_email: Mapped[str | None] = mapped_column(String(254))  # lower case
    contact_channel_id: Mapped[str | None] = mapped_column(String(170))  # "whatsapp:..."
    contact_name: Mapped[str | None] = mapped_column(String(200))  # as the end user shows it
    agent_id: Mapped[str] = mapped_column(String(40))  # the customer's agent (its own data)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_conversations_phone", "customer_account", "contact_phone", "opened_at"),
        Index("ix_conversations_email", "customer_account", "contact_email", "opened_at"),
        Index("ix_conversations_channel_id", "customer_account", "contact_channel_id"),
        # locating the controllers of an identity, across customers
        Index("ix_conversations_locate_phone", "contact_phone"),
        Index("ix_conversations_locate_email", "contact_email"),
        Index("ix_conversations_locate_channel_id", "contact_channel_id"),
    )


class Message(InboxBase):
    """A message of a conversation, or an agent's internal note on it (``internal``)."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)
    author: Mapped[str] = mapped_column(String(8))
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_messages_conversation", "conversation_id", "sent_at"),
        CheckConstraint("author IN ('end_user', 'agent')", name="ck_messages_author"),
        CheckConstraint("NOT internal OR author = 'agent'", name="ck_messages_note_by_agent"),
    )


class Restriction(RestrictionMixin, InboxBase):
    pass


class InboxOperationLog(OperationLogMixin, InboxBase):
    pass


# --- the subject ---------------------------------------------------------------------------

IDENTITY_COLUMNS: dict[IdentityType, InstrumentedAttribute[str | None]] = {
    IdentityType.PHONE: Conversation.contact_phone,
    IdentityType.EMAIL: Conversation.contact_email,
    IdentityType.CHANNEL_ID: Conversation.contact_channel_id,
}


@dataclass(frozen=True)
class Subject:
    """One customer's end user, by every identity the request names that Inbox can match."""

    customer_account: str
    identities: tuple[Identity, ...]
    # A sweep's filter in place of the identities: the conversations it names, any customer's.
    where: tuple[ColumnElement[bool], ...] = ()

    def values(self, kind: IdentityType) -> list[str]:
        return identity_values(self.identities, kind)


def identity_values(identities: Iterable[Identity], kind: IdentityType) -> list[str]:
    """The values of one identity type to look up, as Inbox stores them (emails lower case)."""
    found = {i.value for i in identities if i.type is kind}
    return sorted(v.lower() for v in found) if kind is IdentityType.EMAIL else sorted(found)


def locate_holders(scope: Scope) -> Select[str] | None:
    """The customers holding conversations of these identities, across customers: one lookup per
    identity type, each by its identity-first ``ix_conversations_locate_*`` index; none without an
    identity Inbox matches."""
    lookups = [
        select(Conversation.customer_account).where(
            column.in_(values), Conversation.anonymised_at.is_(None)
        )
        for kind, column in IDENTITY_COLUMNS.items()
        if (values := identity_values(scope.identities, kind))
    ]
    if not lookups:
        return None
    held = union(*lookups).subquery()
    return select(held.c.customer_account).order_by(held.c.customer_account)


def subject_of(scope: Scope) -> Subject | None:
    """The subject to look up; none without a customer account (never cross-customer)."""
    identities = tuple(i for i in scope.identities if i.type in IDENTITY_COLUMNS)
    if scope.customer_account is None or not identities:
        return None
    return Subject(scope.customer_account, identities)


def subject_where(subject: Subject) -> list[ColumnElement[bool]]:
    """The subject's conversations: one index lookup per identity type (customer first)."""
    if subject.where:
        return [*subject.where, Conversation.anonymised_at.is_(None)]
    matches = [
        and_(Conversation.customer_account == subject.customer_account, column.in_(values))
        for kind, column in IDENTITY_COLUMNS.items()
        if (values := subject.values(kind))
    ]
    return [or_(false(), *matches), Conversation.anonymised_at.is_(None)]


def subject_conversations(subject: Subject) -> Select[Conversation]:
    """The subject lookup every operation uses (served by the ``ix_conversations_*`` indexes)."""
    return select(Conversation).where(*subject_where(subject))


def subject_messages(subject: Subject, category: str) -> list[ColumnElement[bool]]:
    """The subject's messages (``conversation_content``) or notes (``agent_notes``)."""
    conversations = select(Conversation.id).where(*subject_where(subject))
    return [
        Message.conversation_id.in_(conversations),
        Message.internal == (category == AGENT_NOTES),
    ]
