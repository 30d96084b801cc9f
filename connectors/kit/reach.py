"""What several categories' rules reach together (erasing one category can take another's data
with it), and a sweep done a chunk of rows at a time, as the subject's erasure would be
(``in_chunks`` for any rows, ``sweep_chunks`` for rows marked once anonymised)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, inspect, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from connectors.kit.cutoffs import id_chunks

Reached = dict[str, ColumnElement[bool]]  # per category, the rows its rules reach


def either(reached: Reached, categories: Iterable[str]) -> ColumnElement[bool] | None:
    """The rows the rules of any of ``categories`` reach; None if no rule names one."""
    conditions = [reached[c] for c in sorted(categories) if c in reached]
    return or_(*conditions) if conditions else None


def widest(cutoffs: Mapping[str, datetime], categories: Iterable[str]) -> datetime | None:
    """The latest cutoff of any of ``categories``; None if no rule names one."""
    return max((cutoffs[c] for c in categories if c in cutoffs), default=None)


def in_chunks(
    session: Session,
    id_column: Any,
    pending: Iterable[ColumnElement[bool]],
    erase: Callable[[ColumnElement[bool]], Mapping[str, int]],
    counts: Counter[str],
) -> Counter[str]:
    """Erase the rows ``pending`` selects a chunk of ids at a time (``id_chunks``, with its
    heartbeats): ``erase`` gets the chunk's condition and returns its counts per category,
    added to ``counts`` (which keeps its zeros)."""
    for ids in id_chunks(session, id_column, pending):
        counts.update(erase(id_column.in_(ids)))
    return counts


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
