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

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar, cast

from pydantic import ValidationError
from sqlalchemy import ColumnElement, CursorResult, delete, func, insert, select, update
from sqlalchemy.orm import Session

from connectors.kit.connector import CutoffConnector
from connectors.kit.cutoffs import id_chunks
from connectors.kit.errors import ConnectorInputError
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from connectors.kit.restrictions import is_restricted
from connectors.kit.store import operation_key
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
    Source,
    Subject,
    Subscription,
    Suppression,
    sources,
    subject_rows,
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

    def subject(self, scope: Scope) -> Subject | None:
        emails = sorted({i.value.lower() for i in scope.identities if i.type is IdentityType.EMAIL})
        if not emails:
            return None
        entries = tuple((self.identity_hash(e), tuple(self._forms(e))) for e in emails)
        forms = tuple(form for _, each in entries for form in each)
        return Subject(tuple(emails), forms, entries)

    def holding(self, session: Session, subject: Subject, category: str) -> CategoryHolding | None:
        return _holding(session, sources(subject)[category])

    def export_chunks(self, session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
        return _export_chunks(session, subject)

    def rectify(self, call: RectifyInput) -> RectifyResult:
        """Its own rectify: corrections are taken as given, and nothing is recorded when no
        field can be corrected."""
        corrections = {correction.field: correction.value for correction in call.corrections}
        unsupported = sorted(field for field in corrections if field not in CORRECTABLE)
        values = {field: value for field, value in corrections.items() if field in CORRECTABLE}
        subject = self.subject(call.scope)
        if subject is None or not values:
            return RectifyResult(connector=self.name, unsupported_fields=unsupported)
        key = operation_key(self.secret, Operation.RECTIFY, call)

        def work(session: Session) -> RectifyResult:
            changed = _update(session, Prospect, _prospects(subject), values)
            updated = dict.fromkeys(values, changed)
            return RectifyResult(
                connector=self.name, updated=updated, unsupported_fields=unsupported
            )

        return self.store.once(key, RectifyResult, work)

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
            return _suppressed(session, self._forms(email))

    def is_restricted(self, email: str) -> bool:
        return is_restricted(self.store, self.restrictions, GROUP, _email_identity(email))

    def import_prospects(self, rows: Iterable[ProspectRow]) -> int:
        """Import prospects, skipping every suppressed identity. Returns how many were
        imported."""
        imported = 0
        for chunk in _chunks(list(rows), IMPORT_CHUNK_ROWS):
            forms = [self._forms(row.email) for row in chunk]
            with self.store.writing() as session:
                suppressed = set(
                    session.scalars(
                        select(Suppression.identity_hash).where(
                            Suppression.identity_hash.in_([f for fs in forms for f in fs])
                        )
                    )
                )
                fresh = [
                    row.model_dump()
                    for row, row_forms in zip(chunk, forms, strict=True)
                    if suppressed.isdisjoint(row_forms)
                ]
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
        result = EraseResult(connector=self.name)
        subject_sources = sources(subject)
        for category, before in cutoffs.items():
            source = subject_sources[category]
            statement = (
                delete(source.model)
                .where(*source.where, source.dated < before)
                .execution_options(synchronize_session=False)
            )
            result.erased[category] = cast(CursorResult[Any], session.execute(statement)).rowcount
        for category in cutoffs:
            holding = _holding(session, subject_sources[category])
            result.retained[category] = holding.records if holding else 0
        _suppress(session, subject, Operation.ERASE, scope)
        return result

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """Erase everyone's records past their retention, as ``erase`` would (deleted); no
        one is suppressed, since no one asked."""
        result = SweepResult(connector=self.name)
        everyones = sources(EVERYONE)
        for category, before in cutoffs.items():
            source = everyones[category]
            model = cast(Any, source.model)
            result.anonymised[category] = 0
            for ids in id_chunks(session, model.id, [*source.where, source.dated < before]):
                statement = (
                    delete(source.model)
                    .where(model.id.in_(ids))
                    .execution_options(synchronize_session=False)
                )
                deleted = cast(CursorResult[Any], session.execute(statement)).rowcount
                result.anonymised[category] += deleted
        return result

    def restrict_now(self, session: Session, subject: Subject, call: FlagInput) -> int:
        identities = [_email_identity(email) for email in subject.emails]
        self.restrictions.place_or_lift(session, GROUP, call, identities)
        holdings = (_holding(session, source) for source in sources(subject).values())
        return sum(holding.records for holding in holdings if holding is not None)

    def _object(self, session: Session, subject: Subject, call: FlagInput) -> int:
        not_yet = [*_prospects(subject), Prospect.objected_at.is_(None)]
        objected = _update(session, Prospect, not_yet, {"objected_at": call.scope.as_of})
        _suppress(session, subject, Operation.OBJECT, call.scope)
        return objected

    def _withdraw_consent(self, session: Session, subject: Subject, call: FlagInput) -> int:
        given = [
            ConsentRecord.email_hash.in_(list(subject.hashes)),
            ConsentRecord.withdrawn_at.is_(None),
        ]
        purposes = sorted(set(session.scalars(select(ConsentRecord.purpose).where(*given))))
        withdrawal = {
            "withdrawn_at": call.scope.as_of,
            "withdrawal_evidence": f"data subject rights request {call.scope.request_id}",
        }
        withdrawn = _update(session, ConsentRecord, given, withdrawal)
        resting = [*_active_subscriptions(subject), Subscription.list_name.in_(purposes)]
        ended = _update(session, Subscription, resting, {"unsubscribed_at": call.scope.as_of})
        return withdrawn + ended

    def _opt_out(self, session: Session, subject: Subject, call: FlagInput) -> int:
        active = _active_subscriptions(subject)
        ended = _update(session, Subscription, active, {"unsubscribed_at": call.scope.as_of})
        _suppress(session, subject, Operation.MARKETING_OPT_OUT, call.scope)
        return ended


# --- queries -------------------------------------------------------------------------------


def _prospects(subject: Subject) -> list[ColumnElement[bool]]:
    return [func.lower(Prospect.email).in_(list(subject.emails))]


def _active_subscriptions(subject: Subject) -> list[ColumnElement[bool]]:
    return [
        func.lower(Subscription.email).in_(list(subject.emails)),
        Subscription.unsubscribed_at.is_(None),
    ]


def _holding(session: Session, source: Source) -> CategoryHolding | None:
    records, earliest, latest = session.execute(
        select(func.count(), func.min(source.dated), func.max(source.dated))
        .select_from(source.model)
        .where(*source.where)
    ).one()
    if not records:
        return None
    return CategoryHolding(
        category=source.category, records=records, earliest=earliest, latest=latest
    )


def _update(
    session: Session,
    model: type[MarketingBase],
    where: Sequence[ColumnElement[bool]],
    values: dict[str, Any],
) -> int:
    statement = (
        update(model).where(*where).values(values).execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _suppressed(session: Session, forms: Sequence[str]) -> bool:
    return session.scalar(select(Suppression.identity_hash).where(
        Suppression.identity_hash.in_(list(forms))).limit(1)) is not None


def _suppress(session: Session, subject: Subject, operation: Operation, scope: Scope) -> None:
    """Add the subject's suppression entries (the first reason stays)."""
    for identity_hash, forms in subject.entries:
        if not _suppressed(session, forms):  # the first reason stays, under any key
            session.add(
                Suppression(
                    identity_hash=identity_hash,
                    reason=operation.value,
                    request_id=scope.request_id,
                    created_at=scope.as_of,
                )
            )
    session.flush()


def _email_identity(email: str) -> Identity:
    """An email identity; a malformed address is refused without quoting it."""
    try:
        return Identity(type=IdentityType.EMAIL, value=email)
    except ValidationError:
        raise ConnectorInputError("email is malformed") from None


def _chunks(rows: list[ProspectRow], size: int) -> Iterator[list[ProspectRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


# --- export --------------------------------------------------------------------------------


def _export_chunks(session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
    for source in sources(subject).values():
        statement = (
            subject_rows(source)
            .order_by(source.dated)
            .execution_options(yield_per=EXPORT_CHUNK_ROWS)
        )
        for partition in session.scalars(statement).partitions():
            yield [{"category": source.category, **source.record(row)} for row in partition]
