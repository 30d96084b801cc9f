"""Email connector (SparkPost): end users' recipient entries, the messages sent to them and the
events those messages raised, held for the customers that send them email.

The customer is the controller of its end users' data and the group its processor, so every
lookup is confined to one customer account: without ``scope.customer_account`` the connector
finds nothing, and it never searches across customers. Email addresses match case-insensitively.

Tables: ``recipients`` (one entry per customer, recipient list and address: name, email,
segment data), ``sends`` (one message sent to a recipient: subject and body) and ``events``
(delivery, open, click, bounce of a send: IP, user agent, location, link, cookie).

Erasure, per category:
- ``message_content``: a send's subject and body are cleared; campaign and date stay;
- ``usage_and_device``: an event's IP, user agent, location, link and cookie are cleared and
  its time is cut to the day; type and day stay, for the customer's statistics, and the event
  is marked ``anonymised_at``;
- ``segment_data``: the recipient's segment data is cleared;
- ``contact_details``: the recipient entry is cut loose from the person. The address becomes a
  keyed-hash pseudonym (statistics still count distinct recipients), the name and segment data
  go, and everything hanging from the entry goes too (content of its sends, usage of its
  events): a record that can no longer be found for its subject must not keep what could
  identify them. An entry is dated by its latest activity (created, sent to, or event), since
  its address is what finds every later record: it is cut loose only when all of it is older
  than the cutoff.

Restriction is by keyed hash of the address; a rectified address stays restricted (the corrected
address is restricted too).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

from pydantic import ValidationError
from sqlalchemy import ColumnElement, CursorResult, func, or_, select, update
from sqlalchemy.orm import Session

from connectors.email_store import (
    CATEGORIES,
    CONTACT_DETAILS,
    CONTENT_FIELDS,
    MESSAGE_CONTENT,
    RECTIFIABLE,
    SEGMENT_DATA,
    TREATMENTS,
    USAGE_AND_DEVICE,
    USAGE_FIELDS,
    EmailBase,
    EmailOperationLog,
    EmailSubject,
    Event,
    Recipient,
    Restriction,
    Send,
    email_subject,
    locate_holders,
    part,
    recipient_ids,
    recipient_where,
    subject_export_chunks,
)
from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.cutoffs import id_chunks
from connectors.kit.errors import ConnectorInputError
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
from dsr.models import Identity, IdentityType

# --- the connector -------------------------------------------------------------------------


class EmailConnector(CutoffConnector[EmailSubject]):
    name: ClassVar[str] = "email"
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

    schema = EmailBase
    operation_log = EmailOperationLog
    restriction_model = Restriction
    correctable = RECTIFIABLE

    subject = staticmethod(email_subject)
    holders = staticmethod(locate_holders)

    def holding(
        self, session: Session, subject: EmailSubject, category: str
    ) -> CategoryHolding | None:
        return _holding(session, subject, category)

    def export_chunks(
        self, session: Session, subject: EmailSubject
    ) -> Iterator[list[dict[str, Any]]]:
        return subject_export_chunks(session, subject)

    def corrected(self, field: str, value: str) -> str:
        return _corrected(field, value)

    def is_restricted(self, customer_account: str, identity: Identity) -> bool:
        """Whether processing of this end user's email data is restricted for this customer."""
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- erase, rectify and restrict, inside the operation's transaction -------------------

    def erase_now(
        self, session: Session, subject: EmailSubject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        as_of = scope.as_of
        erased: dict[str, int] = {}
        if MESSAGE_CONTENT in cutoffs:
            content = part(subject, MESSAGE_CONTENT)
            erased[MESSAGE_CONTENT] = _clear_content(
                session, [*content.where, Send.sent_at < cutoffs[MESSAGE_CONTENT]]
            )
        if USAGE_AND_DEVICE in cutoffs:
            usage = part(subject, USAGE_AND_DEVICE)
            erased[USAGE_AND_DEVICE] = _anonymise_events(
                session, [*usage.where, Event.occurred_at < cutoffs[USAGE_AND_DEVICE]], as_of
            )
        if SEGMENT_DATA in cutoffs:
            segments = part(subject, SEGMENT_DATA)
            erased[SEGMENT_DATA] = _clear_segments(
                session, [*segments.where, Recipient.created_at < cutoffs[SEGMENT_DATA]]
            )
        if CONTACT_DETAILS in cutoffs:
            for category, count in self._unlink(
                session, subject, cutoffs[CONTACT_DETAILS], as_of
            ).items():
                if category in cutoffs or count:
                    erased[category] = erased.get(category, 0) + count
        retained = {category: _count(session, subject, category) for category in cutoffs}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The erase of every entry (with its sends and events) created before the widest
        cutoff, a chunk of entries at a time: nothing of an entry predates its creation."""
        scope = sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        if cutoffs:
            pending: list[ColumnElement[bool]] = [
                Recipient.anonymised_at.is_(None),
                Recipient.created_at < max(cutoffs.values()),
            ]
            for ids in id_chunks(session, Recipient.id, pending):
                chunk = EmailSubject("", (), (Recipient.id.in_(ids),))
                anonymised.update(self.erase_now(session, chunk, cutoffs, scope).erased)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def _unlink(
        self, session: Session, subject: EmailSubject, before: datetime, as_of: datetime
    ) -> dict[str, int]:
        """Cut loose the entries whose latest activity is before ``before``, with all that
        hangs from them; returns the count per category."""
        entries = [row for row in _activity(session, subject) if row.latest < before]
        ids = [row.id for row in entries]
        erased = {
            MESSAGE_CONTENT: _clear_content(session, [Send.recipient_id.in_(ids)]),
            USAGE_AND_DEVICE: _anonymise_events(session, [Event.recipient_id.in_(ids)], as_of),
            SEGMENT_DATA: _clear_segments(
                session, [Recipient.id.in_(ids), Recipient.segment_data.is_not(None)]
            ),
        }
        changes = [
            {
                "id": row.id,
                "email": keyed_hash(self.secret, row.email.lower(), "pseudonym"),
                "name": None,
                "segment_data": None,
                "anonymised_at": as_of,
            }
            for row in entries
        ]
        if changes:
            session.execute(update(Recipient), changes)
        return {**erased, CONTACT_DETAILS: len(changes)}

    def rectify_now(
        self, session: Session, subject: EmailSubject, values: dict[str, str], scope: Scope
    ) -> dict[str, int]:
        """Correct the subject's entries; a corrected address stays restricted if it was."""
        updated = _correct(session, subject, values)
        if "email" in values:
            corrected = _corrected_email(values["email"])
            self.restrictions.carry_over(session, subject.customer_account, scope, corrected)
        return updated

    def restrict_now(self, session: Session, subject: EmailSubject, call: FlagInput) -> int:
        customer = subject.customer_account
        self.restrictions.place_or_lift(session, customer, call, subject.identities)
        return _subject_rows(session, subject)


# --- queries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryActivity:
    id: int
    email: str
    created_at: datetime
    latest: datetime  # the latest of created, sent to and event


def _activity(session: Session, subject: EmailSubject) -> list[EntryActivity]:
    last_send = (
        select(func.max(Send.sent_at)).where(Send.recipient_id == Recipient.id).scalar_subquery()
    )
    last_event = (
        select(func.max(Event.occurred_at))
        .where(Event.recipient_id == Recipient.id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Recipient.id, Recipient.email, Recipient.created_at, last_send, last_event).where(
            *recipient_where(subject)
        )
    ).all()
    return [
        EntryActivity(
            id=row[0],
            email=row[1],
            created_at=row[2],
            latest=max(moment for moment in row[2:] if moment is not None),
        )
        for row in rows
    ]


def _holding(session: Session, subject: EmailSubject, category: str) -> CategoryHolding | None:
    if category == CONTACT_DETAILS:
        entries = _activity(session, subject)
        if not entries:
            return None
        return CategoryHolding(
            category=category,
            records=len(entries),
            earliest=min(entry.created_at for entry in entries),
            latest=max(entry.latest for entry in entries),
        )
    where = part(subject, category)
    count, earliest, latest = session.execute(
        select(func.count(), func.min(where.dated), func.max(where.dated))
        .select_from(where.model)
        .where(*where.where)
    ).one()
    if not count:
        return None
    return CategoryHolding(category=category, records=count, earliest=earliest, latest=latest)


def _count(session: Session, subject: EmailSubject, category: str) -> int:
    where = part(subject, category)
    statement = select(func.count()).select_from(where.model).where(*where.where)
    return session.scalar(statement) or 0


def _subject_rows(session: Session, subject: EmailSubject) -> int:
    """The subject's rows a restriction covers: entries, their sends and their events."""
    ids = recipient_ids(subject)
    entries = _count(session, subject, CONTACT_DETAILS)
    sends = session.scalar(select(func.count()).where(Send.recipient_id.in_(ids))) or 0
    events = session.scalar(select(func.count()).where(Event.recipient_id.in_(ids))) or 0
    return entries + sends + events


def _changed(session: Session, statement: Any) -> int:
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _clear_content(session: Session, where: list[ColumnElement[bool]]) -> int:
    held = or_(Send.subject.is_not(None), Send.body.is_not(None))
    statement = (
        update(Send)
        .where(*where, held)
        .values(dict.fromkeys(CONTENT_FIELDS))
        .execution_options(synchronize_session=False)
    )
    return _changed(session, statement)


def _clear_segments(session: Session, where: list[ColumnElement[bool]]) -> int:
    statement = (
        update(Recipient)
        .where(*where)
        .values(segment_data=None)
        .execution_options(synchronize_session=False)
    )
    return _changed(session, statement)


def _anonymise_events(session: Session, where: list[ColumnElement[bool]], as_of: datetime) -> int:
    """Events keep their type and day (the customer's statistics); the rest goes."""
    rows = session.execute(
        select(Event.id, Event.occurred_at).where(*where, Event.anonymised_at.is_(None))
    ).all()
    changes = [
        {
            "id": row.id,
            **dict.fromkeys(USAGE_FIELDS),
            "occurred_at": row.occurred_at.replace(hour=0, minute=0, second=0, microsecond=0),
            "anonymised_at": as_of,
        }
        for row in rows
    ]
    if changes:
        session.execute(update(Event), changes)
    return len(changes)


def _correct(session: Session, subject: EmailSubject, values: dict[str, str]) -> dict[str, int]:
    """Correct each field where the subject's entries hold it (they are found first, so that
    correcting an identity does not lose them)."""
    ids = list(session.scalars(recipient_ids(subject)))
    updated = {}
    for name, value in values.items():
        column = getattr(Recipient, name)
        statement = (
            update(Recipient)
            .where(Recipient.id.in_(ids), column.is_not(None))
            .values({name: value})
            .execution_options(synchronize_session=False)
        )
        updated[name] = _changed(session, statement)
    return updated


# --- rules ---------------------------------------------------------------------------------


def _corrected(field: str, value: str) -> str:
    """A corrected value; an email address is checked. An error names the field."""
    if field == "email":
        _corrected_email(value)
    return value


def _corrected_email(value: str) -> Identity:
    """The corrected address as an identity; an error names the field, never the value."""
    try:
        return Identity(type=IdentityType.EMAIL, value=value)
    except ValidationError:
        raise ConnectorInputError("corrected email is malformed") from None
