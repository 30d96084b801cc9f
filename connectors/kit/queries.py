"""The queries most store connectors make: where a category is held (``Held``: its rows, their
date, their holding and count), a category's holding over several tables, a statement's rows
as export records a partition at a time, and updates of columns no treatment declares (a
correction, an objection's mark, the end of a subscription: erasure goes through
``Treatments``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, TypeVarTuple, cast

from sqlalchemy import ColumnElement, CursorResult, Select, false, func, or_, select, update
from sqlalchemy.orm import Session

from connectors.kit.exports import EXPORT_CHUNK_ROWS
from dsr.connector_contract import CategoryHolding

Item = TypeVar("Item")
Columns = TypeVarTuple("Columns")
Record = dict[str, Any]
Where = Sequence[ColumnElement[bool]]


class DatedRows(Protocol):
    """Rows of one table (or join) that hold a category, and the column dating them."""

    @property
    def model(self) -> Any: ...
    @property
    def dated(self) -> Any: ...
    @property
    def where(self) -> Where: ...


@dataclass(frozen=True)
class Held:
    """Where a subject's records of one category are: their date and the conditions selecting
    the rows still holding it, in the date's table or in ``joined`` (a join, say)."""

    dated: Any
    where: Sequence[ColumnElement[bool]]
    joined: Any = field(default=None, kw_only=True)

    @property
    def model(self) -> Any:
        return self.joined if self.joined is not None else self.dated.class_

    @property
    def table(self) -> str:
        return str(self.model.__tablename__)

    def before(self, cutoff: datetime | None) -> list[ColumnElement[bool]]:
        """The conditions of those dated before ``cutoff`` (all of them without)."""
        return [*self.where] if cutoff is None else [*self.where, self.dated < cutoff]

    def holding(self, session: Session, category: str) -> CategoryHolding | None:
        return holding(session, category, [self])

    def count(self, session: Session) -> int:
        return count_rows(session, self.model, self.where)


def count_rows(session: Session, model: Any, where: Iterable[ColumnElement[bool]]) -> int:
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


def changed(session: Session, statement: Any) -> int:
    """Run an update (or delete); the number of rows it matched."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def update_rows(session: Session, model: Any, where: Where, values: dict[str, Any]) -> int:
    """Set columns no treatment declares in the rows ``where`` selects (one statement); the
    number of rows. Erasure writes declared columns through ``Treatments`` only."""
    statement = (
        update(model).where(*where).values(values).execution_options(synchronize_session=False)
    )
    return changed(session, statement)


def any_of(*conditions: ColumnElement[bool] | None) -> ColumnElement[bool]:
    """Any of the conditions given (None: not given); false without any."""
    present = [condition for condition in conditions if condition is not None]
    return or_(*present) if present else false()


def batched(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    """``items`` in consecutive slices of ``size`` (the last one shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
