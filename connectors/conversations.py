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
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import ColumnElement, CursorResult, Select, func, select, update
from sqlalchemy.orm import Session

from connectors.conversations_store import (
    CATEGORIES,
    CONTACT_IDENTIFIERS,
    LINK_CATEGORIES,
    MESSAGE_CONTENT,
    TRAFFIC_DATA,
    TREATMENTS,
    ChatMessage,
    ConversationsBase,
    ConversationsOperationLog,
    Restriction,
    Subject,
    Thread,
    locate_holders,
    message_ids,
    resolve_subject,
    subject_messages,
    subject_threads,
    thread_where,
)
from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.cutoffs import id_chunks
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from connectors.kit.restrictions import is_restricted
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    FlagInput,
    Scope,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.hashing import keyed_hash
from dsr.models import Identity

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
    ids = message_ids(subject, ChatMessage.sent_at < before, ChatMessage.content.is_not(None))
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
