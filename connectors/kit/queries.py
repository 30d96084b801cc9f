"""The queries every store connector repeats: where a category is held (``Held``: its
holding, its count, its rows before a cutoff), an update of rows (for rectification and
restriction: erasure goes through ``Treatments``), an export in partitions, the sweep over
chunks of ids, and small helpers for conditions, export records and cutoffs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Executable,
    false,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from connectors.kit.cutoffs import id_chunks
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from dsr.connector_contract import CategoryHolding

Where = Sequence[ColumnElement[bool]]
Records = Callable[[Any], Iterable[dict[str, Any]]]  # a row's export records


def holding(
    session: Session, category: str, dated: InstrumentedAttribute[Any], where: Where
) -> CategoryHolding | None:
    """The rows of ``dated``'s table that ``where`` selects as one category's holding (their
    count, earliest and latest date), or None without any."""
    count, earliest, latest = session.execute(
        select(func.count(), func.min(dated), func.max(dated))
        .select_from(dated.class_)
        .where(*where)
    ).one()
    if not count:
        return None
    return CategoryHolding(category=category, records=count, earliest=earliest, latest=latest)


def count_rows(session: Session, model: Any, where: Where) -> int:
    """The number of rows of ``model`` that ``where`` selects."""
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


@dataclass(frozen=True)
class Held:
    """Where a subject's records of one category are: their date (a column of their table) and
    the conditions that select the rows still holding it."""

    dated: InstrumentedAttribute[Any]
    where: list[ColumnElement[bool]]

    @property
    def model(self) -> Any:
        return self.dated.class_

    @property
    def table(self) -> str:
        return str(self.model.__tablename__)

    def before(self, cutoff: datetime | None) -> list[ColumnElement[bool]]:
        """The conditions of those dated before ``cutoff`` (all of them without)."""
        return self.where if cutoff is None else [*self.where, self.dated < cutoff]

    def holding(self, session: Session, category: str) -> CategoryHolding | None:
        return holding(session, category, self.dated, self.where)

    def count(self, session: Session) -> int:
        return count_rows(session, self.model, self.where)


def changed(session: Session, statement: Any) -> int:
    """Run an update (or delete); the number of rows it matched."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def update_rows(session: Session, model: Any, where: Where, values: Mapping[str, Any]) -> int:
    """Set ``values`` in the rows ``where`` selects (a correction, a flag: never an erasure,
    which the declared treatments write); the number of rows."""
    statement = (
        update(model).where(*where).values(dict(values))
        .execution_options(synchronize_session=False)
    )
    return changed(session, statement)


def partitions(
    session: Session, statement: Executable, records: Records, *, rows: bool = False
) -> Iterator[list[dict[str, Any]]]:
    """The export records of the rows ``statement`` selects, one chunk per partition of
    ``EXPORT_CHUNK_ROWS``: each entity (or, with ``rows``, each result row) to its records."""
    statement = statement.execution_options(yield_per=EXPORT_CHUNK_ROWS)
    result = session.execute(statement) if rows else session.scalars(statement)
    for partition in result.partitions():
        yield [record for row in partition for record in records(row)]


def any_of(*conditions: ColumnElement[bool] | None) -> ColumnElement[bool]:
    """Any of the conditions given (None: not given); false without any."""
    present = [condition for condition in conditions if condition is not None]
    return or_(*present) if present else false()


def columns(row: Any, *names: str) -> dict[str, Any]:
    """A row's values of ``names``, by name, in that order (for an export record)."""
    return {name: getattr(row, name) for name in names}


def widest(cutoffs: Mapping[str, datetime], categories: Iterable[str]) -> datetime | None:
    """The latest cutoff among ``categories``, or None when none of them has one."""
    return max((cutoffs[c] for c in categories if c in cutoffs), default=None)


def sweep_chunks(
    session: Session,
    cutoffs: Mapping[str, datetime],
    dated: InstrumentedAttribute[Any],
    anonymised_at: InstrumentedAttribute[Any],
    erase: Callable[[list[Any]], Mapping[str, int]],
) -> dict[str, int]:
    """A sweep of the rows not yet anonymised and dated before the widest cutoff, a chunk of
    ids (the table's primary key) at a time: ``erase`` erases one chunk and returns its count
    per category, summed here (each category swept reported, zero if nothing was)."""
    anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
    if cutoffs:
        key = inspect(dated.class_).primary_key[0]
        pending = [anonymised_at.is_(None), dated < max(cutoffs.values())]
        for ids in id_chunks(session, key, pending):
            anonymised.update(erase(ids))
    return dict(anonymised)
