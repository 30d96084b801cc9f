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

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from connectors.inbox_store import (
    CATEGORIES,
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
    part,
    subject_export_chunks,
    subject_messages,
    subject_of,
    subject_where,
)
from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.errors import ConnectorInputError
from connectors.kit.queries import update_rows
from connectors.kit.reach import sweep_chunks, widest
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
        "discover", "access", "erase", "rectify", "restrict", "locate", "sweep"
    )

    schema = InboxBase
    operation_log = InboxOperationLog
    restriction_model = Restriction
    correctable = CORRECTABLE

    subject = staticmethod(subject_of)
    holders = staticmethod(locate_holders)

    def holding(self, session: Session, subject: Subject, category: str) -> CategoryHolding | None:
        return part(subject, category).holding(session, category)

    def export_chunks(self, session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
        return subject_export_chunks(session, subject)

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
            cutoff = widest(cutoffs, (CONTACT_IDENTIFIERS, category))
            deleted = self._delete_messages(session, subject, category, cutoff, link, scope.as_of)
            if category in cutoffs or deleted:
                erased[category] = deleted
        if link is not None:
            # Cut loose from the person: the conversation's identifiers and name go.
            opened = [*subject_where(subject), Conversation.opened_at < link]
            erased[CONTACT_IDENTIFIERS] = self.treat.apply(
                session, "conversations", [CONTACT_IDENTIFIERS], opened, scope.as_of
            )
        retained = {category: part(subject, category).count(session) for category in cutoffs}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def _delete_messages(
        self,
        session: Session,
        subject: Subject,
        category: str,
        before: datetime | None,
        link: datetime | None,
        as_of: datetime,
    ) -> int:
        """Delete the category's messages sent before ``before``, and every message of the
        conversations opened before ``link`` (those are about to be cut loose)."""
        if before is None:
            return 0
        dated: list[ColumnElement[bool]] = [Message.sent_at < before]
        if link is not None:
            unlinked = select(Conversation.id).where(
                *subject_where(subject), Conversation.opened_at < link
            )
            dated.append(Message.conversation_id.in_(unlinked))
        where = [*subject_messages(subject, category), or_(*dated)]
        return self.treat.apply(session, "messages", [category], where, as_of)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The erase of every conversation (and its messages) dated before the widest cutoff,
        a chunk of conversations at a time: no message predates its conversation."""
        scope = sweep_scope(call)

        def erase(ids: list[int]) -> dict[str, int]:
            chunk = Subject("", (), (Conversation.id.in_(ids),))
            return self.erase_now(session, chunk, cutoffs, scope).erased

        anonymised = sweep_chunks(
            session, cutoffs, Conversation.opened_at, Conversation.anonymised_at, erase
        )
        return SweepResult(connector=self.name, anonymised=anonymised)

    def rectify_now(
        self, session: Session, subject: Subject, values: dict[str, str], scope: Scope
    ) -> dict[str, int]:
        """Correct the subject's conversations; a corrected email stays restricted if the
        subject is."""
        # Found once, before any change: a corrected email must not lose the other fields.
        found = list(session.scalars(select(Conversation.id).where(*subject_where(subject))))
        updated: dict[str, int] = {}
        for field, value in values.items():
            column = CORRECTABLE[field]
            held = [Conversation.id.in_(found), getattr(Conversation, column).is_not(None)]
            updated[field] = update_rows(session, Conversation, held, {column: value})
        if "email" in values:
            corrected = Identity(type=IdentityType.EMAIL, value=values["email"])
            self.restrictions.carry_over(session, subject.customer_account, scope, corrected)
        return updated

    def restrict_now(self, session: Session, subject: Subject, call: FlagInput) -> int:
        customer_account = subject.customer_account
        self.restrictions.place_or_lift(session, customer_account, call, subject.identities)
        return part(subject, CONTACT_IDENTIFIERS).count(session)


# --- rules ---------------------------------------------------------------------------------


def _corrected(field: str, value: str) -> str:
    """A corrected value; an email address is checked and kept in lower case. An error names
    the field, never the value."""
    if field != "email":
        return value
    if not EMAIL.fullmatch(value):
        raise ConnectorInputError("corrected email is malformed")
    return value.lower()
