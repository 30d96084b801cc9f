"""What a dataset holds of one subject, per category: the holding discovery reports and the
records an access export writes (one per row and category, with the declared columns)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.dataset.reach import Reach, Rows, chunked
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from dsr.connector_contract import CategoryHolding, Scope


def holding(reach: Reach, rows: Rows, category: str) -> CategoryHolding | None:
    """The subject's records of one category across the tables holding it: how many, the
    earliest and latest date and, where tables keep a country, the newest per country."""
    found = [(name, row) for name, table_rows in rows.items()
             if category in reach.dataset.tables[name].categories for row in table_rows
             if category not in reach.dataset.tables[name].held_if_set or category in row.held]
    if not found:
        return None
    dates = [row.date for _, row in found if row.date is not None]
    by_country: dict[str, datetime] = {}
    for _, row in found:
        if row.country is not None and row.date is not None:
            newest = by_country.get(row.country)
            by_country[row.country] = row.date if newest is None else max(newest, row.date)
    countries = sorted({row.country for _, row in found if row.country is not None})
    return CategoryHolding(
        category=category, records=len(found), earliest=min(dates, default=None),
        latest=max(dates, default=None), countries_ended=countries,
        latest_by_country=by_country)


def export_chunks(reach: Reach, session: Session, rows: Rows,
                  scope: Scope) -> Iterator[list[dict[str, Any]]]:
    """The subject's records, a chunk of rows at a time, parents first: for each row and each
    category its table holds, ``{"category", "table", "record"}`` with the row's key, its
    references, date and country, its identities without a category of their own and the
    columns of the category. Undeclared columns are not exported (nor the customer column).

    ``rows`` holds the subject's rows of the tables other tables reference
    (``subject_rows(leaves=False)``); the rows of the others are read as they are written, by
    the lookups that find them (``Reach.sources``), so that an export of a million orders
    holds one chunk of them at a time."""
    for name in reach.order:
        spec, table = reach.dataset.tables[name], reach.table(name)
        if not spec.categories:
            continue
        keys = [column.name for column in table.primary_key.columns]
        common = list(dict.fromkeys([
            *keys, *spec.references, *(c for c in (spec.date_column, spec.country_column) if c),
            *(c for c, declared in spec.columns.items() if declared.identity and not
              declared.category)]))
        per_category = {category: [c for c, declared in spec.columns.items()
                                   if declared.category == category and c not in common]
                        for category in spec.categories}
        wanted = list(dict.fromkeys([*common, *(c for cs in per_category.values() for c in cs)]))
        for chunk in _selected(reach, session, name, rows, scope, wanted):
            records = []
            for values in chunk:
                row = {column: jsonable(value) for column, value in zip(wanted, values,
                                                                         strict=True)}
                records += [
                    {"category": category, "table": name,
                     "record": {c: row[c] for c in [*common, *columns]}}
                    for category, columns in per_category.items()
                    if category not in spec.held_if_set or any(
                        row[c] is not None for c in _of(spec.columns, category))]
            yield records


def _of(columns: dict[str, Any], category: str) -> list[str]:
    """The declared columns of one category."""
    return [name for name, declared in columns.items() if declared.category == category]


def _selected(reach: Reach, session: Session, name: str, rows: Rows, scope: Scope,
              wanted: list[str]) -> Iterator[Sequence[Any]]:
    """The subject's rows of table ``name``, ``wanted`` columns (its key first), in chunks of
    ``EXPORT_CHUNK_ROWS``: by key when ``rows`` holds them, else streamed from each lookup
    that finds them, a row found by an earlier lookup left out (only a table found by the
    lookups of more than one column keeps the keys it has written)."""
    table = reach.table(name)
    order = list(table.primary_key.columns)
    date = reach.dataset.tables[name].date_column
    dated = reach.dated(name)
    columns = [dated if column == date and dated is not None else table.c[column]
               for column in wanted]
    if name in rows:
        for chunk in chunked(sorted(row.key for row in rows[name]), EXPORT_CHUNK_ROWS):
            yield session.execute(select(*columns).where(reach.key_in(name, chunk))
                                  .order_by(*order)).all()
        return
    lookups = reach.sources(name, scope, rows)
    several = len({lookup.column for lookup in lookups}) > 1
    written: set[tuple[Any, ...]] | None = set() if several else None
    for lookup in lookups:
        statement = (select(*columns).where(*lookup.where).order_by(*order)
                     .execution_options(yield_per=EXPORT_CHUNK_ROWS))
        for partition in session.execute(statement).partitions():
            if written is not None:
                partition = [row for row in partition if tuple(row[:len(order)]) not in written]
                written.update(tuple(row[:len(order)]) for row in partition)
            if partition:
                yield partition


def jsonable(value: Any) -> Any:
    """A stored value as JSON can carry it."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value
