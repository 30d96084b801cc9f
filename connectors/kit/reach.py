"""What several categories' rules reach together (erasing one category can take another's data
with it), and a sweep done a chunk of rows at a time, as the subject's erasure would be."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_
from sqlalchemy.orm import Session

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
