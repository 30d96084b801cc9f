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

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar, cast

from pydantic import BaseModel
from sqlalchemy import ColumnElement, CursorResult, false, func, inspect, select, update
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
    Source,
    contracting_country,
    resolve_identities,
    resolve_subject,
    sources,
)
from connectors.customer_account_store import accounts_query as accounts_query
from connectors.kit.connector import StoreConnector
from connectors.kit.cutoffs import country_conditions, id_chunks
from connectors.kit.errors import ConnectorInputError
from connectors.kit.exports import EXPORT_CHUNK_ROWS, export_once
from connectors.kit.store import operation_key
from dsr.connector_contract import (
    AccessInput,
    AccessResult,
    CategoryHolding,
    Discovery,
    EraseInput,
    EraseResult,
    EraseRule,
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
from dsr.models import EMAIL, PHONE, Correction, Identity

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
    sweeps_countries: ClassVar[bool] = True  # rules may be confined to contracting countries
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
        _check_rules(call.rules)
        key = operation_key(self.secret, Operation.ERASE, call)
        return self.store.once(
            key, EraseResult, lambda session: self._erase(session, call.scope, call.rules)
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

    def _erase(self, session: Session, scope: Scope, rules: list[EraseRule]) -> EraseResult:
        result = EraseResult(connector=self.name)
        subject = resolve_subject(session, scope)
        if subject.empty:
            return result
        for source in sources(subject):
            reached = _reached(rules, source)
            if reached is None:
                continue
            statement = (
                update(source.model)
                .where(*source.where, reached)
                .values(source.erasure(scope.as_of))
                .execution_options(synchronize_session=False)
            )
            erased = cast(CursorResult[Any], session.execute(statement)).rowcount
            result.erased[source.category] = result.erased.get(source.category, 0) + erased
        for category in sorted({rule.category for rule in rules}):
            holding = _holding(session, subject, category)
            result.retained[category] = holding.records if holding else 0
        return result

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """Anonymise every account's records past their retention, as ``erase`` would (a rule
        confined to countries: the accounts contracting there)."""
        result = SweepResult(connector=self.name, anonymised=dict.fromkeys(cutoffs, 0))
        for source in sources(EVERYONE):
            reached = _reached(call.rules, source)
            if reached is None:
                continue
            key = inspect(source.model).primary_key[0]
            for ids in id_chunks(session, key, [*source.where, reached]):
                statement = (
                    update(source.model)
                    .where(key.in_(ids))
                    .values(source.erasure(call.as_of))
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
    """The subject's records of one category, the countries of the entities their accounts
    contract with, and the newest record per country."""
    rows: list[tuple[str, int, datetime, datetime]] = []
    for source in sources(subject):
        if source.category == category:
            rows += _counts_by_country(session, source)
    if not rows:
        return None
    newest: dict[str, datetime] = {}
    for country, _, _, last in rows:
        newest[country] = max(last, newest.get(country, last))
    return CategoryHolding(
        category=category,
        records=sum(row[1] for row in rows),
        earliest=min(row[2] for row in rows),
        latest=max(newest.values()),
        countries_ended=sorted(newest),
        latest_by_country=newest,
    )


def _counts_by_country(
    session: Session, source: Source
) -> list[tuple[str, int, datetime, datetime]]:
    country = func.coalesce(Contract.country, UNKNOWN_COUNTRY)
    statement = (
        select(country, func.count(), func.min(source.dated), func.max(source.dated))
        .select_from(source.model)
        .outerjoin(Contract, Contract.account_id == source.account)
        .where(*source.where)
        .group_by(country)
    )
    return [(row[0], row[1], row[2], row[3]) for row in session.execute(statement)]


def _check_rules(rules: list[EraseRule]) -> None:
    """Refuse an unknown category or a cutoff without a timezone before anything is looked up
    (the conditions of one table, built for nothing else)."""
    country = contracting_country(Invoice.account_id)
    country_conditions("customer_account", rules, CATEGORIES, Invoice.issued_at, country)


def _reached(rules: list[EraseRule], source: Source) -> ColumnElement[bool] | None:
    """The rows of ``source`` its category's rules reach: dated before the cutoff and, for a
    rule confined to countries, of accounts contracting with an entity there. Every rule is
    checked, whatever its category."""
    reached = country_conditions(
        "customer_account", rules, CATEGORIES, source.dated, source.country
    )
    return reached.get(source.category)


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
