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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    CursorResult,
    Index,
    Integer,
    Select,
    String,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, Session, mapped_column

from connectors.kit.connector import CutoffConnector
from connectors.kit.cutoffs import id_chunks
from connectors.kit.errors import ConnectorInputError
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from connectors.kit.restrictions import RestrictionMixin, is_restricted
from connectors.kit.store import OperationLogMixin, UtcDateTime, operation_key
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    FlagInput,
    FlagResult,
    Operation,
    RectifyInput,
    RectifyResult,
    Scope,
    Strategy,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.models import Identity, IdentityType

PROSPECT_PROFILE = "prospect_profile"
SUBSCRIPTIONS = "subscriptions"
CONSENT_PROOF = "consent_proof"
CATEGORIES = (PROSPECT_PROFILE, SUBSCRIPTIONS, CONSENT_PROOF)
CORRECTABLE = ("name", "company", "job_title")
IMPORT_CHUNK_ROWS = 500
GROUP = "-"  # restrictions of the group's own data belong to no customer
TREATMENTS = tuple(
    Treatment(category=category, table=table, column="*", strategy=Strategy.DELETE_ROW)
    for category, table in (
        (PROSPECT_PROFILE, "prospects"),
        (SUBSCRIPTIONS, "subscriptions"),
        (CONSENT_PROOF, "consent_records"),
    )
)


class MarketingBase(DeclarativeBase):
    pass


class Prospect(MarketingBase):
    __tablename__ = "prospects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    job_title: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    source_detail: Mapped[str] = mapped_column(String(200))  # the form, or the provider
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_contacted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    objected_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("source IN ('web_form', 'enrichment')", name="ck_prospects_source"),
    )


class Subscription(MarketingBase):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    list_name: Mapped[str] = mapped_column(String(64))
    subscribed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ConsentRecord(MarketingBase):
    """Proof of a consent given (and perhaps withdrawn), for one purpose (a list's name)."""

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(64))
    given_at: Mapped[datetime] = mapped_column(UtcDateTime)
    evidence: Mapped[str] = mapped_column(Text)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    withdrawal_evidence: Mapped[str | None] = mapped_column(Text)


class Suppression(MarketingBase):
    """Never contact or import this identity again: a keyed hash, nothing readable."""

    __tablename__ = "suppressions"

    identity_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))  # the operation that added it
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Restriction(RestrictionMixin, MarketingBase):
    """Restrictions of the group's own data: customer ``GROUP``."""


class MarketingOperationLog(OperationLogMixin, MarketingBase):
    pass


# Case-insensitive lookups need expression indexes.
Index("ix_prospects_email", func.lower(Prospect.email))
Index("ix_subscriptions_email", func.lower(Subscription.email))


class ProspectRow(BaseModel):
    """One prospect to import (from a web form or an enrichment provider's file)."""

    model_config = ConfigDict(hide_input_in_errors=True)

    email: str
    name: str | None = None
    company: str | None = None
    job_title: str | None = None
    source: Literal["web_form", "enrichment"]
    source_detail: str
    created_at: datetime
    last_contacted_at: datetime | None = None


# --- the subject ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    emails: tuple[str, ...]  # lower case
    # The normalised identities' keyed hashes in every form records may hold them in (under
    # each key held, and bare): what matching looks for.
    hashes: tuple[str, ...]
    # Each email's hash under the current key (what a new entry holds), with all its forms.
    entries: tuple[tuple[str, tuple[str, ...]], ...] = ()
    everyone: bool = False  # a sweep's: every row, whoever it is about


EVERYONE = Subject((), (), everyone=True)


@dataclass(frozen=True)
class Source:
    """Where a category lives: its table, which rows are the subject's, their date, and how
    a row is exported."""

    category: str
    model: type[MarketingBase]
    dated: ColumnElement[datetime] | InstrumentedAttribute[datetime]
    where: list[ColumnElement[bool]]
    record: Callable[[Any], dict[str, Any]]


def proof_dated() -> ColumnElement[datetime]:
    """A consent proof's date: its withdrawal, else the consent."""
    return func.coalesce(ConsentRecord.withdrawn_at, ConsentRecord.given_at)


def sources(subject: Subject) -> dict[str, Source]:
    """Each category's rows for the subject (``ix_prospects_email``, ``ix_subscriptions_email``
    and the consent records' ``email_hash`` index)."""
    emails = list(subject.emails)

    def of_subject(condition: ColumnElement[bool]) -> list[ColumnElement[bool]]:
        return [] if subject.everyone else [condition]

    return {
        PROSPECT_PROFILE: Source(
            PROSPECT_PROFILE,
            Prospect,
            Prospect.created_at,
            of_subject(func.lower(Prospect.email).in_(emails)),
            _prospect_record,
        ),
        SUBSCRIPTIONS: Source(
            SUBSCRIPTIONS,
            Subscription,
            Subscription.subscribed_at,
            of_subject(func.lower(Subscription.email).in_(emails)),
            _subscription_record,
        ),
        CONSENT_PROOF: Source(
            CONSENT_PROOF,
            ConsentRecord,
            proof_dated(),
            of_subject(ConsentRecord.email_hash.in_(list(subject.hashes))),
            _consent_record,
        ),
    }


def subject_rows(source: Source) -> Select[Any]:
    return select(source.model).where(*source.where)


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


def _prospect_record(prospect: Prospect) -> dict[str, Any]:
    return {
        "prospect_id": prospect.id,
        "email": prospect.email,
        "name": prospect.name,
        "company": prospect.company,
        "job_title": prospect.job_title,
        "source": prospect.source,
        "source_detail": prospect.source_detail,
        "created_at": prospect.created_at,
        "last_contacted_at": prospect.last_contacted_at,
        "objected_at": prospect.objected_at,
    }


def _subscription_record(subscription: Subscription) -> dict[str, Any]:
    return {
        "subscription_id": subscription.id,
        "email": subscription.email,
        "list": subscription.list_name,
        "subscribed_at": subscription.subscribed_at,
        "unsubscribed_at": subscription.unsubscribed_at,
    }


def _consent_record(consent: ConsentRecord) -> dict[str, Any]:
    return {
        "consent_id": consent.id,
        "purpose": consent.purpose,
        "given_at": consent.given_at,
        "evidence": consent.evidence,
        "withdrawn_at": consent.withdrawn_at,
        "withdrawal_evidence": consent.withdrawal_evidence,
    }
