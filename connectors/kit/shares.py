"""A category's share in each table holding it (``Share``: the subject's rows, or everyone's for
a sweep, their date, how a row is exported), exported a partition at a time, erased as the
category declares (``Treatments``) and swept a chunk of rows at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, inspect, select
from sqlalchemy.orm import Session

from connectors.kit.cutoffs import id_chunks
from connectors.kit.queries import DatedRows, Held, export_partitions
from connectors.kit.treatments import Treatments


@dataclass(frozen=True)
class Share(Held):
    """One table's share of a category: the subject's rows (not yet erased) and their date,
    and how a row is exported (its record, without the category)."""

    category: str
    record: Callable[[Any], dict[str, Any]]

    def export(self, row: Any) -> list[dict[str, Any]]:
        """The row's export record, under its category."""
        return [{"category": self.category, **self.record(row)}]


S = TypeVar("S", bound=Share)


def dated_before(cutoff: datetime) -> Callable[[Share], ColumnElement[bool]]:
    """What a rule with this cutoff reaches of any share: its rows dated before it."""
    return lambda share: share.dated < cutoff


def export_shares(session: Session, shares: Iterable[Share]) -> Iterator[list[dict[str, Any]]]:
    """The records of each share in turn, oldest first, a partition at a time."""
    for share in shares:
        statement = select(share.model).where(*share.where).order_by(share.dated)
        yield from export_partitions(session, statement, share.export)


def erase_shares(
    session: Session, treat: Treatments, shares: Iterable[S],
    reached: Callable[[S], ColumnElement[bool] | None],
    as_of: datetime,
) -> dict[str, int]:
    """The rows of each share that ``reached`` selects (none where it gives None), erased as
    the share's category declares; the rows per category."""
    erased: dict[str, int] = {}
    for share in shares:
        condition = reached(share)
        if condition is not None:
            where = [*share.where, condition]
            count = treat.apply(session, share.table, [share.category], where, as_of)
            erased[share.category] = erased.get(share.category, 0) + count
    return erased


def sweep_shares(
    session: Session, treat: Treatments, shares: Iterable[S],
    reached: Callable[[S], ColumnElement[bool] | None],
    as_of: datetime,
) -> Counter[str]:
    """As ``erase_shares``, a chunk of rows at a time (by primary key): a sweep's million rows
    are never selected at once."""
    swept: Counter[str] = Counter()
    for share in shares:
        condition = reached(share)
        if condition is None:
            continue
        key = inspect(share.model).primary_key[0]
        for ids in id_chunks(session, key, [*share.where, condition]):
            swept[share.category] += treat.apply(
                session, share.table, [share.category], [key.in_(ids)], as_of
            )
    return swept


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
        treat.apply(session, str(part.model.__tablename__), [category],
                    [*part.where, part.dated < before], as_of)
        for part in parts
    )
