"""Inbox connector: the conversations a customer's agents hold with its end users, on any
channel (WhatsApp, Messenger, LINE, SMS, email, live chat).

The customer is the controller of its end users' data and the group its processor, so every
lookup is confined to one customer account: without ``scope.customer_account`` the connector
finds nothing, and it never searches across customers. An end user is found by phone number,
email address (stored and matched in lower case) or channel id, whichever the conversation
carries.

Categories:
- ``contact_identifiers``: who the conversation is with (phone, email, channel id, display
  name), per conversation;
- ``conversation_content``: the messages the end user and the agents exchanged;
- ``agent_notes``: the agents' internal notes on the conversation (about the end user, not
  shown to them).

Erasure, per category:
- ``conversation_content`` and ``agent_notes``: the messages (or notes) sent before the cutoff
  are deleted;
- ``contact_identifiers``: a conversation opened before the cutoff is cut loose from the
  person. Its identifiers and display name are cleared and all its messages and notes are
  deleted (a conversation that can no longer be found for its subject must not keep what could
  identify them). Channel, opening and closing times and the assigned agent stay, for the
  customer's workload statistics; the conversation gets ``anonymised_at``.

Rectification corrects the display name (``name``) or email address (``email``) where a
conversation holds one; it adds neither where none was given. A restricted subject's corrected
email address is restricted too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from connectors.inbox_store import (
    CATEGORIES,
    CONTACT_COLUMNS,
    CONTACT_IDENTIFIERS,
    CORRECTABLE,
    MESSAGE_CATEGORIES,
    TREATMENTS,
    Conversation,
    InboxBase,
    InboxOperationLog,
    Message,
    Restriction,
    Subject,
    locate_holders,
    subject_conversations,
    subject_messages,
    subject_of,
    subject_where,
)
from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.cutoffs import id_chunks
from connectors.kit.errors import ConnectorInputError
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
from dsr.models import EMAIL, Identity, IdentityType

# --- the connector -------------------------------------------------------------------------


class InboxConnector(CutoffConnector[Subject]):
    name: ClassVar[str] = "inbox"
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

    schema = InboxBase
    operation_log = InboxOperationLog
    restriction_model = Restriction
    correctable = CORRECTABLE

    subject = staticmethod(subject_of)
    holders = staticmethod(locate_holders)

    def holding(self, session: Session, subject: Subject, category: str) -> CategoryHolding | None:
        return _holding(session, subject, category)

    def export_chunks(self, session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
        return _export_chunks(session, subject)

    def corrected(self, field: str, value: str) -> str:
        return _corrected(field, value)

    def is_restricted(self, customer_account: str, identity: Identity) -> bool:
        """Whether processing of this end user's conversations is restricted for this customer."""
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- inside the operation's transaction ------------------------------------------------

    def erase_now(
        self, session: Session, subject: Subject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        erased: dict[str, int] = {}
        link = cutoffs.get(CONTACT_IDENTIFIERS)
        for category in MESSAGE_CATEGORIES:
            cutoff = _widest(cutoffs, (CONTACT_IDENTIFIERS, category))
            deleted = _delete_messages(session, subject, category, cutoff, link) if cutoff else 0
            if category in cutoffs or deleted:
                erased[category] = deleted
        if link is not None:
            erased[CONTACT_IDENTIFIERS] = _unlink(session, subject, link, scope.as_of)
        retained = {category: _count(session, subject, category) for category in cutoffs}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The erase of every conversation (and its messages) dated before the widest cutoff,
        a chunk of conversations at a time: no message predates its conversation."""
        scope = sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        if cutoffs:
            pending: list[ColumnElement[bool]] = [
                Conversation.anonymised_at.is_(None),
                Conversation.opened_at < max(cutoffs.values()),
            ]
            for ids in id_chunks(session, Conversation.id, pending):
                chunk = Subject("", (), (Conversation.id.in_(ids),))
                anonymised.update(self.erase_now(session, chunk, cutoffs, scope).erased)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def rectify_now(
        self, session: Session, subject: Subject, values: dict[str, str], scope: Scope
    ) -> dict[str, int]:
        """Correct the subject's conversations; a corrected email stays restricted if the
        subject is."""
        updated: dict[str, int] = {}
        # Found once, before any change: a corrected email must not lose the other fields.
        found = list(session.scalars(select(Conversation.id).where(*subject_where(subject))))
        for field, value in values.items():
            column = CORRECTABLE[field]
            held = getattr(Conversation, column).is_not(None)
            statement = (
                update(Conversation)
                .where(Conversation.id.in_(found), held)
                .values({column: value})
                .execution_options(synchronize_session=False)
            )
            updated[field] = cast(CursorResult[Any], session.execute(statement)).rowcount
        if "email" in values:
            corrected = Identity(type=IdentityType.EMAIL, value=values["email"])
            self.restrictions.carry_over(session, subject.customer_account, scope, corrected)
        return updated

    def restrict_now(self, session: Session, subject: Subject, call: FlagInput) -> int:
        customer_account = subject.customer_account
        self.restrictions.place_or_lift(session, customer_account, call, subject.identities)
        return _count(session, subject, CONTACT_IDENTIFIERS)


# --- queries -------------------------------------------------------------------------------


def _dated(category: str) -> InstrumentedAttribute[datetime]:
    return Conversation.opened_at if category == CONTACT_IDENTIFIERS else Message.sent_at


def _where(subject: Subject, category: str) -> list[ColumnElement[bool]]:
    if category == CONTACT_IDENTIFIERS:
        return subject_where(subject)
    return subject_messages(subject, category)


def _holding(session: Session, subject: Subject, category: str) -> CategoryHolding | None:
    dated = _dated(category)
    count, earliest, latest = session.execute(
        select(func.count(), func.min(dated), func.max(dated))
        .select_from(dated.class_)
        .where(*_where(subject, category))
    ).one()
    if not count:
        return None
    return CategoryHolding(category=category, records=count, earliest=earliest, latest=latest)


def _count(session: Session, subject: Subject, category: str) -> int:
    model = _dated(category).class_
    statement = select(func.count()).select_from(model).where(*_where(subject, category))
    return session.scalar(statement) or 0


def _delete_messages(
    session: Session,
    subject: Subject,
    category: str,
    before: datetime,
    link: datetime | None,
) -> int:
    """Delete the category's messages sent before ``before``, and every message of the
    conversations opened before ``link`` (those are about to be cut loose)."""
    dated = [Message.sent_at < before]
    if link is not None:
        unlinked = select(Conversation.id).where(
            *subject_where(subject), Conversation.opened_at < link
        )
        dated.append(Message.conversation_id.in_(unlinked))
    statement = (
        delete(Message)
        .where(*subject_messages(subject, category), or_(*dated))
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _unlink(session: Session, subject: Subject, before: datetime, as_of: datetime) -> int:
    statement = (
        update(Conversation)
        .where(*subject_where(subject), Conversation.opened_at < before)
        .values({**dict.fromkeys(CONTACT_COLUMNS), "anonymised_at": as_of})
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _export_chunks(session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
    conversations = (
        subject_conversations(subject)
        .order_by(Conversation.opened_at, Conversation.id)
        .execution_options(yield_per=EXPORT_CHUNK_ROWS)
    )
    for partition in session.scalars(conversations).partitions():
        yield [_conversation_record(conversation) for conversation in partition]
    for category in MESSAGE_CATEGORIES:
        messages = (
            select(Message, Conversation.customer_account)
            .join(Conversation, Message.conversation_id == Conversation.id)
            .where(*subject_messages(subject, category))
            .order_by(Message.sent_at, Message.id)
            .execution_options(yield_per=EXPORT_CHUNK_ROWS)
        )
        for rows in session.execute(messages).partitions():
            yield [_message_record(category, row[0], row[1]) for row in rows]


def _conversation_record(conversation: Conversation) -> dict[str, Any]:
    """The conversation as the subject's: the assigned agent is the customer's data, left out."""
    return {
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


def _message_record(category: str, message: Message, customer_account: str) -> dict[str, Any]:
    return {
        "category": category,
        "message_id": message.id,
        "conversation_id": message.conversation_id,
        "customer_account": customer_account,
        "sent_at": message.sent_at,
        "author": message.author,
        "body": message.body,
    }


# --- rules ---------------------------------------------------------------------------------


def _widest(cutoffs: dict[str, datetime], categories: Iterable[str]) -> datetime | None:
    return max((cutoffs[c] for c in categories if c in cutoffs), default=None)


def _corrected(field: str, value: str) -> str:
    """A corrected value; an email address is checked and kept in lower case. An error names
    the field, never the value."""
    if field != "email":
        return value
    if not EMAIL.fullmatch(value):
        raise ConnectorInputError("corrected email is malformed")
    return value.lower()
