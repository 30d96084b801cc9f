"""Erasure's treatments carried out: the one place where erasing or sweeping a category writes
the columns a connector declares for it (``Strategy``: delete the row, null, pseudonym, redact,
cut to the day, mark).

A connector declares its ``Treatment``s as data and says which rows a category's erasure
reaches; ``Treatments.apply`` does the rest, so the declarations are the only place the erasure
is written (``tests/connectors/test_treatments_in_kit.py`` fails if a connector writes a
declared column anywhere else)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Date,
    DateTime,
    Table,
    bindparam,
    delete,
    null,
    select,
)
from sqlalchemy import update as update_statement
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from dsr.connector_contract import REDACTED, Strategy, Treatment
from dsr.hashing import keyed_hash
from dsr.orm import UtcDateTime

PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")  # already a pseudonym: hashed once only
Normalise = Callable[[Any], str]  # a value as hashed into its pseudonym


def stored_time(value: datetime, kind: TypeEngine[Any], dialect: str) -> Any:
    """An aware time as a column of ``kind`` stores it: as is for ``UtcDateTime``; else UTC,
    naive where the column (or SQLite) keeps no offset, a day for a date column."""
    if isinstance(kind, UtcDateTime):
        return value
    value = value.astimezone(UTC)
    if isinstance(kind, Date) and not isinstance(kind, DateTime):
        return value.date()
    if dialect == "sqlite" or not getattr(kind, "timezone", False):
        return value.replace(tzinfo=None)
    return value


def to_day(value: Any) -> Any:
    """A timestamp cut to its day (UTC); a date stays; anything else is cleared."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value
        return value.replace(hour=0, minute=0, second=0, microsecond=0)
    return value if isinstance(value, date) else None


class Treatments:
    """One connector's declared treatments over its tables.

    ``normalise``: per ``"table.column"``, how a value is written before it is hashed into its
    pseudonym (an email address in lower case, say), so that one person's pseudonym is the
    same wherever it is kept; the value as text by default. ``originals_only``: the rows
    reached never hold a pseudonym yet (treated rows are marked and never reached again), so
    every value is hashed, even one that looks like a pseudonym."""

    def __init__(self, declared: Iterable[Treatment], tables: Mapping[str, Table],
                 secret: bytes, *, normalise: Mapping[str, Normalise] | None = None,
                 originals_only: bool = False) -> None:
        self.declared = tuple(declared)
        self.tables = tables
        self.secret = secret
        self.normalise = dict(normalise or {})
        self.originals_only = originals_only

    def columns(self, table: str, categories: Iterable[str]) -> dict[str, Strategy]:
        """The column treatments that erasing ``categories`` declares on ``table``."""
        wanted = set(categories)
        return {t.column: t.strategy for t in self.declared
                if t.table == table and t.category in wanted and t.strategy is not
                Strategy.DELETE_ROW}

    def deletes(self, table: str, categories: Iterable[str]) -> bool:
        """Whether erasing one of ``categories`` deletes the rows of ``table``."""
        wanted = set(categories)
        return any(t.table == table and t.category in wanted and
                   t.strategy is Strategy.DELETE_ROW for t in self.declared)

    def apply(self, session: Session, table: str, categories: Iterable[str],
              where: Sequence[ColumnElement[bool]], as_of: datetime) -> int:
        """Erase ``categories`` from the rows of ``table`` that ``where`` selects, as declared:
        the rows deleted if one of them deletes rows, else each declared column treated. The
        number of rows."""
        categories = list(categories)
        if self.deletes(table, categories):
            return self.delete_rows(session, table, categories, where)
        return self.treat_columns(session, table, categories, where, as_of)

    def delete_rows(self, session: Session, table: str, categories: Iterable[str],
                    where: Sequence[ColumnElement[bool]]) -> int:
        """Delete the rows ``where`` selects, for a category that declares it."""
        categories = list(categories)
        if not self.deletes(table, categories):
            raise ValueError(f"erasing {', '.join(categories)} deletes no row of {table}")
        statement = delete(self.tables[table]).where(*where)
        return cast(CursorResult[Any], session.execute(statement)).rowcount

    def treat_columns(self, session: Session, table: str, categories: Iterable[str],
                      where: Sequence[ColumnElement[bool]], as_of: datetime) -> int:
        """Treat the declared columns of ``categories`` in the rows ``where`` selects (rows
        kept, even where a category deletes rows); the number of rows."""
        treated = self.columns(table, categories)
        if not treated:
            return 0
        target = self.tables[table]
        dialect = session.get_bind().dialect.name
        fixed: dict[str, Any] = {}
        computed: dict[str, Strategy] = {}
        for column, strategy in treated.items():
            if strategy is Strategy.NULL:  # SQL NULL, not a JSON column's 'null'
                fixed[column] = null()
            elif strategy is Strategy.REDACT:
                fixed[column] = REDACTED
            elif strategy is Strategy.MARK:
                fixed[column] = stored_time(as_of, target.c[column].type, dialect)
            else:
                computed[column] = strategy
        if not computed:
            statement = update_statement(target).where(*where).values(fixed)
            return cast(CursorResult[Any], session.execute(statement)).rowcount
        return self._row_by_row(session, table, where, fixed, computed)

    def _row_by_row(self, session: Session, table: str, where: Sequence[ColumnElement[bool]],
                    fixed: dict[str, Any], computed: dict[str, Strategy]) -> int:
        """Pseudonyms and days depend on each row's value: read, then one statement for all."""
        target = self.tables[table]
        keys = list(target.primary_key.columns)
        changes = []
        for values in session.execute(select(*keys, *(target.c[c] for c in computed))
                                      .where(*where)):
            change = {f"dsr_k{i}": values[i] for i in range(len(keys))}
            for column, value in zip(computed, values[len(keys):], strict=True):
                change[f"dsr_v_{column}"] = self._computed(table, column, computed[column],
                                                          value)
            changes.append(change)
        if changes:
            statement = update_statement(target).where(
                *(column == bindparam(f"dsr_k{i}") for i, column in enumerate(keys))
            ).values({**fixed, **{column: bindparam(f"dsr_v_{column}") for column in computed}})
            session.execute(statement, changes)
        return len(changes)

    def _computed(self, table: str, column: str, strategy: Strategy, value: Any) -> Any:
        if value is None:
            return None
        if strategy is Strategy.TO_DAY:
            return to_day(value)
        if not self.originals_only and isinstance(value, str) and PSEUDONYM.fullmatch(value):
            return value
        normalise = self.normalise.get(f"{table}.{column}", str)
        return keyed_hash(self.secret, normalise(value), "pseudonym")
