"""Marketing connector: the group's own marketing and prospect data (the group is controller).

The subject is found by email address (case-insensitive); ``scope.customer_account`` plays no
part. Categories:
- ``prospect_profile``: prospects from web forms and third-party enrichment providers (name,
  email address, company, job title, source), dated by creation;
- ``subscriptions``: mailing-list subscriptions, dated by subscription;
- ``consent_proof``: proof that consent was given or withdrawn (purpose, dates, evidence),
  held by a keyed hash of the email address, dated by its last event (withdrawal, else
  consent).

Marketing data is kept at most, never must be kept: an erasure deletes the prospect records
and subscriptions at once. Consent proof must be kept five years: the orchestrator sends the
cutoff and only proof dated before it is deleted.

Whoever is erased, objects or opts out gets a suppression entry: a keyed hash of the
normalised identity (``keyed_hash(secret, identity.normalised)``), so the person is never
contacted or re-imported again (``import_prospects`` skips them). Suppression is never lifted
by a request. The other operations:
- ``object``: prospects are marked objected (no more prospecting on legitimate interest);
- ``withdraw_consent``: the withdrawal is recorded on every consent still given (the proof is
  kept) and the subscriptions resting on those consents end;
- ``marketing_opt_out``: every subscription ends;
- ``restrict``: a restriction by keyed hash (the shared restrictions, as the group's data:
  customer ``"-"``), which ``lift`` ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from connectors.kit.connector import CutoffConnector
from connectors.kit.errors import ConnectorInputError
from connectors.kit.identities import checked_identity
from connectors.kit.queries import batched, holding, update_rows
from connectors.kit.restrictions import is_restricted
from connectors.kit.shares import dated_before, erase_dated, export_shares, sweep_shares
from connectors.kit.suppressions import Suppressions
from connectors.marketing_store import (
    CATEGORIES,
    CORRECTABLE,
    EVERYONE,
    GROUP,
    IMPORT_CHUNK_ROWS,
    TREATMENTS,
    ConsentRecord,
    MarketingBase,
    MarketingOperationLog,
    Prospect,
    ProspectRow,
    Restriction,
    Subject,
    Subscription,
    Suppression,
    active_subscriptions,
    consents_given,
    prospects,
    sources,
)
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    FlagInput,
    FlagResult,
    Operation,
    RectifyInput,
    RectifyResult,
    Scope,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.models import Identity, IdentityType

SUPPRESSIONS = Suppressions(Suppression)

# --- the connector -------------------------------------------------------------------------


class MarketingConnector(CutoffConnector[Subject]):
    name: ClassVar[str] = "marketing"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = (
        "discover",
        "access",
        "erase",
        "rectify",
        "restrict",
        "object",
        "withdraw_consent",
        "marketing_opt_out",
        "sweep",
    )

    schema = MarketingBase
    operation_log = MarketingOperationLog
    restriction_model = Restriction
    correctable = CORRECTABLE

    def subject(self, scope: Scope) -> Subject | None:
        emails = sorted({i.value.lower() for i in scope.identities if i.type is IdentityType.EMAIL})
        if not emails:
            return None
        entries = tuple((self.identity_hash(e), tuple(self._forms(e))) for e in emails)
        forms = tuple(form for _, each in entries for form in each)
        return Subject(tuple(emails), forms, entries)

    def holding(self, session: Session, subject: Subject, category: str) -> CategoryHolding | None:
        return holding(session, category, [sources(subject)[category]])

    def export_chunks(self, session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
        return export_shares(session, sources(subject).values())

    def rectify(self, call: RectifyInput) -> RectifyResult:
        """Nothing is recorded when no field can be corrected."""
        if not any(correction.field in CORRECTABLE for correction in call.corrections):
            unsupported = sorted({correction.field for correction in call.corrections})
            return RectifyResult(connector=self.name, unsupported_fields=unsupported)
        return super().rectify(call)

    def rectify_now(
        self, session: Session, subject: Subject, values: dict[str, str], scope: Scope
    ) -> dict[str, int]:
        """The prospects' fields, corrected as given."""
        return dict.fromkeys(values, update_rows(session, Prospect, prospects(subject), values))

    def object(self, call: FlagInput) -> FlagResult:
        return self._flag(call, Operation.OBJECT, self._object)

    def withdraw_consent(self, call: FlagInput) -> FlagResult:
        return self._flag(call, Operation.WITHDRAW_CONSENT, self._withdraw_consent)

    def marketing_opt_out(self, call: FlagInput) -> FlagResult:
        return self._flag(call, Operation.MARKETING_OPT_OUT, self._opt_out)

    # --- suppression, restriction and import -----------------------------------------------

    def identity_hash(self, email: str) -> str:
        """The keyed hash of an email identity, as suppression entries, consent proof and
        restrictions hold it."""
        return self.identity_index.tag(_email_identity(email).normalised)

    def _forms(self, email: str) -> list[str]:
        return self.identity_index.candidates(_email_identity(email).normalised)

    def is_suppressed(self, email: str) -> bool:
        """Whether this person must never be contacted or imported again."""
        with self.store.reading() as session:
            return SUPPRESSIONS.any(session, self._forms(email))

    def is_restricted(self, email: str) -> bool:
        return is_restricted(self.store, self.restrictions, GROUP, _email_identity(email))

    def import_prospects(self, rows: Iterable[ProspectRow]) -> int:
        """Import prospects, skipping every suppressed identity. Returns how many were
        imported."""
        imported = 0
        for chunk in batched(list(rows), IMPORT_CHUNK_ROWS):
            forms = [self._forms(row.email) for row in chunk]
            with self.store.writing() as session:
                kept = SUPPRESSIONS.unsuppressed(session, chunk, forms)
                fresh = [row.model_dump() for row in kept]
                if fresh:
                    session.execute(insert(Prospect), fresh)
            imported += len(fresh)
        return imported

    # --- inside the operation's transaction ------------------------------------------------

    def _flag(
        self,
        call: FlagInput,
        operation: Operation,
        change: Callable[[Session, Subject, FlagInput], int],
    ) -> FlagResult:
        """Object, withdraw consent or opt out: none of them can be lifted."""
        if call.lift:
            raise ConnectorInputError(f"marketing cannot lift {operation.value}")
        return self.flag(call, operation, lambda session, subject: change(session, subject, call))

    def erase_now(
        self, session: Session, subject: Subject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        """Each category's records dated before its cutoff deleted, as declared
        (``marketing_store.TREATMENTS``) and done by the kit's treatments; the subject is
        suppressed."""
        result = EraseResult(connector=self.name)
        subject_sources = sources(subject)
        for category, before in cutoffs.items():
            source = subject_sources[category]
            result.erased[category] = erase_dated(
                self.treat, session, category, [source], before, scope.as_of
            )
            result.retained[category] = source.count(session)
        SUPPRESSIONS.add(session, subject.entries, Operation.ERASE, scope)
        return result

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """Erase everyone's records past their retention, as ``erase`` would (deleted), a
        chunk of ids at a time; no one is suppressed, since no one asked."""
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        everyones = sources(EVERYONE)
        for category, before in cutoffs.items():
            anonymised.update(sweep_shares(session, self.treat, [everyones[category]],
                                           dated_before(before), call.as_of))
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def restrict_now(self, session: Session, subject: Subject, call: FlagInput) -> int:
        identities = [_email_identity(email) for email in subject.emails]
        self.restrictions.place_or_lift(session, GROUP, call, identities)
        return sum(source.count(session) for source in sources(subject).values())

    def _object(self, session: Session, subject: Subject, call: FlagInput) -> int:
        not_yet = [*prospects(subject), Prospect.objected_at.is_(None)]
        objected = update_rows(session, Prospect, not_yet, {"objected_at": call.scope.as_of})
        SUPPRESSIONS.add(session, subject.entries, Operation.OBJECT, call.scope)
        return objected

    def _withdraw_consent(self, session: Session, subject: Subject, call: FlagInput) -> int:
        given = consents_given(subject)
        purposes = sorted(set(session.scalars(select(ConsentRecord.purpose).where(*given))))
        withdrawal = {
            "withdrawn_at": call.scope.as_of,
            "withdrawal_evidence": f"data subject rights request {call.scope.request_id}",
        }
        withdrawn = update_rows(session, ConsentRecord, given, withdrawal)
        resting = [*active_subscriptions(subject), Subscription.list_name.in_(purposes)]
        ended = update_rows(session, Subscription, resting, {"unsubscribed_at": call.scope.as_of})
        return withdrawn + ended

    def _opt_out(self, session: Session, subject: Subject, call: FlagInput) -> int:
        active = active_subscriptions(subject)
        ended = update_rows(session, Subscription, active, {"unsubscribed_at": call.scope.as_of})
        SUPPRESSIONS.add(session, subject.entries, Operation.MARKETING_OPT_OUT, call.scope)
        return ended


def _email_identity(email: str) -> Identity:
    """An email identity; a malformed address is refused without quoting it."""
    return checked_identity(IdentityType.EMAIL, email)
