"""What every connector test shares: the fixed clock and secret, the connectors under test, and
helpers that read a store's SQLite file independently of its connector."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.builtin import BUILTIN
from connectors.kit.errors import ConnectorInputError
from connectors.seeds.population import EndUser, make_population
from dsr.connector_contract import EraseRule, Scope, SweepInput
from dsr.connector_registry import load_registry
from dsr.models import Identity, IdentityType

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=183)  # about six months
FIVE_YEARS_BEFORE = NOW.replace(year=NOW.year - 5)
SECRET = b"test-secret-not-for-production"
REGISTRY_FILE = Path(__file__).parents[2] / "connectors" / "registry.yaml"
REGISTRY = load_registry(REGISTRY_FILE)
# Every store is seeded from this one population (SMS and customer accounts from the same
# people, through connectors.seeds.demo).
PEOPLE = 80
POPULATION = make_population(people=PEOPLE, customers=6, seed=42)
# The product's connectors: the contract tests are parametrised over these, so a connector
# added to the builtin list is tested (and fails until tests/connectors/subjects.py picks a
# subject for it).
CONNECTORS = list(BUILTIN)
EMAIL, PHONE = IdentityType.EMAIL, IdentityType.PHONE
CHANNEL, ACCOUNT_ID = IdentityType.CHANNEL_ID, IdentityType.ACCOUNT_ID
Row = sqlite3.Row


# --- reading a store's file ---------------------------------------------------------------


def rows(database: Path, sql: str, *params: Any) -> list[Row]:
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(sql, params).fetchall()


def query(database: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(database)) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(sql, params).fetchall()]


def dump(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (the operation log and restrictions too)."""
    tables = rows(database, "SELECT name FROM sqlite_master WHERE type = 'table'")
    return {
        t["name"]: [tuple(r) for r in rows(database, f"SELECT * FROM {t['name']} ORDER BY 1")]
        for t in tables
    }


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def day(text: str) -> datetime:
    return utc(text).replace(hour=0, minute=0, second=0, microsecond=0)


def marks(sql_values: list[Any]) -> str:
    return ",".join("?" * len(sql_values))


def ids(selected: list[Row], column: str = "id") -> str:
    return ",".join(str(r[column]) for r in selected) or "NULL"


def older(selected: list[Row], column: str) -> list[Row]:
    return [r for r in selected if utc(r[column]) < CUTOFF]


def newer(selected: list[Row], column: str) -> list[Row]:
    return [r for r in selected if utc(r[column]) >= CUTOFF]


def by_id(found: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in found}


def changed_ids(
    before: dict[str, dict[int, tuple[Any, ...]]], after: dict[str, dict[int, tuple[Any, ...]]]
) -> dict[str, set[int]]:
    """Per table, the ids of rows changed, removed or added."""
    return {
        table: {
            row_id
            for row_id in found.keys() | after[table].keys()
            if found.get(row_id) != after[table].get(row_id)
        }
        for table, found in before.items()
    }


def explain(engine: Any, statement: Any) -> str:
    sql = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        steps = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
    return "\n".join(step[-1] for step in steps)


def defn_name(fn: Any) -> str:
    return str(fn.__temporal_activity_definition.name)


def store_table(name: str, table: str) -> str:
    """A connector's own table (``operation_log``, ``restrictions``) as its store names it: a
    dataset connector's are prefixed with its name (``connectors/dataset/own.py``)."""
    return f"dsr_connector_{name}_{table}" if hasattr(BUILTIN[name], "dataset") else table


# --- whom a request names -----------------------------------------------------------------


def scope(
    request_id: str,
    *identities: Identity | tuple[IdentityType, str],
    customer: str | None = None,
    as_of: datetime = NOW,
) -> Scope:
    return Scope(
        request_id=request_id,
        identities=[i if isinstance(i, Identity) else Identity(type=i[0], value=i[1])
                    for i in identities],
        customer_account=customer,
        as_of=as_of,
    )


def every_identity(user: EndUser) -> list[Identity]:
    """All the ways a request may name the person (the email in another case on purpose)."""
    return [
        Identity(type=PHONE, value=user.phone),
        Identity(type=EMAIL, value=user.email.upper()),
        *(Identity(type=CHANNEL, value=v) for v in user.channel_ids.values()),
    ]


def phone_only(user: EndUser) -> list[Identity]:
    return [Identity(type=PHONE, value=user.phone)]


@dataclass(frozen=True)
class Subject:
    """A person as one connector's tests name them. End-user data: the customer acting for
    its end user and the other customers holding the same identity. The group's own data
    (customer accounts, marketing): a customer in the scope plays no part."""

    identities: tuple[tuple[IdentityType, str], ...]
    controller: str  # the customer acting for its end user
    others: tuple[str, ...]  # other customers holding records of the same identity

    def scope(self, request_id: str = "REQ-0001", *, customer: bool = True) -> Scope:
        """The controller's instruction about its end user (``customer=False``: no customer
        account named)."""
        return scope(request_id, *self.identities,
                     customer=self.controller if customer else None)

    def adding(self, *identities: tuple[IdentityType, str]) -> Subject:
        return Subject((*self.identities, *identities), self.controller, self.others)

    def value(self, kind: IdentityType) -> str:
        return next(value for k, value in self.identities if k is kind)


# --- discover and sweep -------------------------------------------------------------------


def assert_holding(holding: Any, dates: list[datetime]) -> None:
    assert (holding.records, holding.earliest, holding.latest) == (
        len(dates),
        min(dates),
        max(dates),
    )


def sweep_call(categories: Any, sweep_id: str = "SWEEP-1") -> SweepInput:
    rules = [EraseRule(category=c, before=CUTOFF) for c in categories]
    return SweepInput(sweep_id=sweep_id, as_of=NOW, rules=rules)


def assert_swept_once(connector: Any, database: Path, call: SweepInput, first: Any) -> None:
    """A retry is already done and changes nothing; a new sweep finds nothing left; a rule
    without a cutoff is refused."""
    snapshot = dump(database)
    again = connector.sweep(call.model_copy(update={"as_of": NOW + timedelta(hours=1)}))
    assert again.already_done and not first.already_done
    assert again.anonymised == first.anonymised
    assert dump(database) == snapshot
    fresh = connector.sweep(call.model_copy(update={"sweep_id": "SWEEP-NEW"}))
    assert fresh.anonymised == dict.fromkeys(first.anonymised, 0)
    unbounded = [EraseRule(category=call.rules[0].category)]
    with pytest.raises(ConnectorInputError):
        connector.sweep(SweepInput(sweep_id="SWEEP-ALL", as_of=NOW, rules=unbounded))
