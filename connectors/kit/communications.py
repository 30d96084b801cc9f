"""A connector of communications with end users' phone numbers (messages, calls), one row each
in one table, held for the customers that sent or received them (``connectors.sms``,
``connectors.voice``).

The customer is the controller and the group its processor: a subject is one customer's end
user by phone number, never looked up across customers but to ``locate`` the customers holding
a number. Rules reach rows by their date and, where confined, by the country the communication
ended in. Erasing a category treats its own columns where its rules, or a link category's,
reach; erasing a link category then cuts the row loose from the person (``link_categories``),
after which the row is no one's (``anonymised_at``). Each step is the kit's ``Treatments``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import ColumnElement, Select, select, true
from sqlalchemy.orm import Session

from connectors.kit.connector import PROCESSOR_ACTIVITIES, SubjectConnector, sweep_scope
from connectors.kit.countries import country_holding
from connectors.kit.cutoffs import country_conditions
from connectors.kit.identities import customer_identity_values, identities_of, identity_values
from connectors.kit.queries import Held, count_rows
from connectors.kit.reach import Reached, either, in_chunks
from connectors.kit.restrictions import is_restricted
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    EraseRule,
    FlagInput,
    Scope,
    SweepInput,
    SweepResult,
)
from dsr.models import Identity, IdentityType

Where = list[ColumnElement[bool]]  # the subject's rows (or a chunk of a sweep)


def phone_where(model: Any, customer_account: str, phones: Iterable[str]) -> Where:
    """One customer's rows of these numbers not yet anonymised (served by the index on
    customer, number and date)."""
    return [
        model.customer_account == customer_account,
        model.end_user_phone.in_(list(phones)),
        model.anonymised_at.is_(None),
    ]


def phone_holders(model: Any, scope: Scope) -> Select[str]:
    """The customers holding rows of these numbers, across customers (served by the index on
    the number): an end user wrote to us directly, and each is a controller to refer to."""
    phones = identity_values(scope.identities, IdentityType.PHONE)
    return (
        select(model.customer_account)
        .where(model.end_user_phone.in_(phones))
        .distinct()
        .order_by(model.customer_account)
    )


class CommunicationsConnector(SubjectConnector[Where, Reached]):
    """The operations over one table of communications; a connector names the table's mapped
    class (with ``customer_account``, ``end_user_phone``, ``country_ended``, ``anonymised_at``
    and an ``id``), the name of its date column and its link categories, says which rows
    still hold a category (``holds``), and exports."""

    activities: ClassVar[tuple[str, ...]] = PROCESSOR_ACTIVITIES
    sweeps_countries = True
    marks_treated = True
    communication: ClassVar[Any]  # the mapped class of the table
    date_column: ClassVar[str]  # the name of its date column
    link_categories: ClassVar[frozenset[str]]  # erasing one cuts the row loose

    def holds(self, category: str) -> ColumnElement[bool]:
        """Whether a row (not anonymised) still holds data of ``category``: every row by
        default."""
        return true()

    def clear(self, session: Session, category: str, reached: Where, as_of: datetime) -> int:
        """Erase a category's own columns from the ``reached`` rows that hold it."""
        where = [*reached, self.holds(category)]
        return self.treat.apply(session, self.table, [category], where, as_of)

    @property
    def dated(self) -> Any:
        return getattr(self.communication, self.date_column)

    @property
    def table(self) -> str:
        return str(self.communication.__tablename__)

    # --- hooks of the subject connector -------------------------------------------------

    def subject(self, scope: Scope) -> Where | None:
        phones = customer_identity_values(scope, IdentityType.PHONE)
        if not phones or scope.customer_account is None:
            return None
        return phone_where(self.communication, scope.customer_account, phones)

    def holders(self, scope: Scope) -> Select[str]:
        return phone_holders(self.communication, scope)

    def holding(self, session: Session, subject: Where, category: str) -> CategoryHolding | None:
        part = Held(self.dated, [*subject, self.holds(category)])
        return country_holding(session, category, part, self.communication.country_ended)

    def reach(self, rules: list[EraseRule]) -> Reached:
        """Per category, the rows its rules reach (by date, and by country where confined)."""
        return country_conditions(self.name, rules, self.categories, self.dated,
                                  self.communication.country_ended)

    def is_restricted(self, customer_account: str, phone: str) -> bool:
        """Whether processing of this end user's records is restricted for this customer."""
        identity = Identity(type=IdentityType.PHONE, value=phone)
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- inside the operation's transaction ----------------------------------------------

    def erase_now(self, session: Session, where: Where, reached: Reached,
                  scope: Scope) -> EraseResult:
        """Each category as declared: its own columns where its rules or a link category's
        reach, then the link."""
        erased: dict[str, int] = {}
        for category in (c for c in self.categories if c not in self.link_categories):
            condition = either(reached, self.link_categories | {category})
            cleared = 0 if condition is None else self.clear(
                session, category, [*where, condition], scope.as_of)
            if category in reached or cleared:
                erased[category] = cleared
        link = either(reached, self.link_categories)
        if link is not None:
            links = sorted(self.link_categories)
            unlinked = self.treat.apply(session, self.table, links, [*where, link], scope.as_of)
            erased.update(dict.fromkeys(links, unlinked))
        retained = {category: self.count(session, where, category) for category in reached}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(self, session: Session, call: SweepInput,
                  cutoffs: dict[str, datetime]) -> SweepResult:
        """Anonymise every customer's rows past their retention, as ``erase`` would, a chunk of
        ids at a time."""
        reached, scope = self.reach(call.rules), sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        if cutoffs:
            live = self.communication.anonymised_at.is_(None)
            pending = [live, self.dated < max(cutoffs.values())]

            def erase(chunk: ColumnElement[bool]) -> dict[str, int]:
                return self.erase_now(session, [chunk, live], reached, scope).erased

            in_chunks(session, self.communication.id, pending, erase, anonymised)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def restrict_now(self, session: Session, where: Where, call: FlagInput) -> int:
        customer_account = cast(str, call.scope.customer_account)
        phones = customer_identity_values(call.scope, IdentityType.PHONE)
        self.restrictions.place_or_lift(session, customer_account, call,
                                        identities_of(IdentityType.PHONE, phones))
        return count_rows(session, self.communication, where)

    def count(self, session: Session, where: Where, category: str) -> int:
        return count_rows(session, self.communication, [*where, self.holds(category)])
