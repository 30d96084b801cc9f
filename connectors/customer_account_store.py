"""The customer account store: its tables, whose rows a subject's are, and where each category
lives (``connectors.customer_account`` is the connector that works on it).

Each account contracts with one affiliate (``contracts``, as described in the Terms); the
country of that entity decides how long the account's financial records must be kept, and
discovery reports it per category in ``countries_ended`` (``UNKNOWN_COUNTRY`` where no
contract is recorded: the orchestrator then applies the longest period of the rule).
"""

from __future__ import annotations

from collections.abc import Sequence
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
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, Session, mapped_column

from connectors.kit.queries import any_of, fields
from connectors.kit.shares import Share
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import Scope, Strategy, treat
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
        any_of(
            Account.account_id.in_(sorted(account_ids)) if account_ids else None,
            func.lower(Account.registered_email).in_(sorted(emails)) if emails else None,
        )
    )


def contacts_where(subject: AccountSubject) -> list[ColumnElement[bool]]:
    """The subject's contacts (``ix_contacts_account_id`` and ``ix_contacts_email``)."""
    if subject.everyone:
        return [Contact.anonymised_at.is_(None)]
    return [
        any_of(
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


def contracting_country(account_id: InstrumentedAttribute[str]) -> ColumnElement[str]:
    """The country of the entity the row's account contracts with, or ``UNKNOWN_COUNTRY``."""
    entity = select(Contract.country).where(Contract.account_id == account_id)
    return func.coalesce(entity.scalar_subquery(), UNKNOWN_COUNTRY)


# --- where each category lives -------------------------------------------------------------


def sources(subject: AccountSubject) -> list[Share]:
    """Each table's share of each category: the subject's rows not yet erased (every
    account's for ``EVERYONE``). Every table's rows name their account in ``account_id``."""
    held = sorted(subject.held)

    def held_by(account_id: InstrumentedAttribute[str]) -> list[ColumnElement[bool]]:
        return [] if subject.everyone else [account_id.in_(held)]

    registered = [*held_by(Account.account_id), Account.registered_email.is_not(None)]
    billing = [*held_by(BillingProfile.account_id), BillingProfile.anonymised_at.is_(None)]
    invoices = [*held_by(Invoice.account_id), Invoice.anonymised_at.is_(None)]
    return [
        Share(Account.created_at, registered, ACCOUNT_PROFILE, _account),
        Share(Contact.created_at, contacts_where(subject), ACCOUNT_PROFILE, _contact),
        Share(BillingProfile.updated_at, billing, BILLING_DETAILS, _billing),
        Share(Invoice.issued_at, invoices, INVOICES, _invoice),
    ]


EVERYONE = AccountSubject(frozenset(), frozenset(), frozenset(), frozenset(), everyone=True)
MARKED = ("anonymised_at", Strategy.MARK)  # the row marked anonymised
TREATMENTS = (
    *treat(ACCOUNT_PROFILE, "accounts", [("registered_email", Strategy.NULL)]),
    *treat(ACCOUNT_PROFILE, "contacts", [*((c, Strategy.NULL) for c in CONTACT_FIELDS), MARKED]),
    *treat(
        BILLING_DETAILS, "billing_profiles", [*((c, Strategy.NULL) for c in BILLING_FIELDS), MARKED]
    ),
    *treat(INVOICES, "invoices", [*((c, Strategy.REDACT) for c in INVOICE_FIELDS), MARKED]),
)


# --- export records ------------------------------------------------------------------------


def _account(account: Account) -> dict[str, Any]:
    kept = ("account_id", "company_name", "registered_email", "created_at", "status")
    return {"record": "account", **fields(account, *kept, "processing_restricted")}


def _contact(contact: Contact) -> dict[str, Any]:
    kept = fields(contact, "account_id", *CONTACT_FIELDS, "created_at")
    return {"record": "contact", "contact_id": contact.id, **kept}


def _billing(profile: BillingProfile) -> dict[str, Any]:
    kept = fields(profile, "account_id", *BILLING_FIELDS, "updated_at")
    return {"record": "billing_profile", **kept}


def _invoice(invoice: Invoice) -> dict[str, Any]:
    kept = fields(invoice, "account_id", "issued_at", "amount_cents", "currency", *INVOICE_FIELDS)
    return {"record": "invoice", "invoice_id": invoice.id, **kept}
