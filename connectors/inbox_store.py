"""The Inbox store: its tables (``conversations`` and ``messages``), the categories and their
treatments, whose rows a subject's are and the subject's records as exported
(``connectors.inbox`` is the connector that works on it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Row,
    Select,
    String,
    Text,
    select,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, Session, mapped_column

from connectors.kit.identities import EndUser, IdentityColumns
from connectors.kit.queries import Held, export_partitions
from connectors.kit.restrictions import RestrictionMixin
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import Strategy, Treatment
from dsr.models import IdentityType

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
# An end user is found by whichever of these the conversation carries (customer first, or
# across customers by the ``ix_conversations_locate_*`` indexes).
CONTACTS = IdentityColumns(
    IDENTITY_COLUMNS, Conversation.customer_account, Conversation.anonymised_at
)
Subject = EndUser  # one customer's end user, by every identity Inbox can match
subject_of = CONTACTS.subject
subject_where = CONTACTS.where
locate_holders = CONTACTS.holders


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


def part(subject: Subject, category: str) -> Held:
    """Where one category lives: the subject's conversations (dated by their opening), or
    their messages or notes (by their sending)."""
    if category == CONTACT_IDENTIFIERS:
        return Held(Conversation.opened_at, subject_where(subject))
    return Held(Message.sent_at, subject_messages(subject, category))


# --- export --------------------------------------------------------------------------------


def subject_export_chunks(session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
    """The subject's conversations, then its messages, then its notes, a partition at a time."""
    conversations = subject_conversations(subject).order_by(Conversation.opened_at, Conversation.id)
    yield from export_partitions(session, conversations, _conversation_record)
    for category in MESSAGE_CATEGORIES:
        messages = (
            select(Message, Conversation.customer_account)
            .join(Conversation, Message.conversation_id == Conversation.id)
            .where(*subject_messages(subject, category))
            .order_by(Message.sent_at, Message.id)
        )
        records = partial(_message_record, category)
        yield from export_partitions(session, messages, records, rows=True)


def _conversation_record(conversation: Conversation) -> Iterator[dict[str, Any]]:
    """The conversation as the subject's: the assigned agent is the customer's data, left out."""
    yield {
        "category": CONTACT_IDENTIFIERS,
        "conversation_id": conversation.id,
        "customer_account": conversation.customer_account,
        "channel": conversation.channel,
        "phone_number": conversation.contact_phone,
        "email": conversation.contact_email,
        "channel_id": conversation.contact_channel_id,
        "display_name": conversation.contact_name,
        "opened_at": conversation.opened_at,
        "closed_at": conversation.closed_at,
    }


def _message_record(category: str, row: Row[Message, str]) -> Iterator[dict[str, Any]]:
    message, customer_account = row
    yield {
        "category": category,
        "message_id": message.id,
        "conversation_id": message.conversation_id,
        "customer_account": customer_account,
        "sent_at": message.sent_at,
        "author": message.author,
        "body": message.body,
    }
