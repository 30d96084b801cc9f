"""The retention sweep of a dataset: across all customers and subjects, each category's rows
past their retention (by the table's date column; for a rule confined to countries, by its
country column) erased as a subject's erasure would erase them, children before parents, a
chunk of rows at a time with a heartbeat after each, all of it once per sweep (its operation
log entry commits with it).

Rows a category's treatments already anonymised (a column already null, redacted, marked or a
pseudonym) are left alone and not counted again by a later sweep; rows its ``delete_rows``
reaches are deleted once nothing references them any more."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, or_, select, tuple_
from sqlalchemy.orm import Session

from connectors.dataset.erasure import Erasure, check_rules, pending_where, reached_by
from connectors.dataset.reach import Reach
from connectors.kit import cutoffs
from connectors.kit.activities import heartbeat
from connectors.kit.store import Store, sweep_key
from connectors.kit.treatments import Treatments
from dsr.connector_contract import SweepInput, SweepResult


def sweep(reach: Reach, store: Store, treat: Treatments, secret: bytes,
          call: SweepInput) -> SweepResult:
    """The sweep, once per sweep id and rules. A rule without ``before``, of a category the
    dataset does not hold, or confined to countries for a category no table of which keeps a
    country, is refused before anything is done."""
    dataset = reach.dataset
    widest = cutoffs.sweep_cutoffs(dataset.connector, call.rules, dataset.categories,
                                   countries=True)
    check_rules(reach, call.rules)

    def work(session: Session) -> SweepResult:
        erasure = Erasure(reach, session, treat, call.as_of, pending_only=True)
        for name in reversed(reach.order):  # children first
            reached = reached_by(reach, name, call.rules)
            if not reached:
                continue
            for keys in key_chunks(session, reach.table(name), [_candidates(reach, name,
                                                                             reached)]):
                rows = reach.select_rows(session, name, [reach.key_in(name, keys)])
                erasure.table(name, list(rows.values()), reached)
                heartbeat({"swept_table": name, "anonymised": sum(erasure.erased.values())})
        anonymised = {category: erasure.erased.get(category, 0) for category in widest}
        return SweepResult(connector=dataset.connector, anonymised=anonymised)

    return store.once(sweep_key(secret, call), SweepResult, work)


def _candidates(reach: Reach, name: str,
                reached: dict[str, ColumnElement[bool]]) -> ColumnElement[bool]:
    """The rows of table ``name`` a sweep has something to do with: reached by a category's
    rules and, unless the category deletes rows, not anonymised yet."""
    spec = reach.dataset.tables[name]
    found = []
    for category, condition in reached.items():
        pending = None if spec.deletes(category) else pending_where(reach, name, category)
        found.append(condition if pending is None else and_(condition, pending))
    return or_(*found)


def key_chunks(session: Session, table: Table,
               where: Iterable[ColumnElement[bool]]) -> Iterator[list[tuple[Any, ...]]]:
    """The primary keys of the rows matching ``where``, in ascending chunks of
    ``SWEEP_CHUNK_ROWS`` (keyset paging, so a million rows never sit in memory; composite
    keys compared as row values)."""
    size = cutoffs.SWEEP_CHUNK_ROWS
    columns = list(table.primary_key.columns)
    conditions = list(where)
    last: tuple[Any, ...] | None = None
    while True:
        statement = select(*columns).where(*conditions).order_by(*columns).limit(size)
        if last is not None:
            statement = statement.where(columns[0] > last[0] if len(columns) == 1
                                        else tuple_(*columns) > tuple_(*last))
        keys = [tuple(key) for key in session.execute(statement)]
        if not keys:
            return
        yield keys
        if len(keys) < size:
            return
        last = keys[-1]
