"""A category's holding where retention depends on a country (where a communication ended, the
country of the entity an account contracts with): counted per country, the newest record of
each reported in ``latest_by_country``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from connectors.kit.queries import DatedRows
from dsr.connector_contract import CategoryHolding

# Per country: the records, the earliest and the latest.
CountryCount = tuple[str, int, datetime, datetime]


def counts_by_country(
    session: Session,
    held: DatedRows,
    country: ColumnElement[str],
    joins: Iterable[tuple[Any, ColumnElement[bool]]] = (),
) -> list[CountryCount]:
    """The rows ``held`` selects, counted per ``country`` (through the outer ``joins`` that
    reach it, each a table and its condition)."""
    statement = select(country, func.count(), func.min(held.dated), func.max(held.dated))
    statement = statement.select_from(held.model)
    for table, condition in joins:
        statement = statement.outerjoin(table, condition)
    statement = statement.where(*held.where).group_by(country)
    return [(row[0], row[1], row[2], row[3]) for row in session.execute(statement)]


def holding_by_country(category: str, counts: Iterable[CountryCount]) -> CategoryHolding | None:
    """One category's holding from its counts per country (a country may come more than once,
    from several tables), or None without any record."""
    rows = list(counts)
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


def country_holding(
    session: Session, category: str, part: DatedRows, country: Any
) -> CategoryHolding | None:
    """A category's holding in one table with the countries its records ended in and the
    latest record per country (for erase rules confined to countries)."""
    return holding_by_country(category, counts_by_country(session, part, country))
