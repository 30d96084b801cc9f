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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ColumnElement,
    CursorResult,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    and_,
    delete,
    false,
    func,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, Session, mapped_column

from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.cutoffs import id_chunks
from connectors.kit.errors import ConnectorInputError
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
from dsr.models import EMAIL, Identity, IdentityType

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
