"""Categories kept each in one table, dated by one column (or expression): which of its rows
are the subject's, their holding and export, and their erasure and sweep by cutoff, as the
connector's treatments declare it (``Treatments``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from connectors.kit.queries import DatedRows, Record, export_partitions, holding
from connectors.kit.reach import in_chunks
from connectors.kit.treatments import Treatments


@dataclass(frozen=True)
class Source:
    """Where a category lives: its table, which rows are the subject's (or everyone's, for a
    sweep), their date, and how a row is exported."""

    category: str
    model: Any
    dated: Any
    where: Sequence[ColumnElement[bool]]
    record: Callable[[Any], Record]

    def exported(self, row: Any) -> list[Record]:
        return [{"category": self.category, **self.record(row)}]


def records(session: Session, source: Source) -> int:
    """The number of the subject's records of the source's category."""
    found = holding(session, source.category, [source])
    return found.records if found is not None else 0


def export_sources(session: Session, sources: Iterable[Source]) -> Iterator[list[Record]]:
    """Each source's rows as export records, oldest first, a partition at a time."""
    for source in sources:
        statement = select(source.model).where(*source.where).order_by(source.dated)
        yield from export_partitions(session, statement, source.exported)


def erase_dated(
    treat: Treatments,
    session: Session,
    category: str,
    parts: Iterable[DatedRows],
    before: datetime,
    as_of: datetime,
) -> int:
    """Erase a category from its parts' rows dated before ``before``, table by table, as
    declared; the number of rows."""
    return sum(
        treat.apply(session, table_name(part.model), [category],
                    [*part.where, part.dated < before], as_of)
        for part in parts
    )


def sweep_dated(
    treat: Treatments,
    session: Session,
    source: Source,
    before: datetime,
    as_of: datetime,
    counts: Counter[str],
) -> Counter[str]:
    """Erase a category from everyone's rows dated before ``before`` as declared, a chunk of
    ids at a time (``in_chunks``); the rows counted into ``counts``."""
    table = table_name(source.model)
    (key,) = treat.tables[table].primary_key.columns

    def erase(chunk: ColumnElement[bool]) -> dict[str, int]:
        return {source.category: treat.apply(session, table, [source.category], [chunk], as_of)}

    return in_chunks(session, key, [*source.where, source.dated < before], erase, counts)


def table_name(model: Any) -> str:
    """The name of a mapped class's table, or of a table."""
    return str(getattr(model, "__tablename__", None) or model.name)
