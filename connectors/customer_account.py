"""Customer account connector: the group's own data about its customers (the group is controller).

Who the subject is:
- an ``account_id`` identity (an account holder logged in to the privacy panel) names the whole
  account: the account's registered contact, all its contacts, billing details and invoices;
- an ``email`` identity (case-insensitive) names the contacts with that address, and, when it
  is an account's registered address, that account's registered contact, billing details and
  invoices (the account holder's data). Colleagues' contacts come only with the account id.

``scope.customer_account`` is for end-user data and plays no part here.

Erasure keeps what the books need: contacts and the registered address are cleared, billing
details nulled, invoices keep amounts and dates but their billing name, email and address are
redacted.

Restriction is a flag on the account (``processing_restricted``), set and lifted through the
account holder; it stays on the account when its registered address is rectified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

from pydantic import BaseModel
from sqlalchemy import (
    Boolean,
    ColumnElement,
    CursorResult,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    false,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, Session, mapped_column

from connectors.base import (
    EXPORT_CHUNK_ROWS,
    ConnectorInputError,
    OperationLogMixin,
    StoreConnector,
    UtcDateTime,
    erase_cutoffs,
    export_once,
    id_chunks,
    operation_key,
)
from connectors.protocol import (
    REDACTED,
    AccessInput,
    AccessResult,
    CategoryHolding,
    Discovery,
    EraseInput,
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
from dsr.models import EMAIL, PHONE, Correction, Identity, IdentityType

ACCOUNT_PROFILE = "account_profile"
BILLING_DETAILS = "billing_details"
INVOICES = "invoices"
CATEGORIES = (ACCOUNT_PROFILE, BILLING_DETAILS, INVOICES)
CONTACT_FIELDS = ("name", "email", "phone", "job_title", "signature")
BILLING_FIELDS = ("billing_name", "company_address", "bank_iban", "bank_bic", "vat_number")
INVOICE_FIELDS = ("billing_name", "billing_email", "billing_address")


class AccountBase(DeclarativeBase):
    pass


class Account(AccountBase):
    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    company_name: Mapped[str] = mapped_column(String(200))
    registered_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16))
    processing_restricted: Mapped[bool] = mapped_column(Boolean, default=False)


class Contact(AccountBase):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))
    job_title: Mapped[str | None] = mapped_column(String(200))
    signature: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class BillingProfile(AccountBase):
    __tablename__ = "billing_profiles"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), primary_key=True)
    billing_name: Mapped[str | None] = mapped_column(String(200))
    company_address: Mapped[str | None] = mapped_column(Text)
    bank_iban: Mapped[str | None] = mapped_column(String(34))
    bank_bic: Mapped[str | None] = mapped_column(String(11))
    vat_number: Mapped[str | None] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Invoice(AccountBase):
    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    billing_name: Mapped[str | None] = mapped_column(String(200))
    billing_email: Mapped[str | None] = mapped_column(String(254))
    billing_address: Mapped[str | None] = mapped_column(Text)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AccountOperationLog(OperationLogMixin, AccountBase):
    pass


# Case-insensitive email lookups need expression indexes.
Index("ix_accounts_registered_email", func.lower(Account.registered_email))
Index("ix_contacts_email", func.lower(Contact.email))


class RegisteredContactInput(BaseModel):
    account_id: str


class RegisteredContact(BaseModel):
    """The account's registered privacy/admin address: where the orchestrator sends the code
    that confirms a customer's controller instruction."""

    account_id: str
    email: str | None = None
    company_name: str | None = None


# --- the subject ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountSubject:
    whole: frozenset[str]  # accounts named by account id: every contact too
    held: frozenset[str]  # accounts whose holder is the subject (whole, or registered email)
    emails: frozenset[str]  # the subject's email addresses, lower-cased
    own_emails: frozenset[str]  # the addresses of the subject's own contacts (rectification)
    everyone: bool = False  # a sweep's: every account and contact, whoever they are about

    @property
    def empty(self) -> bool:
        return not self.held and not self.emails


def accounts_query(account_ids: set[str], emails: set[str]) -> Select[str, str | None]:
    """Accounts named by id or registered to one of the addresses (primary key and
    ``ix_accounts_registered_email``)."""
    return select(Account.account_id, Account.registered_email).where(
        _any_of(
            Account.account_id.in_(sorted(account_ids)) if account_ids else None,
            func.lower(Account.registered_email).in_(sorted(emails)) if emails else None,
        )
    )


def contacts_where(subject: AccountSubject) -> list[ColumnElement[bool]]:
    """The subject's contacts (``ix_contacts_account_id`` and ``ix_contacts_email``)."""
    if subject.everyone:
        return [Contact.anonymised_at.is_(None)]
    return [
        _any_of(
            Contact.account_id.in_(sorted(subject.whole)) if subject.whole else None,
            func.lower(Contact.email).in_(sorted(subject.emails)) if subject.emails else None,
        ),
        Contact.anonymised_at.is_(None),
    ]


def resolve_subject(session: Session, scope: Scope) -> AccountSubject:
    return resolve_identities(session, scope.identities)


def resolve_identities(session: Session, identities: Sequence[Identity]) -> AccountSubject:
    account_ids = {i.value for i in identities if i.type is IdentityType.ACCOUNT_ID}
    emails = {i.value.lower() for i in identities if i.type is IdentityType.EMAIL}
    if not account_ids and not emails:
        return AccountSubject(frozenset(), frozenset(), frozenset(), frozenset())
    accounts = session.execute(accounts_query(account_ids, emails)).all()
    whole = frozenset(row.account_id for row in accounts if row.account_id in account_ids)
    registered = {row.registered_email.lower() for row in accounts if row.registered_email}
    return AccountSubject(
        whole=whole,
        held=frozenset(row.account_id for row in accounts),
        emails=frozenset(emails),
        own_emails=frozenset(emails or registered),
    )


def _any_of(*conditions: ColumnElement[bool] | None) -> ColumnElement[bool]:
    present = [condition for condition in conditions if condition is not None]
    return or_(*present) if present else false()


# --- where each category lives -------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One table's share of a category: which rows are the subject's (and not yet erased),
    their date, how erasure changes them, and how a row is exported."""

    category: str
    model: type[AccountBase]
    dated: InstrumentedAttribute[datetime]
    where: list[ColumnElement[bool]]
    erasure: Callable[[datetime], dict[str, Any]]
    record: Callable[[Any], dict[str, Any]]


def sources(subject: AccountSubject) -> list[Source]:
    held = sorted(subject.held)

    def held_by(account_id: InstrumentedAttribute[str]) -> list[ColumnElement[bool]]:
        return [] if subject.everyone else [account_id.in_(held)]

    return [
        Source(
            ACCOUNT_PROFILE,
            Account,
            Account.created_at,
            [*held_by(Account.account_id), Account.registered_email.is_not(None)],
            lambda as_of: {"registered_email": None},
            _account_record,
        ),
        Source(
            ACCOUNT_PROFILE,
            Contact,
            Contact.created_at,
            contacts_where(subject),
            lambda as_of: {**dict.fromkeys(CONTACT_FIELDS), "anonymised_at": as_of},
            _contact_record,
        ),
        Source(
            BILLING_DETAILS,
            BillingProfile,
            BillingProfile.updated_at,
            [*held_by(BillingProfile.account_id), BillingProfile.anonymised_at.is_(None)],
            lambda as_of: {**dict.fromkeys(BILLING_FIELDS), "anonymised_at": as_of},
            _billing_record,
        ),
        Source(
            INVOICES,
            Invoice,
            Invoice.issued_at,
            [*held_by(Invoice.account_id), Invoice.anonymised_at.is_(None)],
            lambda as_of: {**dict.fromkeys(INVOICE_FIELDS, REDACTED), "anonymised_at": as_of},
            _invoice_record,
        ),
    ]


EVERYONE = AccountSubject(frozenset(), frozenset(), frozenset(), frozenset(), everyone=True)
CONTACT_CORRECTIONS = ("name", "email", "phone", "job_title")
BILLING_CORRECTIONS = ("company_address", "billing_name")
VALID_VALUE = {"email": EMAIL, "phone": PHONE}


def _treatments(
    category: str, table: str, columns: tuple[str, ...], strategy: Strategy
) -> list[Treatment]:
    """``strategy`` on ``columns``, and the row marked anonymised."""
    return [
        *(Treatment(category=category, table=table, column=c, strategy=strategy) for c in columns),
        Treatment(category=category, table=table, column="anonymised_at", strategy=Strategy.MARK),
    ]


TREATMENTS = (
    Treatment(
        category=ACCOUNT_PROFILE,
        table="accounts",
        column="registered_email",
        strategy=Strategy.NULL,
    ),
    *_treatments(ACCOUNT_PROFILE, "contacts", CONTACT_FIELDS, Strategy.NULL),
    *_treatments(BILLING_DETAILS, "billing_profiles", BILLING_FIELDS, Strategy.NULL),
    *_treatments(INVOICES, "invoices", INVOICE_FIELDS, Strategy.REDACT),
)


# --- the connector -------------------------------------------------------------------------


class CustomerAccountConnector(StoreConnector):
    """Its subject is found inside each operation's transaction (the accounts an identity
    holds), so its operations are its own; the store and ``sweep`` are shared."""

    name: ClassVar[str] = "customer_account"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = (
        "discover",
        "access",
        "erase",
        "rectify",
        "restrict",
        "registered_contact",
        "sweep",
    )

    schema = AccountBase
    operation_log = AccountOperationLog

    def discover(self, scope: Scope) -> Discovery:
        discovery = Discovery(connector=self.name)
        with self.store.reading() as session:
            subject = resolve_subject(session, scope)
            if subject.empty:
                return discovery
            for category in CATEGORIES:
                holding = _holding(session, subject, category)
                if holding is not None:
                    discovery.holdings.append(holding)
        return discovery

    def access(self, call: AccessInput) -> AccessResult:
        key = operation_key(self.secret, Operation.ACCESS, call)
        return export_once(
            self.store,
            self.blobs,
            self.name,
            key,
            lambda session: self._export_chunks(session, call.scope),
        )

    @staticmethod
    def _export_chunks(session: Session, scope: Scope) -> Iterator[list[dict[str, Any]]]:
        subject = resolve_subject(session, scope)
        return _export_chunks(session, sources(subject)) if not subject.empty else iter(())

    def erase(self, call: EraseInput) -> EraseResult:
        cutoffs = erase_cutoffs(self.name, call.rules, CATEGORIES)
        key = operation_key(self.secret, Operation.ERASE, call)
        return self.store.once(
            key, EraseResult, lambda session: self._erase(session, call.scope, cutoffs)
        )

    def rectify(self, call: RectifyInput) -> RectifyResult:
        corrections = _latest_corrections(call.corrections)
        key = operation_key(self.secret, Operation.RECTIFY, call)
        return self.store.once(
            key, RectifyResult, lambda session: self._rectify(session, call.scope, corrections)
        )

    def restrict(self, call: FlagInput) -> FlagResult:
        key = operation_key(self.secret, Operation.RESTRICT, call)
        return self.store.once(key, FlagResult, lambda session: self._restrict(session, call))

    def is_restricted(self, identity: Identity) -> bool:
        """Whether processing is restricted for an account this identity holds (the flag is on
        the account, so an account whose registered address is rectified keeps it)."""
        with self.store.reading() as session:
            held = sorted(resolve_identities(session, [identity]).held)
            restricted = select(Account.account_id).where(
                Account.account_id.in_(held), Account.processing_restricted.is_(True)
            )
            return session.scalars(restricted.limit(1)).first() is not None

    def registered_contact(self, call: RegisteredContactInput) -> RegisteredContact:
        with self.store.reading() as session:
            row = session.execute(
                select(Account.registered_email, Account.company_name).where(
                    Account.account_id == call.account_id
                )
            ).first()
        if row is None:
            return RegisteredContact(account_id=call.account_id)
        return RegisteredContact(account_id=call.account_id, email=row[0], company_name=row[1])

    # --- inside the operation's transaction ------------------------------------------------

    def _erase(self, session: Session, scope: Scope, cutoffs: dict[str, datetime]) -> EraseResult:
        result = EraseResult(connector=self.name)
        subject = resolve_subject(session, scope)
        if subject.empty:
            return result
        for source in sources(subject):
            if source.category not in cutoffs:
                continue
            statement = (
                update(source.model)
                .where(*source.where, source.dated < cutoffs[source.category])
                .values(source.erasure(scope.as_of))
                .execution_options(synchronize_session=False)
            )
            erased = cast(CursorResult[Any], session.execute(statement)).rowcount
            result.erased[source.category] = result.erased.get(source.category, 0) + erased
        for category in cutoffs:
            holding = _holding(session, subject, category)
            result.retained[category] = holding.records if holding else 0
        return result

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """Anonymise every account's records past their retention, as ``erase`` would."""
        as_of = call.as_of
        result = SweepResult(connector=self.name, anonymised=dict.fromkeys(cutoffs, 0))
        for source in sources(EVERYONE):
            if source.category not in cutoffs:
                continue
            key = inspect(source.model).primary_key[0]
            old = [*source.where, source.dated < cutoffs[source.category]]
            for ids in id_chunks(session, key, old):
                statement = (
                    update(source.model)
                    .where(key.in_(ids))
                    .values(source.erasure(as_of))
                    .execution_options(synchronize_session=False)
                )
                erased = cast(CursorResult[Any], session.execute(statement)).rowcount
                result.anonymised[source.category] += erased
        return result

    def _rectify(
        self, session: Session, scope: Scope, corrections: dict[str, str]
    ) -> RectifyResult:
        supported = (*CONTACT_CORRECTIONS, *BILLING_CORRECTIONS)
        result = RectifyResult(
            connector=self.name,
            unsupported_fields=sorted(field for field in corrections if field not in supported),
        )
        subject = resolve_subject(session, scope)
        if subject.empty:
            return result
        contact_values = {f: v for f, v in corrections.items() if f in CONTACT_CORRECTIONS}
        billing_values = {f: v for f, v in corrections.items() if f in BILLING_CORRECTIONS}
        if contact_values:
            changed = _update(session, Contact, _own_contacts(subject), contact_values)
            result.updated.update(dict.fromkeys(contact_values, changed))
        if "email" in contact_values:
            registered = [
                Account.account_id.in_(sorted(subject.held)),
                func.lower(Account.registered_email).in_(sorted(subject.own_emails)),
            ]
            new_email = {"registered_email": contact_values["email"]}
            result.updated["email"] += _update(session, Account, registered, new_email)
        if billing_values:
            billing = [
                BillingProfile.account_id.in_(sorted(subject.held)),
                BillingProfile.anonymised_at.is_(None),
            ]
            changed = _update(session, BillingProfile, billing, billing_values)
            result.updated.update(dict.fromkeys(billing_values, changed))
        return result

    def _restrict(self, session: Session, call: FlagInput) -> FlagResult:
        subject = resolve_subject(session, call.scope)
        if subject.held:
            held = [Account.account_id.in_(sorted(subject.held))]
            _update(session, Account, held, {"processing_restricted": not call.lift})
        return FlagResult(
            connector=self.name, operation=Operation.RESTRICT, records=len(subject.held)
        )


# --- helpers -------------------------------------------------------------------------------


def _holding(session: Session, subject: AccountSubject, category: str) -> CategoryHolding | None:
    records, earliest, latest = 0, None, None
    for source in sources(subject):
        if source.category != category:
            continue
        count, first, last = session.execute(
            select(func.count(), func.min(source.dated), func.max(source.dated))
            .select_from(source.model)
            .where(*source.where)
        ).one()
        if count:
            records += count
            earliest = first if earliest is None else min(earliest, first)
            latest = last if latest is None else max(latest, last)
    if not records:
        return None
    return CategoryHolding(category=category, records=records, earliest=earliest, latest=latest)


def _own_contacts(subject: AccountSubject) -> list[ColumnElement[bool]]:
    if not subject.own_emails:
        return [false()]
    return [
        func.lower(Contact.email).in_(sorted(subject.own_emails)),
        Contact.anonymised_at.is_(None),
    ]


def _update(
    session: Session,
    model: type[AccountBase],
    where: Sequence[ColumnElement[bool]],
    values: dict[str, Any],
) -> int:
    statement = (
        update(model).where(*where).values(values).execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _latest_corrections(corrections: list[Correction]) -> dict[str, str]:
    """The corrected value per field (the last one given wins), checked where a format exists.

    An error names the field, never the value."""
    latest: dict[str, str] = {}
    for correction in corrections:
        pattern = VALID_VALUE.get(correction.field)
        if pattern is not None and not pattern.fullmatch(correction.value):
            raise ConnectorInputError(f"corrected {correction.field} is malformed")
        latest[correction.field] = correction.value
    return latest


def _export_chunks(
    session: Session, subject_sources: list[Source]
) -> Iterator[list[dict[str, Any]]]:
    for source in subject_sources:
        statement = (
            select(source.model)
            .where(*source.where)
            .order_by(source.dated)
            .execution_options(yield_per=EXPORT_CHUNK_ROWS)
        )
        for partition in session.scalars(statement).partitions():
            yield [{"category": source.category, **source.record(row)} for row in partition]


def _account_record(account: Account) -> dict[str, Any]:
    return {
        "record": "account",
        "account_id": account.account_id,
        "company_name": account.company_name,
        "registered_email": account.registered_email,
        "created_at": account.created_at,
        "status": account.status,
        "processing_restricted": account.processing_restricted,
    }


def _contact_record(contact: Contact) -> dict[str, Any]:
    return {
        "record": "contact",
        "contact_id": contact.id,
        "account_id": contact.account_id,
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
        "job_title": contact.job_title,
        "signature": contact.signature,
        "created_at": contact.created_at,
    }


def _billing_record(profile: BillingProfile) -> dict[str, Any]:
    return {
        "record": "billing_profile",
        "account_id": profile.account_id,
        **{field: getattr(profile, field) for field in BILLING_FIELDS},
        "updated_at": profile.updated_at,
    }


def _invoice_record(invoice: Invoice) -> dict[str, Any]:
    return {
        "record": "invoice",
        "invoice_id": invoice.id,
        "account_id": invoice.account_id,
        "issued_at": invoice.issued_at,
        "amount_cents": invoice.amount_cents,
        "currency": invoice.currency,
        "billing_name": invoice.billing_name,
        "billing_email": invoice.billing_email,
        "billing_address": invoice.billing_address,
    }
