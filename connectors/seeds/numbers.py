"""The customers' own phone numbers, from Ofcom's drama ranges (the caller ids of the Voice
demo too), and the demo data for the Numbers store."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from connectors.numbers import NumbersBase, NumbersConnector, PhoneNumber
from connectors.seeds.population import Population

# Ofcom's drama ranges: 0113 496 0000-0999 (Leeds) for local numbers, 0161 496 0000-0999
# (Manchester) for programmable numbers; 40 of each per customer.
NUMBERS_PER_CUSTOMER = 40


def local_number(customer_index: int, number: int) -> str:
    """The customer's ``number``-th local number (its caller id on voice calls)."""
    return f"+44113496{_slot(customer_index, number):04d}"


def programmable_number(customer_index: int, number: int) -> str:
    return f"+44161496{_slot(customer_index, number):04d}"


def short_code(customer_index: int, number: int) -> str:
    return f"9{_slot(customer_index, number):04d}"


def _slot(customer_index: int, number: int) -> int:
    if not 0 <= number < NUMBERS_PER_CUSTOMER or not 0 <= customer_index < 25:
        raise ValueError("outside the fictional number range")
    return customer_index * NUMBERS_PER_CUSTOMER + number


HISTORY = timedelta(days=425)  # about 14 months
MAKERS = {"local": local_number, "short_code": short_code, "programmable": programmable_number}


def seed(
    connector: NumbersConnector, population: Population, *, now: datetime, seed: int = 42
) -> int:
    """Clear the store and give every customer of ``population`` its numbers, provisioned over
    the ~14 months before ``now``; returns the rows written."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)
    now = now.astimezone(UTC)
    rows = [
        _number(rng, customer, index, kind, number, now)
        for index, customer in enumerate(population.customers)
        for kind, count in (("local", 3), ("short_code", 1), ("programmable", rng.randint(0, 4)))
        for number in range(count)
    ]
    rows.sort(key=lambda row: row["provisioned_at"])
    with connector.store.writing() as session:
        for table in reversed(NumbersBase.metadata.sorted_tables):
            session.execute(table.delete())
        if rows:
            session.execute(insert(PhoneNumber), rows)
    return len(rows)


def _number(
    rng: random.Random, customer: str, index: int, kind: str, number: int, now: datetime
) -> dict[str, Any]:
    return {
        "customer_account": customer,
        "number": MAKERS[kind](index, number),
        "kind": kind,
        "country": "GB",
        "provisioned_at": now - timedelta(seconds=rng.uniform(0, HISTORY.total_seconds())),
    }
