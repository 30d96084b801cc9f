"""Every reference connector does what it declares: the registry names its operations and
categories, and erasing a category changes only the fields it declares, in the declared way."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from connectors.builtin import BUILTIN
from dsr.connector_contract import (
    REDACTED,
    Connector,
    EraseInput,
    EraseRule,
    Operation,
    Scope,
    Strategy,
)
from dsr.models import Identity, IdentityType
from tests.connectors.helpers import NOW, POPULATION, REGISTRY
from tests.connectors.stores import Stores

# Not the subject's data: the log of operations done, restrictions and the suppression list
# (keyed hashes that keep an erased person from being contacted or imported again).
BOOKKEEPING = {"operation_log", "restrictions", "suppressions"}
OWN_TABLES = "dsr_connector_"  # a dataset connector's own: its operation log, restrictions, flags
PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")
Row = dict[str, Any]


def _cases() -> Iterator[Any]:
    for name, factory in BUILTIN.items():
        for category in getattr(factory, "categories", ()):
            yield pytest.param(name, category, id=f"{name}-{category}")


# --- the declarations ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_registry_declares_what_the_connector_serves(name: str) -> None:
    entry = REGISTRY.get(name)
    connector: Any = BUILTIN[name]
    operations = {operation.value for operation in Operation}
    assert sorted(entry.operations) == sorted(a for a in connector.activities if a in operations)
    assert entry.categories == list(connector.categories)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_treatments_name_real_columns_of_declared_categories(name: str, stores: Stores) -> None:
    connector = stores.connectors[name]
    tables = _tables(connector)
    for treatment in connector.treatments:
        assert treatment.category in connector.categories, treatment
        assert treatment.table in tables, treatment
        if treatment.strategy is Strategy.DELETE_ROW:
            assert treatment.column == "*", treatment
        else:
            assert treatment.column in tables[treatment.table].columns, treatment
    undeclared = set(connector.categories) - {t.category for t in connector.treatments}
    assert not undeclared, f"{name}: no treatment declared for {sorted(undeclared)}"


# --- erasure does what is declared -----------------------------------------------------------

# Each (connector, category) case erases that one category for a subject holding it, in a fresh
# copy of the seeded store, and compares every table's rows before and after.


@pytest.mark.parametrize(("name", "category"), list(_cases()))
def test_erasing_a_category_applies_exactly_its_declared_treatments(
    name: str, category: str, stores: Stores
) -> None:
    connector = stores.connectors[name]
    scope = _subject_holding(connector, name, category)
    before = _snapshot(connector)
    connector.erase(EraseInput(scope=scope, rules=[EraseRule(category=category)]))  # type: ignore[attr-defined]
    after = _snapshot(connector)

    declared = {
        (t.table, t.column): t.strategy for t in connector.treatments if t.category == category
    }
    changes = list(_changes(before, after))
    assert changes, f"erasing {category} changed nothing in {name}"
    for change in changes:
        strategy = declared.get((change.table, change.column))
        assert strategy is not None, (
            f"{name}: {change.table}.{change.column} changed but is not declared for {category}"
        )
        assert _applied(strategy, change), f"{name}: {change} is not {strategy.value}"


@dataclass(frozen=True)
class Change:
    table: str
    column: str  # "*": the row is gone
    old: Any
    new: Any


def _changes(
    before: dict[str, dict[Any, Row]], after: dict[str, dict[Any, Row]]
) -> Iterator[Change]:
    for table, rows in before.items():
        added = set(after[table]) - set(rows)
        assert not added, f"erasure added rows to {table}"
        for key, row in rows.items():
            new = after[table].get(key)
            if new is None:
                yield Change(table, "*", row, None)
                continue
            for column, value in row.items():
                if new[column] != value:
                    yield Change(table, column, value, new[column])


def _applied(strategy: Strategy, change: Change) -> bool:
    if strategy is Strategy.DELETE_ROW:
        return change.column == "*"
    if strategy is Strategy.NULL:
        return change.new is None
    if strategy is Strategy.PSEUDONYM:
        return isinstance(change.new, str) and PSEUDONYM.match(change.new) is not None
    if strategy is Strategy.REDACT:
        return change.new == REDACTED
    if strategy is Strategy.TO_DAY:
        return (
            isinstance(change.new, datetime)
            and change.new.date() == change.old.date()
            and change.new.time().isoformat() == "00:00:00"
        )
    return change.old is None and isinstance(change.new, datetime)  # MARK


# --- subjects -----------------------------------------------------------------------------------


def _subject_holding(connector: Connector, name: str, category: str) -> Scope:
    """The first seeded subject the connector finds holding ``category``."""
    entry = REGISTRY.get(name)
    for identities, customer in _candidates(entry.role.value == "end_user"):
        wanted = [i for i in identities if i.type in entry.identity_types]
        if not wanted:
            continue
        scope = Scope(
            request_id=f"DECL-{name}",
            identities=wanted,
            customer_account=customer,
            as_of=NOW,
        )
        discovery = connector.discover(scope)  # type: ignore[attr-defined]
        if any(h.category == category and h.records for h in discovery.holdings):
            return scope
    raise AssertionError(f"no seeded subject of {name} holds {category}")


def _candidates(end_user: bool) -> Iterator[tuple[list[Identity], str | None]]:
    population = POPULATION
    if not end_user:
        for account in population.customers:
            yield [Identity(type=IdentityType.ACCOUNT_ID, value=account)], None
    for person in population.end_users:
        identities = [
            Identity(type=IdentityType.PHONE, value=person.phone),
            Identity(type=IdentityType.EMAIL, value=person.email),
        ]
        identities += [
            Identity(type=IdentityType.CHANNEL_ID, value=value)
            for value in person.channel_ids.values()
        ]
        for customer in person.customers if end_user else (None,):
            yield identities, customer


def _tables(connector: Any) -> dict[str, Any]:
    """The store's tables: its own, and a dataset connector's declared ones (reflected)."""
    found = dict(connector.store.log_model.metadata.tables)
    return found | (connector.reach.tables if hasattr(connector, "dataset") else {})


def _snapshot(connector: Any) -> dict[str, dict[Any, Row]]:
    """Every row of every table but the bookkeeping ones, by primary key, as the ORM sees it."""
    tables: dict[str, dict[Any, Row]] = {}
    with connector.store.reading() as session:
        for table in _tables(connector).values():
            if table.name in BOOKKEEPING or table.name.startswith(OWN_TABLES):
                continue
            key = list(table.primary_key.columns)
            tables[table.name] = {
                tuple(row[c.name] for c in key): dict(row)
                for row in session.execute(select(table)).mappings()
            }
    return tables
