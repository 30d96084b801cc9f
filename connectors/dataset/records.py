"""What a dataset holds of one subject, per category: the holding discovery reports and the
records an access export writes (one per row and category, with the declared columns)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.dataset.reach import Reach, Rows, chunked
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from dsr.connector_contract import CategoryHolding


def holding(reach: Reach, rows: Rows, category: str) -> CategoryHolding | None:
    """The subject's records of one category across the tables holding it: how many, the
    earliest and latest date and, where tables keep a country, the newest per country."""
    found = [(name, row) for name, table_rows in rows.items()
             if category in reach.dataset.tables[name].categories for row in table_rows]
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


def export_chunks(reach: Reach, session: Session, rows: Rows) -> Iterator[list[dict[str, Any]]]:
    """The subject's records, a chunk of rows at a time, parents first: for each row and each
    category its table holds, ``{"category", "table", "record"}`` with the row's key, its
    references, date and country, its identities without a category of their own and the
    columns of the category. Undeclared columns are not exported (nor the customer column)."""
    for name in reach.order:
        spec, table = reach.dataset.tables[name], reach.table(name)
        if not rows.get(name) or not spec.categories:
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
        for chunk in chunked(sorted(row.key for row in rows[name]), EXPORT_CHUNK_ROWS):
            statement = (select(*(table.c[c] for c in wanted))
                         .where(reach.key_in(name, chunk))
                         .order_by(*table.primary_key.columns))
            records = []
            for values in session.execute(statement):
                row = {column: jsonable(value) for column, value in zip(wanted, values,
                                                                         strict=True)}
                records += [
                    {"category": category, "table": name,
                     "record": {c: row[c] for c in [*common, *columns]}}
                    for category, columns in per_category.items()]
            yield records


def jsonable(value: Any) -> Any:
    """A stored value as JSON can carry it."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value
