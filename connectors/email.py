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

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.email_store import (
    CATEGORIES,
    CONTACT_DETAILS,
    MESSAGE_CONTENT,
    RECTIFIABLE,
    SEGMENT_DATA,
    TREATMENTS,
    USAGE_AND_DEVICE,
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
from connectors.email_store import USAGE_FIELDS as USAGE_FIELDS
from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.identities import checked_identity
from connectors.kit.queries import count_rows, update_rows
from connectors.kit.reach import sweep_chunks
from connectors.kit.restrictions import is_restricted
from connectors.kit.treatments import Normalise
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    FlagInput,
    Scope,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.models import Identity, IdentityType

# Erased on their own, each by its date: a send's content, an event's usage, segment data.
PARTS = (MESSAGE_CONTENT, USAGE_AND_DEVICE, SEGMENT_DATA)


class EmailConnector(CutoffConnector[EmailSubject]):
    name: ClassVar[str] = "email"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    # One person's pseudonym wherever the address is kept, whatever its case.
    pseudonym_forms: ClassVar[Mapping[str, Normalise]] = {"recipients.email": str.lower}
    activities: ClassVar[tuple[str, ...]] = (
        "discover", "access", "erase", "rectify", "restrict", "locate", "sweep"
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
        if category == CONTACT_DETAILS:
            return _entries_holding(session, subject)
        return part(subject, category).holding(session, category)

    def export_chunks(
        self, session: Session, subject: EmailSubject
    ) -> Iterator[list[dict[str, Any]]]:
        return subject_export_chunks(session, subject)

    def corrected(self, field: str, value: str) -> str:
        if field == "email":
            checked_identity(IdentityType.EMAIL, value, field)
        return value

    def is_restricted(self, customer_account: str, identity: Identity) -> bool:
        """Whether processing of this end user's email data is restricted for this customer."""
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- erase, rectify and restrict, inside the operation's transaction -------------------

    def erase_now(
        self, session: Session, subject: EmailSubject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        as_of = scope.as_of
        erased = {
            category: self._erase_part(session, subject, category, cutoffs[category], as_of)
            for category in PARTS
            if category in cutoffs
        }
        if CONTACT_DETAILS in cutoffs:
            for category, count in self._unlink(
                session, subject, cutoffs[CONTACT_DETAILS], as_of
            ).items():
                if category in cutoffs or count:
                    erased[category] = erased.get(category, 0) + count
        retained = {category: part(subject, category).count(session) for category in cutoffs}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The erase of every entry (with its sends and events) created before the widest
        cutoff, a chunk of entries at a time: nothing of an entry predates its creation."""
        scope = sweep_scope(call)

        def erase(ids: list[int]) -> dict[str, int]:
            chunk = EmailSubject("", (), (Recipient.id.in_(ids),))
            return self.erase_now(session, chunk, cutoffs, scope).erased

        anonymised = sweep_chunks(
            session, cutoffs, Recipient.created_at, Recipient.anonymised_at, erase
        )
        return SweepResult(connector=self.name, anonymised=anonymised)

    def _unlink(
        self, session: Session, subject: EmailSubject, before: datetime, as_of: datetime
    ) -> dict[str, int]:
        """Cut loose the entries whose latest activity is before ``before``, with all that
        hangs from them (last, the entries: until then they are found); the count per
        category."""
        ids = [entry for entry, _, latest in _activity(session, subject) if latest < before]
        entries = EmailSubject("", (), (Recipient.id.in_(ids),))
        return {
            category: self._erase_part(session, entries, category, None, as_of, unlinking=True)
            for category in (*PARTS, CONTACT_DETAILS)
        }

    def _erase_part(
        self,
        session: Session,
        subject: EmailSubject,
        category: str,
        before: datetime | None,
        as_of: datetime,
        *,
        unlinking: bool = False,
    ) -> int:
        """Erase the subject's records of one category dated before ``before`` (all without),
        as the category declares or, ``unlinking``, as cutting their entry loose does."""
        held = part(subject, category)
        treated = CONTACT_DETAILS if unlinking and category != SEGMENT_DATA else category
        return self.treat.apply(session, held.table, [treated], held.before(before), as_of)

    def rectify_now(
        self, session: Session, subject: EmailSubject, values: dict[str, str], scope: Scope
    ) -> dict[str, int]:
        """Correct each field where the subject's entries hold it (they are found first, so
        that correcting an identity does not lose them); a corrected address stays restricted
        if it was."""
        ids = list(session.scalars(recipient_ids(subject)))
        updated: dict[str, int] = {}
        for name, value in values.items():
            held = [Recipient.id.in_(ids), getattr(Recipient, name).is_not(None)]
            updated[name] = update_rows(session, Recipient, held, {name: value})
        if "email" in values:
            corrected = checked_identity(IdentityType.EMAIL, values["email"], "email")
            self.restrictions.carry_over(session, subject.customer_account, scope, corrected)
        return updated

    def restrict_now(self, session: Session, subject: EmailSubject, call: FlagInput) -> int:
        """Restrict (or lift); the rows covered: the entries, their sends and their events."""
        customer = subject.customer_account
        self.restrictions.place_or_lift(session, customer, call, subject.identities)
        ids = recipient_ids(subject)
        return (
            count_rows(session, Recipient, recipient_where(subject))
            + count_rows(session, Send, [Send.recipient_id.in_(ids)])
            + count_rows(session, Event, [Event.recipient_id.in_(ids)])
        )


# --- queries -------------------------------------------------------------------------------


def _activity(session: Session, subject: EmailSubject) -> list[tuple[int, datetime, datetime]]:
    """Each of the subject's entries: its id, creation and latest activity (the latest of
    created, sent to and event)."""
    last_send = (
        select(func.max(Send.sent_at)).where(Send.recipient_id == Recipient.id).scalar_subquery()
    )
    last_event = (
        select(func.max(Event.occurred_at))
        .where(Event.recipient_id == Recipient.id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Recipient.id, Recipient.created_at, last_send, last_event).where(
            *recipient_where(subject)
        )
    )
    return [(row[0], row[1], max(m for m in row[1:] if m is not None)) for row in rows]


def _entries_holding(session: Session, subject: EmailSubject) -> CategoryHolding | None:
    """The subject's entries, dated from their creation to their latest activity."""
    entries = _activity(session, subject)
    if not entries:
        return None
    return CategoryHolding(
        category=CONTACT_DETAILS,
        records=len(entries),
        earliest=min(created for _, created, _ in entries),
        latest=max(latest for _, _, latest in entries),
    )
