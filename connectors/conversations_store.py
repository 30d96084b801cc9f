"""The Conversations store: its tables (``threads`` and ``messages``), the categories and their
treatments, and whose rows a subject's are (``connectors.conversations`` is the connector that
works on it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connectors.kit.restrictions import RestrictionMixin
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import Scope, Strategy, Treatment
from dsr.models import Identity, IdentityType

CONTACT_IDENTIFIERS = "contact_identifiers"
TRAFFIC_DATA = "traffic_data"
MESSAGE_CONTENT = "message_content"
CATEGORIES = (CONTACT_IDENTIFIERS, TRAFFIC_DATA, MESSAGE_CONTENT)
# Erasing either cuts the records loose from the person (see the module docstring).
LINK_CATEGORIES = frozenset({CONTACT_IDENTIFIERS, TRAFFIC_DATA})
CHANNELS = ("whatsapp", "gbm", "messenger", "instagram", "line", "twitter", "viber", "wechat")
PHONE_CHANNELS = ("whatsapp", "viber")  # addressed by phone number: the id is its digits
UNLINK_MESSAGE = (
    ("thread_id", Strategy.NULL),
    ("sent_at", Strategy.TO_DAY),
    *((column, Strategy.NULL) for column in ("content", "delivered_at", "read_at")),
    ("platform_message_id", Strategy.NULL),
    ("anonymised_at", Strategy.MARK),
)
UNLINK_THREAD = (
    ("channel_user", Strategy.PSEUDONYM),
    *((column, Strategy.NULL) for column in ("phone", "profile_name")),
    *((column, Strategy.TO_DAY) for column in ("started_at", "last_message_at")),
    ("anonymised_at", Strategy.MARK),
)
TREATMENTS = (
    *(
        Treatment(category=category, table=table, column=column, strategy=strategy)
        for category in sorted(LINK_CATEGORIES)
        for table, unlink in (("messages", UNLINK_MESSAGE), ("threads", UNLINK_THREAD))
        for column, strategy in unlink
    ),
    Treatment(category=MESSAGE_CONTENT, table="messages", column="content", strategy=Strategy.NULL),
)


class ConversationsBase(DeclarativeBase):
    pass


class Thread(ConversationsBase):
    """One end user's conversation with one customer on one channel."""

    __tablename__ = "threads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    # the channel identity as a request names it, or a pseudonym once anonymised
    channel_user: Mapped[str] = mapped_column(String(160))
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164, on phone-addressed channels
    profile_name: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_message_at: Mapped[datetime] = mapped_column(UtcDateTime)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_threads_subject", "customer_account", "channel_user"),
        Index("ix_threads_locate_channel_user", "channel_user"),  # locating the controllers
        CheckConstraint(
            "channel IN (" + ", ".join(f"'{c}'" for c in CHANNELS) + ")",
            name="ck_threads_channel",
        ),
    )


class ChatMessage(ConversationsBase):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("threads.id"))  # None: cut loose
    customer_account: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(8))
    content_type: Mapped[str] = mapped_column(String(16))
    content: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16))
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    platform_message_id: Mapped[str | None] = mapped_column(String(80))
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_messages_thread", "thread_id", "sent_at"),
        CheckConstraint("direction IN ('inbound', 'outbound')", name="ck_messages_direction"),
    )


class Restriction(RestrictionMixin, ConversationsBase):
    pass


class ConversationsOperationLog(OperationLogMixin, ConversationsBase):
    pass


# --- the subject ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """One end user of one customer, by the identities the request names."""

    customer_account: str
    identities: tuple[Identity, ...]
    # A sweep's filter in place of the identities: the threads it names, any customer's.
    where: tuple[ColumnElement[bool], ...] = ()

    @property
    def channel_users(self) -> list[str]:
        """The channel identities to look up, a phone number's on every phone channel."""
        return channel_users(self.identities)


def channel_users(identities: Iterable[Identity]) -> list[str]:
    """The channel identities of these identities, a phone number's on every phone channel."""
    named = {i.value for i in identities if i.type is IdentityType.CHANNEL_ID}
    phones = [i.value for i in identities if i.type is IdentityType.PHONE]
    by_phone = {
        phone_channel_user(channel, phone) for channel in PHONE_CHANNELS for phone in phones
    }
    return sorted(named | by_phone)


def phone_channel_user(channel: str, phone: str) -> str:
    """The channel identity of an E.164 number on a phone-addressed channel."""
    return f"{channel}:{phone.removeprefix('+')}"


def locate_holders(scope: Scope) -> Select[str] | None:
    """The customers holding threads of these identities, across customers (served by
    ``ix_threads_locate_channel_user``); none without a phone number or channel identity."""
    users = channel_users(scope.identities)
    if not users:
        return None
    return (
        select(Thread.customer_account)
        .where(Thread.channel_user.in_(users), Thread.anonymised_at.is_(None))
        .distinct()
        .order_by(Thread.customer_account)
    )


def resolve_subject(scope: Scope) -> Subject | None:
    """The subject, or None without a customer account (never cross-customer) or identity."""
    wanted = (IdentityType.PHONE, IdentityType.CHANNEL_ID)
    identities = tuple(i for i in scope.identities if i.type in wanted)
    if scope.customer_account is None or not identities:
        return None
    return Subject(scope.customer_account, identities)


def thread_where(subject: Subject) -> list[ColumnElement[bool]]:
    """The subject's threads (served by ``ix_threads_subject``)."""
    if subject.where:
        return [*subject.where, Thread.anonymised_at.is_(None)]
    return [
        Thread.customer_account == subject.customer_account,
        Thread.channel_user.in_(subject.channel_users),
        Thread.anonymised_at.is_(None),
    ]


def subject_threads(subject: Subject) -> Select[Thread]:
    """The subject lookup every operation starts from."""
    return select(Thread).where(*thread_where(subject))


def subject_messages(subject: Subject) -> Select[ChatMessage]:
    return (
        select(ChatMessage)
        .join(Thread, ChatMessage.thread_id == Thread.id)
        .where(*thread_where(subject))
    )


def message_ids(subject: Subject, *conditions: ColumnElement[bool]) -> Select[int]:
    return (
        select(ChatMessage.id)
        .join(Thread, ChatMessage.thread_id == Thread.id)
        .where(*thread_where(subject), *conditions)
    )
