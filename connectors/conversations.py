"""Conversations connector: end users' chats with customers over WhatsApp, Google Business
Messages, Messenger, Instagram, Line, Twitter, Viber and WeChat.

The customer is the controller of its end users' data and the group its processor, so every
lookup is confined to one customer account: without ``scope.customer_account`` the connector
finds nothing, and it never searches across customers.

Who the subject is, within that customer: a ``channel_id`` identity (``whatsapp:4477...``,
``line:U...``) finds the thread of that channel identity; a ``phone`` identity finds the threads
of the channels addressed by phone number (WhatsApp, Viber), whose channel identity is the
number's digits (``+447700900123`` is ``whatsapp:447700900123``). So one composite index,
customer account then channel identity, serves every lookup.

Records per category:
- ``contact_identifiers``: one per thread (channel identity, phone number, profile name), dated
  by the thread's last message;
- ``traffic_data``: one per message (channel, direction, date and time, delivery status, the
  platform's message id);
- ``message_content``: one per message that still has content.

Erasure anonymises rather than deletes:
- ``message_content``: the content is cleared;
- ``contact_identifiers`` and ``traffic_data``: the records are cut loose from the person.
  Messages dated before the cutoff leave their thread, ``sent_at`` is cut to the day, content,
  delivery times and the platform's id are cleared; customer, channel, day, direction and
  status stay for statistics. A thread whose last message is before the cutoff gets a
  keyed-hash pseudonym instead of its channel identity (distinct end users still count), and
  loses its phone number and profile name. Cut-loose rows get ``anonymised_at``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    CursorResult,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.cutoffs import id_chunks
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from connectors.kit.restrictions import RestrictionMixin, is_restricted
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    FlagInput,
    Scope,
    Strategy,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.hashing import keyed_hash
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


def _message_ids(subject: Subject, *conditions: ColumnElement[bool]) -> Select[int]:
    return (
        select(ChatMessage.id)
        .join(Thread, ChatMessage.thread_id == Thread.id)
        .where(*thread_where(subject), *conditions)
    )


# --- the connector -------------------------------------------------------------------------


class ConversationsConnector(CutoffConnector[Subject]):
    name: ClassVar[str] = "conversations"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = (
        "discover",
        "access",
        "erase",
        "restrict",
        "locate",
        "sweep",
    )

    schema = ConversationsBase
    operation_log = ConversationsOperationLog
    restriction_model = Restriction

    subject = staticmethod(resolve_subject)
    holders = staticmethod(locate_holders)

    def holding(self, session: Session, subject: Subject, category: str) -> CategoryHolding | None:
        return _holding(session, subject, category)

    def export_chunks(self, session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
        return _export_chunks(session, subject)

    def is_restricted(self, customer_account: str, identity: Identity) -> bool:
        """Whether processing of this end-user identity is restricted for this customer."""
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- erase and restrict, inside the operation's transaction ----------------------------

    def erase_now(
        self, session: Session, subject: Subject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        as_of = scope.as_of
        erased: dict[str, int] = {}
        content_cutoff = _widest(cutoffs, LINK_CATEGORIES | {MESSAGE_CONTENT})
        cleared = _clear_content(session, subject, content_cutoff) if content_cutoff else 0
        if MESSAGE_CONTENT in cutoffs or cleared:
            erased[MESSAGE_CONTENT] = cleared
        link = _widest(cutoffs, LINK_CATEGORIES)
        if link is not None:
            erased[TRAFFIC_DATA] = _unlink_messages(session, subject, link, as_of)
            erased[CONTACT_IDENTIFIERS] = self._pseudonymise_threads(session, subject, link, as_of)
        retained = {category: _count(session, subject, category) for category in cutoffs}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The erase of every thread started before the widest cutoff (with its messages), a
        chunk of threads at a time: no message predates its thread."""
        scope = sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        if cutoffs:
            pending: list[ColumnElement[bool]] = [
                Thread.anonymised_at.is_(None),
                Thread.started_at < max(cutoffs.values()),
            ]
            for ids in id_chunks(session, Thread.id, pending):
                chunk = Subject("", (), (Thread.id.in_(ids),))
                anonymised.update(self.erase_now(session, chunk, cutoffs, scope).erased)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def _pseudonymise_threads(
        self, session: Session, subject: Subject, before: datetime, as_of: datetime
    ) -> int:
        threads = session.execute(
            select(Thread.id, Thread.channel_user, Thread.started_at, Thread.last_message_at).where(
                *thread_where(subject), Thread.last_message_at < before
            )
        ).all()
        changes = [
            {
                "id": thread.id,
                "channel_user": keyed_hash(self.secret, thread.channel_user, "pseudonym"),
                "phone": None,
                "profile_name": None,
                "started_at": _day(thread.started_at),
                "last_message_at": _day(thread.last_message_at),
                "anonymised_at": as_of,
            }
            for thread in threads
        ]
        if changes:
            session.execute(update(Thread), changes)
        return len(changes)

    def restrict_now(self, session: Session, subject: Subject, call: FlagInput) -> int:
        customer = subject.customer_account
        self.restrictions.place_or_lift(session, customer, call, subject.identities)
        return _count(session, subject, TRAFFIC_DATA)


# --- queries -------------------------------------------------------------------------------


def _holding(session: Session, subject: Subject, category: str) -> CategoryHolding | None:
    if category == CONTACT_IDENTIFIERS:
        dated = Thread.last_message_at
        statement = select(func.count(), func.min(dated), func.max(dated)).where(
            *thread_where(subject)
        )
    else:
        sent = ChatMessage.sent_at
        statement = (
            select(func.count(), func.min(sent), func.max(sent))
            .join(Thread, ChatMessage.thread_id == Thread.id)
            .where(*thread_where(subject), *_holds(category))
        )
    records, earliest, latest = session.execute(statement).one()
    if not records:
        return None
    return CategoryHolding(category=category, records=records, earliest=earliest, latest=latest)


def _holds(category: str) -> list[ColumnElement[bool]]:
    return [ChatMessage.content.is_not(None)] if category == MESSAGE_CONTENT else []


def _count(session: Session, subject: Subject, category: str) -> int:
    holding = _holding(session, subject, category)
    return holding.records if holding is not None else 0


def _clear_content(session: Session, subject: Subject, before: datetime) -> int:
    ids = _message_ids(subject, ChatMessage.sent_at < before, ChatMessage.content.is_not(None))
    statement = (
        update(ChatMessage)
        .where(ChatMessage.id.in_(ids))
        .values(content=None)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _unlink_messages(session: Session, subject: Subject, before: datetime, as_of: datetime) -> int:
    rows = session.execute(
        select(ChatMessage.id, ChatMessage.sent_at)
        .join(Thread, ChatMessage.thread_id == Thread.id)
        .where(*thread_where(subject), ChatMessage.sent_at < before)
    ).all()
    changes = [
        {
            "id": row.id,
            "thread_id": None,
            "sent_at": _day(row.sent_at),
            "content": None,
            "delivered_at": None,
            "read_at": None,
            "platform_message_id": None,
            "anonymised_at": as_of,
        }
        for row in rows
    ]
    if changes:
        session.execute(update(ChatMessage), changes)
    return len(changes)


# --- export --------------------------------------------------------------------------------


def _export_chunks(session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
    threads = subject_threads(subject).order_by(Thread.id)
    for partition in _partitions(session, threads):
        yield [_thread_record(thread) for thread in partition]
    messages = subject_messages(subject).order_by(ChatMessage.sent_at, ChatMessage.id)
    for partition in _partitions(session, messages):
        yield [record for message in partition for record in _message_records(message)]


def _partitions(session: Session, statement: Select[Any]) -> Iterator[list[Any]]:
    rows = session.scalars(statement.execution_options(yield_per=EXPORT_CHUNK_ROWS))
    for partition in rows.partitions():
        yield list(partition)


def _thread_record(thread: Thread) -> dict[str, Any]:
    return {
        "category": CONTACT_IDENTIFIERS,
        "thread_id": thread.id,
        "customer_account": thread.customer_account,
        "channel": thread.channel,
        "channel_id": thread.channel_user,
        "phone_number": thread.phone,
        "profile_name": thread.profile_name,
        "started_at": thread.started_at,
        "last_message_at": thread.last_message_at,
    }


def _message_records(message: ChatMessage) -> Iterator[dict[str, Any]]:
    """One export record per category the message holds, joined by ``message_id``."""
    ids = {
        "message_id": message.id,
        "thread_id": message.thread_id,
        "customer_account": message.customer_account,
    }
    yield {
        "category": TRAFFIC_DATA,
        **ids,
        "channel": message.channel,
        "direction": message.direction,
        "sent_at": message.sent_at,
        "status": message.status,
        "delivered_at": message.delivered_at,
        "read_at": message.read_at,
        "platform_message_id": message.platform_message_id,
    }
    if message.content is not None:
        yield {
            "category": MESSAGE_CONTENT,
            **ids,
            "content_type": message.content_type,
            "content": message.content,
        }


# --- rules ---------------------------------------------------------------------------------


def _widest(cutoffs: dict[str, datetime], categories: Iterable[str]) -> datetime | None:
    return max((cutoffs[c] for c in categories if c in cutoffs), default=None)


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
