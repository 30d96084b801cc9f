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
redacted. How long the books must be kept depends on the country of the affiliate the account
contracts with (its ``contracts`` row): discovery reports that country per category in
``countries_ended``, and an erase or sweep rule confined to countries reaches only the records
of accounts contracting there.

Restriction is a flag on the account (``processing_restricted``), set and lifted through the
account holder; it stays on the account when its registered address is rectified.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any, ClassVar

from pydantic import BaseModel
from sqlalchemy import ColumnElement, false, func, select
from sqlalchemy.orm import Session

from connectors.customer_account_store import (
    CATEGORIES,
    EVERYONE,
    TREATMENTS,
    UNKNOWN_COUNTRY,
    Account,
    AccountBase,
    AccountOperationLog,
    AccountSubject,
    BillingProfile,
    Contact,
    Contract,
    Invoice,
    contracting_country,
    resolve_identities,
    resolve_subject,
    sources,
)
from connectors.customer_account_store import accounts_query as accounts_query
from connectors.kit.connector import SubjectConnector
from connectors.kit.countries import counts_by_country, holding_by_country
from connectors.kit.cutoffs import country_conditions
from connectors.kit.errors import ConnectorInputError
from connectors.kit.queries import update_rows
from connectors.kit.shares import Share, erase_shares, export_shares, sweep_shares
from dsr.connector_contract import (
    CategoryHolding,
    Discovery,
    EraseResult,
    EraseRule,
    FlagInput,
    Scope,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.models import EMAIL, PHONE, Identity

CONTACT_CORRECTIONS = ("name", "email", "phone", "job_title")
BILLING_CORRECTIONS = ("company_address", "billing_name")
VALID_VALUE = {"email": EMAIL, "phone": PHONE}


class RegisteredContactInput(BaseModel):
    account_id: str


class RegisteredContact(BaseModel):
    """The account's registered privacy/admin address: where the orchestrator sends the code
    that confirms a customer's controller instruction."""

    account_id: str
    email: str | None = None
    company_name: str | None = None


# --- the connector -------------------------------------------------------------------------


class CustomerAccountConnector(SubjectConnector[Scope, list[EraseRule]]):
    """Its subject is found inside each operation's transaction (the accounts an identity
    holds): the subject the kit hands each operation is the scope, resolved there."""

    name: ClassVar[str] = "customer_account"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = (
        "discover", "access", "erase", "rectify", "restrict", "registered_contact", "sweep"
    )

    schema = AccountBase
    sweeps_countries: ClassVar[bool] = True  # rules may be confined to contracting countries
    operation_log = AccountOperationLog
    correctable = (*CONTACT_CORRECTIONS, *BILLING_CORRECTIONS)

    def subject(self, scope: Scope) -> Scope:
        return scope

    def discover(self, scope: Scope) -> Discovery:
        """Discovery from one read, the subject resolved once."""
        with self.store.reading() as session:
            found = resolve_subject(session, scope)
            held = [] if found.empty else [_holding(session, found, c) for c in CATEGORIES]
        return Discovery(connector=self.name, holdings=[h for h in held if h is not None])

    def export_chunks(self, session: Session, subject: Scope) -> Iterator[list[dict[str, Any]]]:
        found = resolve_subject(session, subject)
        return export_shares(session, [] if found.empty else sources(found))

    def reach(self, rules: list[EraseRule]) -> list[EraseRule]:
        """The rules, checked before anything is looked up: an unknown category or a cutoff
        without a timezone is refused (the conditions of one table, built for nothing else)."""
        country = contracting_country(Invoice.account_id)
        country_conditions(self.name, rules, CATEGORIES, Invoice.issued_at, country)
        return rules

    def corrected(self, field: str, value: str) -> str:
        """A corrected value, checked where a format exists; an error names the field."""
        pattern = VALID_VALUE.get(field)
        if pattern is not None and not pattern.fullmatch(value):
            raise ConnectorInputError(f"corrected {field} is malformed")
        return value

    def is_restricted(self, identity: Identity) -> bool:
        """Whether processing is restricted for an account this identity holds (the flag is on
        the account, so an account whose registered address is rectified keeps it)."""
        with self.store.reading() as session:
            held = sorted(resolve_identities(session, [identity]).held)
            restricted = [Account.account_id.in_(held), Account.processing_restricted.is_(True)]
            statement = select(Account.account_id).where(*restricted).limit(1)
            return session.scalars(statement).first() is not None

    def registered_contact(self, call: RegisteredContactInput) -> RegisteredContact:
        account = select(Account.registered_email, Account.company_name).where(
            Account.account_id == call.account_id
        )
        with self.store.reading() as session:
            row = session.execute(account).first()
        if row is None:
            return RegisteredContact(account_id=call.account_id)
        return RegisteredContact(account_id=call.account_id, email=row[0], company_name=row[1])

    # --- inside the operation's transaction ------------------------------------------------

    def erase_now(
        self, session: Session, subject: Scope, reach: list[EraseRule], scope: Scope
    ) -> EraseResult:
        """Each table's share of the rules' categories, erased as declared."""
        found = resolve_subject(session, scope)
        if found.empty:
            return EraseResult(connector=self.name)
        erased = erase_shares(
            session, self.treat, sources(found), partial(_reached, reach), scope.as_of
        )
        retained = {
            category: holding.records if (holding := _holding(session, found, category)) else 0
            for category in sorted({rule.category for rule in reach})
        }
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """Anonymise every account's records past their retention, as ``erase`` would (a rule
        confined to countries: the accounts contracting there), a chunk of rows at a time."""
        swept = sweep_shares(
            session, self.treat, sources(EVERYONE), partial(_reached, call.rules), call.as_of
        )
        return SweepResult(connector=self.name, anonymised={**dict.fromkeys(cutoffs, 0), **swept})

    def rectify_now(
        self, session: Session, subject: Scope, values: dict[str, str], scope: Scope
    ) -> dict[str, int]:
        """Correct the subject's own contacts (and the registered address they hold) and the
        billing details of the accounts they hold; the rows per field."""
        found = resolve_subject(session, scope)
        if found.empty:
            return {}
        held = sorted(found.held)
        billing = [BillingProfile.account_id.in_(held), BillingProfile.anonymised_at.is_(None)]
        updated: dict[str, int] = {}
        for model, fields, where in (
            (Contact, CONTACT_CORRECTIONS, _own_contacts(found)),
            (BillingProfile, BILLING_CORRECTIONS, billing),
        ):
            corrected = {f: v for f, v in values.items() if f in fields}
            if corrected:
                changed = update_rows(session, model, where, corrected)
                updated.update(dict.fromkeys(corrected, changed))
        if "email" in values:
            own = func.lower(Account.registered_email).in_(sorted(found.own_emails))
            registered = [Account.account_id.in_(held), own]
            email = {"registered_email": values["email"]}
            updated["email"] += update_rows(session, Account, registered, email)
        return updated

    def restrict_now(self, session: Session, subject: Scope, call: FlagInput) -> int:
        """The flag set (or lifted) on the accounts the subject holds; their number."""
        held = sorted(resolve_subject(session, call.scope).held)
        if held:
            restricted = {"processing_restricted": not call.lift}
            update_rows(session, Account, [Account.account_id.in_(held)], restricted)
        return len(held)


# --- helpers -------------------------------------------------------------------------------


def _holding(session: Session, subject: AccountSubject, category: str) -> CategoryHolding | None:
    """The subject's records of one category, the countries of the entities their accounts
    contract with, and the newest record per country."""
    country = func.coalesce(Contract.country, UNKNOWN_COUNTRY)
    return holding_by_country(category, [
        count
        for source in sources(subject) if source.category == category
        for count in counts_by_country(
            session, source, country, [(Contract, Contract.account_id == source.model.account_id)]
        )
    ])


def _reached(rules: list[EraseRule], source: Share) -> ColumnElement[bool] | None:
    """The rows of ``source`` its category's rules reach: dated before the cutoff and, for a
    rule confined to countries, of accounts contracting with an entity there. Every rule is
    checked, whatever its category."""
    country = contracting_country(source.model.account_id)
    reached = country_conditions("customer_account", rules, CATEGORIES, source.dated, country)
    return reached.get(source.category)


def _own_contacts(subject: AccountSubject) -> list[ColumnElement[bool]]:
    """The subject's own contacts: those holding its addresses."""
    own = sorted(subject.own_emails)
    if not own:
        return [false()]
    return [func.lower(Contact.email).in_(own), Contact.anonymised_at.is_(None)]
