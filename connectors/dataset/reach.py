"""One subject's rows in a dataset: found by identity (within the customer's scope) in the
tables holding identities, then followed along the declared references to the rows related
to them, parents before children. Each row is kept as its primary key, its date and country,
and the values its children reference: the operations address rows by primary key."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, Table, func, or_, select, tuple_, union
from sqlalchemy.orm import Session

from connectors.dataset.matching import identity_match, normalised_values
from connectors.dataset.model import Dataset
from connectors.dataset.schema import Checked
from dsr.connector_contract import Scope
from dsr.connector_registry import DataRole

CHUNK = 500  # values in one IN list
NO_COUNTRY = "ZZ"  # a row without a country (as discovery reports it)


@dataclass(frozen=True)
class Row:
    """One of the subject's rows: its primary key, its date (UTC) and country (upper case,
    when the table has them) and the values of its columns that child tables reference."""

    key: tuple[Any, ...]
    date: datetime | None
    country: str | None
    refs: dict[str, Any]
    held: frozenset[str] = frozenset()  # the table's ``held_if_set`` categories it holds


Rows = dict[str, list[Row]]  # per table, parents before children


class Lookup(NamedTuple):
    """One lookup of a subject's rows in a table: by which column, and its conditions."""

    column: str
    where: list[ColumnElement[bool]]


def chunked(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def as_utc(value: Any) -> datetime | None:
    """A stored date or timestamp as an aware UTC time (a naive one is taken as UTC)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    return None


class Reach:
    """A dataset bound to its database's tables, finding one subject's rows."""

    def __init__(self, dataset: Dataset, checked: Checked) -> None:
        self.dataset = dataset
        self.tables = checked.tables
        self.order = checked.order  # parents before children

    def table(self, name: str) -> Table:
        return self.tables[name]

    def key_in(self, name: str, keys: Iterable[tuple[Any, ...]]) -> ColumnElement[bool]:
        """The rows of ``name`` with these primary keys (one chunk)."""
        columns = list(self.tables[name].primary_key.columns)
        keys = list(keys)
        if len(columns) == 1:
            return columns[0].in_([key[0] for key in keys])
        return tuple_(*columns).in_(keys)

    def in_scope(self, name: str, scope: Scope) -> list[ColumnElement[bool]]:
        """The customer's rows only, for end-user data on a table with a customer column."""
        column = self.dataset.tables[name].customer_column
        if self.dataset.role is DataRole.GROUP or column is None:
            return []
        return [self.tables[name].c[column] == scope.customer_account]

    def identity_matches(self, name: str, scope: Scope) -> dict[str, ColumnElement[bool]]:
        """The rows of ``name`` holding one of the scope's identities: a condition per identity
        column with something to match (each served by its own index; an OR of them is not,
        on SQLite without statistics)."""
        table, spec = self.tables[name], self.dataset.tables[name]
        matches = {
            column: identity_match(table.c[column], kind,
                                   normalised_values(scope.identities, kind),
                                   self.dataset.national_phones,
                                   spec.columns[column].hashed is not None)
            for column, kind in spec.identities.items()
        }
        return {column: match for column, match in matches.items() if match is not None}

    def identity_where(self, name: str, scope: Scope) -> ColumnElement[bool] | None:
        """The rows of ``name`` holding one of the scope's identities; None if none can."""
        present = list(self.identity_matches(name, scope).values())
        return or_(*present) if present else None

    def leaf(self, name: str) -> bool:
        """Whether no table references this one (its rows lead to no others)."""
        return not self.dataset.children(name)

    def sources(self, name: str, scope: Scope, found: Rows) -> list[Lookup]:
        """The lookups that find the subject's rows of ``name``, given the rows ``found`` in
        the tables before it: one per identity column, one per chunk of the values each
        reference leads from, each named by its column. A row may be found by the lookups of
        several columns (never by two chunks of one)."""
        scoped = self.in_scope(name, scope)
        lookups = [Lookup(column, [*scoped, matched])
                   for column, matched in self.identity_matches(name, scope).items()]
        for reference in self.dataset.tables[name].reference_list():
            values = sorted({row.refs[reference.parent_column]
                             for row in found.get(reference.parent_table, [])} - {None})
            column = self.tables[name].c[reference.column]
            lookups += [Lookup(reference.column, [*scoped, column.in_(chunk)])
                        for chunk in chunked(values)]
        return lookups

    def subject_rows(self, session: Session, scope: Scope, *,
                     leaves: bool = True) -> Rows | None:
        """The subject's rows per table; None for end-user data without a customer account
        (no lookup is ever made across customers). ``leaves=False`` leaves out the tables no
        other table references (an export streams those: ``records.export_chunks``)."""
        if self.dataset.role is DataRole.END_USER and scope.customer_account is None:
            return None
        found: Rows = {}
        for name in self.order:
            if not leaves and self.leaf(name):
                continue
            rows: dict[tuple[Any, ...], Row] = {}
            for lookup in self.sources(name, scope, found):
                rows.update(self.select_rows(session, name, lookup.where))
            found[name] = list(rows.values())
        return found

    def select_rows(self, session: Session, name: str,
                    where: list[ColumnElement[bool]]) -> dict[tuple[Any, ...], Row]:
        """The rows of ``name`` matching ``where``, by primary key."""
        table, spec = self.tables[name], self.dataset.tables[name]
        keys = list(table.primary_key.columns)
        referenced = self.referenced(name)
        dated, country = bool(spec.date_column), bool(spec.country_column)
        rows = {}
        for values in session.execute(self.rows_statement(name, where)):
            key = tuple(values[:len(keys)])
            rest = list(values[len(keys):])
            when = as_utc(rest.pop(0)) if dated else None
            place = (rest.pop(0) or NO_COUNTRY).upper() if country else None
            held = frozenset(c for c in spec.held_if_set if rest.pop(0))
            rows[key] = Row(key, when, place, dict(zip(referenced, rest, strict=True)), held)
        return rows

    def referenced(self, name: str) -> list[str]:
        """The columns of table ``name`` that child tables reference."""
        return sorted({ref.parent_column for _, ref in self.dataset.children(name)})

    def rows_statement(self, name: str, where: list[ColumnElement[bool]]) -> Select[Any]:
        """What ``select_rows`` reads: the key, date, country and referenced columns."""
        table, spec = self.tables[name], self.dataset.tables[name]
        date = self.dated(name)
        dated = [date] if date is not None else []
        country = [table.c[spec.country_column]] if spec.country_column else []
        held = [self.held_where(name, category) for category in spec.held_if_set]
        return select(*table.primary_key.columns, *dated, *country, *held,
                      *(table.c[column] for column in self.referenced(name))).where(*where)

    def dated(self, name: str) -> ColumnElement[Any] | None:
        """The date of table ``name``'s rows: its date column, or the latest date of the rows
        of another table a declared reference joins them to (``date_column: table.column``)."""
        spec, table = self.dataset.tables[name], self.tables[name]
        if spec.date_column is None or spec.date_via is None:
            return table.c[spec.date_column] if spec.date_column else None
        other, column = spec.date_via
        joined = select(func.max(self.tables[other].c[column])).where(self.joined(name, other))
        return joined.scalar_subquery().label(column)

    def date_type(self, name: str) -> Any:
        """The type of table ``name``'s date (``dated``)."""
        via = self.dataset.tables[name].date_via
        if via is not None:
            return self.tables[via[0]].c[via[1]].type
        return self.tables[name].c[self.dataset.tables[name].date_column or ""].type

    def joined(self, name: str, other: str) -> ColumnElement[bool]:
        """How rows of ``name`` join rows of ``other``: by a reference either declares."""
        for child, parent in ((name, other), (other, name)):
            for reference in self.dataset.tables[child].reference_list():
                if reference.parent_table == parent:
                    return (self.tables[child].c[reference.column]
                            == self.tables[parent].c[reference.parent_column])
        raise ValueError(f"no reference joins tables {name} and {other}")

    def held_where(self, name: str, category: str) -> ColumnElement[bool]:
        """The rows of ``name`` holding a value of one of the category's columns."""
        table = self.tables[name]
        return or_(*(table.c[column].is_not(None) for column, declared
                     in self.dataset.tables[name].columns.items()
                     if declared.category == category))

    def holders(self, scope: Scope) -> Select[Any] | None:
        """The customer accounts holding rows of these identities, across customers (an end
        user's direct request, to refer); None for the group's own data or no identity."""
        if self.dataset.role is DataRole.GROUP:
            return None
        selects = []
        for name, spec in self.dataset.tables.items():
            if spec.customer_column is None:
                continue
            column = self.tables[name].c[spec.customer_column]
            selects += [select(column.label("customer")).where(matched)
                        for matched in self.identity_matches(name, scope).values()]
        if not selects:
            return None
        found = (union(*selects) if len(selects) > 1 else selects[0]).subquery()
        return (select(found.c.customer).where(found.c.customer.is_not(None)).distinct()
                .order_by(found.c.customer))

