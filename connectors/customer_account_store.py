"""The customer account store: its tables, whose rows a subject's are, and where each category
lives (``connectors.customer_account`` is the connector that works on it).

Each account contracts with one affiliate (``contracts``, as described in the Terms); the
country of that entity decides how long the account's financial records must be kept, and
discovery reports it per category in ``countries_ended`` (``UNKNOWN_COUNTRY`` where no
contract is recorded: the orchestrator then applies the longest period of the rule).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, Session, mapped_column

from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import REDACTED, Scope, Strategy, Treatment
from dsr.models import Identity, IdentityType

UNKNOWN_COUNTRY = "ZZ"  # CLDR's "unknown region": an account with no contract recorded

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


class Contract(AccountBase):
    """The affiliate an account contracts with (as described in the Terms): its bookkeeping
    duty, in its country, decides how long the account's financial records are kept. An
    account without one keeps them for the longest period the statement allows."""

    __tablename__ = "contracts"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), primary_key=True)
    entity: Mapped[str] = mapped_column(String(200))  # its legal name: "MessageBird B.V."
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2


class AccountOperationLog(OperationLogMixin, AccountBase):
    pass


# Case-insensitive email lookups need expression indexes.
Index("ix_accounts_registered_email", func.lower(Account.registered_email))
Index("ix_contacts_email", func.lower(Contact.email))


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


def contracting_country(account_id: InstrumentedAttribute[str]) -> ColumnElement[str]:
    """The country of the entity the row's account contracts with, or ``UNKNOWN_COUNTRY``."""
    entity = select(Contract.country).where(Contract.account_id == account_id)
    return func.coalesce(entity.scalar_subquery(), UNKNOWN_COUNTRY)


# --- where each category lives -------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One table's share of a category: which rows are the subject's (and not yet erased),
    their date, how erasure changes them, how a row is exported, and the country whose
    retention duty binds them."""

    category: str
    model: type[AccountBase]
    dated: InstrumentedAttribute[datetime]
    where: list[ColumnElement[bool]]
    erasure: Callable[[datetime], dict[str, Any]]
    record: Callable[[Any], dict[str, Any]]
    account: InstrumentedAttribute[str]  # the row's account

    @property
    def country(self) -> ColumnElement[str]:
        """The contracting entity's country of the row's account (a correlated subquery)."""
        return contracting_country(self.account)


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
            Account.account_id,
        ),
        Source(
            ACCOUNT_PROFILE,
            Contact,
            Contact.created_at,
            contacts_where(subject),
            lambda as_of: {**dict.fromkeys(CONTACT_FIELDS), "anonymised_at": as_of},
            _contact_record,
            Contact.account_id,
        ),
        Source(
            BILLING_DETAILS,
            BillingProfile,
            BillingProfile.updated_at,
            [*held_by(BillingProfile.account_id), BillingProfile.anonymised_at.is_(None)],
            lambda as_of: {**dict.fromkeys(BILLING_FIELDS), "anonymised_at": as_of},
            _billing_record,
            BillingProfile.account_id,
        ),
        Source(
            INVOICES,
            Invoice,
            Invoice.issued_at,
            [*held_by(Invoice.account_id), Invoice.anonymised_at.is_(None)],
            lambda as_of: {**dict.fromkeys(INVOICE_FIELDS, REDACTED), "anonymised_at": as_of},
            _invoice_record,
            Invoice.account_id,
        ),
    ]


EVERYONE = AccountSubject(frozenset(), frozenset(), frozenset(), frozenset(), everyone=True)


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


# --- export records ------------------------------------------------------------------------


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
