"""Flow Builder connector: the invocations of the automation flows a customer builds, each
started by a trigger on a channel for one end user.

The customer is the controller of its end users' data and the group its processor, so every
lookup is confined to one customer account: without ``scope.customer_account`` the connector
finds nothing, and it never searches across customers. An invocation names its end user by
email address (stored and matched in lower case), phone number or channel id; those
identifiers of the invocation payload are kept in their own indexed columns, and ``payload``
keeps the rest of what the trigger carried. Each step's name and status are kept in
``step_results`` and what it produced, apart, in ``step_outputs``.

Categories:
- ``invocation_identifiers``: the email address, phone number or channel id the invocation was
  made for;
- ``channel_data``: what the channel carried and the flow produced (the trigger's payload,
  such as message text and profile name, and each step's output).

Erasure, per category:
- ``channel_data``: the payload and the step outputs are cleared; each step's name and status
  stay (the customer's flow statistics);
- ``invocation_identifiers``: the invocation is cut loose from the person. Its identifiers are
  cleared and its channel data goes too (an invocation that can no longer be found for its
  subject must not keep what could identify them). Flow, time, trigger channel and step
  outcomes stay; the invocation gets ``anonymised_at``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.orm import Session

from connectors.flow_builder_store import (
    CATEGORIES,
    CHANNEL_DATA,
    INVOCATION_IDENTIFIERS,
    TREATMENTS,
    FlowBuilderBase,
    FlowBuilderOperationLog,
    Invocation,
    Restriction,
    Subject,
    holds,
    locate_holders,
    subject_export_chunks,
    subject_of,
    subject_where,
)
from connectors.flow_builder_store import subject_invocations as subject_invocations
from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.queries import Held, count_rows
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
from dsr.models import Identity


class FlowBuilderConnector(CutoffConnector[Subject]):
    name: ClassVar[str] = "flow_builder"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = (
        "discover", "access", "erase", "restrict", "locate", "sweep"
    )

    schema = FlowBuilderBase
    operation_log = FlowBuilderOperationLog
    restriction_model = Restriction

    subject = staticmethod(subject_of)
    holders = staticmethod(locate_holders)

    def holding(self, session: Session, subject: Subject, category: str) -> CategoryHolding | None:
        where = [*subject_where(subject), holds(category)]
        return Held(Invocation.invoked_at, where).holding(session, category)

    def export_chunks(self, session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
        return subject_export_chunks(session, subject)

    def is_restricted(self, customer_account: str, identity: Identity) -> bool:
        """Whether flows may no longer process this end user's data for this customer."""
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- inside the operation's transaction ------------------------------------------------

    def erase_now(
        self, session: Session, subject: Subject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        where = subject_where(subject)
        erased: dict[str, int] = {}
        # An invocation cut loose loses its channel data too (the widest cutoff of both).
        channel = widest(cutoffs, CATEGORIES)
        cleared = 0
        if channel is not None:
            held = [*where, Invocation.invoked_at < channel, holds(CHANNEL_DATA)]
            cleared = self.treat.apply(session, "invocations", [CHANNEL_DATA], held, scope.as_of)
        if CHANNEL_DATA in cutoffs or cleared:
            erased[CHANNEL_DATA] = cleared
        link = cutoffs.get(INVOCATION_IDENTIFIERS)
        if link is not None:
            invoked = [*where, Invocation.invoked_at < link]
            erased[INVOCATION_IDENTIFIERS] = self.treat.apply(
                session, "invocations", [INVOCATION_IDENTIFIERS], invoked, scope.as_of
            )
        retained = {
            category: count_rows(session, Invocation, [*where, holds(category)])
            for category in cutoffs
        }
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The erase of every invocation dated before the widest cutoff, a chunk at a time."""
        scope = sweep_scope(call)

        def erase(ids: list[int]) -> dict[str, int]:
            chunk = Subject("", (), (Invocation.id.in_(ids),))
            return self.erase_now(session, chunk, cutoffs, scope).erased

        anonymised = sweep_chunks(
            session, cutoffs, Invocation.invoked_at, Invocation.anonymised_at, erase
        )
        return SweepResult(connector=self.name, anonymised=anonymised)

    def restrict_now(self, session: Session, subject: Subject, call: FlagInput) -> int:
        customer_account = subject.customer_account
        self.restrictions.place_or_lift(session, customer_account, call, subject.identities)
        return count_rows(session, Invocation, subject_where(subject))
