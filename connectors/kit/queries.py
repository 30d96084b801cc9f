"""The queries most store connectors make: the rows a condition selects counted, a category's
holding (its records and their dates, per country where the connector keeps one), a
statement's rows as export records a partition at a time, and updates of columns no treatment
declares (an objection's mark, a withdrawal, an end of subscription)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, TypeVarTuple, cast

from sqlalchemy import ColumnElement, CursorResult, Select, func, select, update
from sqlalchemy.orm import Session

from connectors.kit.exports import EXPORT_CHUNK_ROWS
from dsr.connector_contract import CategoryHolding

Item = TypeVar("Item")
Columns = TypeVarTuple("Columns")
Record = dict[str, Any]


class DatedRows(Protocol):
    """Rows of one table (or join) that hold a category, and the column dating them."""

    @property
    def model(self) -> Any: ...
    @property
    def dated(self) -> Any: ...
    @property
    def where(self) -> Sequence[ColumnElement[bool]]: ...


@dataclass(frozen=True)
class Rows:
    """One table's share of a category: the rows still holding it, and their date."""

    model: Any
    dated: Any
    where: Sequence[ColumnElement[bool]]


def count(session: Session, model: Any, where: Iterable[ColumnElement[bool]]) -> int:
    """The number of rows of ``model`` that ``where`` selects."""
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def holding(session: Session, category: str, parts: Iterable[DatedRows]) -> CategoryHolding | None:
    """A category's holding over its parts: their records, the earliest and latest date; None
    when no part holds a record."""
    records, earliest, latest = 0, None, None
    for part in parts:
        found, first, last = session.execute(
            select(func.count(), func.min(part.dated), func.max(part.dated))
            .select_from(part.model)
            .where(*part.where)
        ).one()
        if found:
            records += found
            earliest = first if earliest is None else min(earliest, first)
            latest = last if latest is None else max(latest, last)
    if not records:
        return None
    return CategoryHolding(category=category, records=records, earliest=earliest, latest=latest)


def country_holding(
    session: Session, category: str, part: DatedRows, country: Any
) -> CategoryHolding | None:
    """A category's holding with the countries its records ended in and the latest record
    per country (for erase rules confined to countries)."""
    rows = session.execute(
        select(country, func.count(), func.min(part.dated), func.max(part.dated))
        .select_from(part.model)
        .where(*part.where)
        .group_by(country)
    ).all()
    if not rows:
        return None
    return CategoryHolding(
        category=category,
        records=sum(row[1] for row in rows),
        earliest=min(row[2] for row in rows),
        latest=max(row[3] for row in rows),
        countries_ended=sorted(row[0] for row in rows),
        latest_by_country={row[0]: row[3] for row in rows},
    )


def export_partitions(
    session: Session,
    statement: Select[*Columns],
    records: Callable[[Any], Iterable[Record]],
    *,
    rows: bool = False,
) -> Iterator[list[Record]]:
    """The export records of the statement's entities (or, with ``rows``, of its rows), one
    chunk per partition of ``EXPORT_CHUNK_ROWS``: a subject's records never all in memory."""
    statement = statement.execution_options(yield_per=EXPORT_CHUNK_ROWS)
    result = session.execute(statement) if rows else session.scalars(statement)
    for partition in result.partitions():
        yield [record for row in partition for record in records(row)]


def fields(row: Any, *names: str | tuple[str, str]) -> Record:
    """A row as an export record: the attributes named, in order; a pair ``(field,
    attribute)`` exports an attribute under another name."""
    pairs = [name if isinstance(name, tuple) else (name, name) for name in names]
    return {field: getattr(row, attribute) for field, attribute in pairs}


def update_rows(
    session: Session, model: Any, where: Sequence[ColumnElement[bool]], values: dict[str, Any]
) -> int:
    """Set columns no treatment declares in the rows ``where`` selects (one statement); the
    number of rows. Erasure writes declared columns through ``Treatments`` only."""
    statement = (
        update(model).where(*where).values(values).execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def batched(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    """``items`` in consecutive slices of ``size`` (the last one shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
