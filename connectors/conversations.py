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
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session, join

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
from connectors.kit.connector import PROCESSOR_ACTIVITIES, CutoffConnector, sweep_scope
from connectors.kit.queries import Held, export_partitions, holding
from connectors.kit.reach import in_chunks, widest
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
from dsr.models import Identity

# --- the connector -------------------------------------------------------------------------


class ConversationsConnector(CutoffConnector[Subject]):
    name: ClassVar[str] = "conversations"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = PROCESSOR_ACTIVITIES

    schema = ConversationsBase
    operation_log = ConversationsOperationLog
    restriction_model = Restriction
    marks_treated = True

    subject = staticmethod(resolve_subject)
    holders = staticmethod(locate_holders)

    def holding(self, session: Session, subject: Subject, category: str) -> CategoryHolding | None:
        return _holding(session, subject, category)

    def export_chunks(self, session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
        threads = subject_threads(subject).order_by(Thread.id)
        yield from export_partitions(session, threads, lambda thread: [_thread_record(thread)])
        messages = subject_messages(subject).order_by(ChatMessage.sent_at, ChatMessage.id)
        yield from export_partitions(session, messages, _message_records)

    def is_restricted(self, customer_account: str, identity: Identity) -> bool:
        """Whether processing of this end-user identity is restricted for this customer."""
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- erase and restrict, inside the operation's transaction ----------------------------

    def erase_now(
        self, session: Session, subject: Subject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        """Each category as declared (``conversations_store.TREATMENTS``), through the kit's
        treatments: content where its rules or a link category's reach, then the link of the
        messages dated before the widest link cutoff and of the threads whose last message is."""
        erased: dict[str, int] = {}
        cleared = 0
        content_cutoff = widest(cutoffs, LINK_CATEGORIES | {MESSAGE_CONTENT})
        if content_cutoff is not None:
            held = message_ids(
                subject, ChatMessage.sent_at < content_cutoff, ChatMessage.content.is_not(None)
            )
            content = [ChatMessage.id.in_(held)]
            cleared = self.treat.apply(session, "messages", [MESSAGE_CONTENT], content, scope.as_of)
        if MESSAGE_CONTENT in cutoffs or cleared:
            erased[MESSAGE_CONTENT] = cleared
        link = widest(cutoffs, LINK_CATEGORIES)
        if link is not None:
            links = sorted(LINK_CATEGORIES)
            sent = [ChatMessage.id.in_(message_ids(subject, ChatMessage.sent_at < link))]
            erased[TRAFFIC_DATA] = self.treat.apply(session, "messages", links, sent, scope.as_of)
            last = [*thread_where(subject), Thread.last_message_at < link]
            erased[CONTACT_IDENTIFIERS] = self.treat.apply(
                session, "threads", links, last, scope.as_of
            )
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
            pending = [Thread.anonymised_at.is_(None), Thread.started_at < max(cutoffs.values())]

            def erase(chunk: ColumnElement[bool]) -> dict[str, int]:
                return self.erase_now(session, Subject("", (), (chunk,)), cutoffs, scope).erased

            in_chunks(session, Thread.id, pending, erase, anonymised)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def restrict_now(self, session: Session, subject: Subject, call: FlagInput) -> int:
        customer = subject.customer_account
        self.restrictions.place_or_lift(session, customer, call, subject.identities)
        return _count(session, subject, TRAFFIC_DATA)


# --- queries -------------------------------------------------------------------------------


def _holding(session: Session, subject: Subject, category: str) -> CategoryHolding | None:
    if category == CONTACT_IDENTIFIERS:
        part = Held(Thread.last_message_at, thread_where(subject))
    else:
        held = [ChatMessage.content.is_not(None)] if category == MESSAGE_CONTENT else []
        threads = join(ChatMessage, Thread, ChatMessage.thread_id == Thread.id)
        part = Held(ChatMessage.sent_at, [*thread_where(subject), *held], joined=threads)
    return holding(session, category, [part])


def _count(session: Session, subject: Subject, category: str) -> int:
    found = _holding(session, subject, category)
    return found.records if found is not None else 0


# --- export --------------------------------------------------------------------------------


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
