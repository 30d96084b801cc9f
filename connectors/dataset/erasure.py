"""Erasure in a dataset: each category's declared treatments applied to the subject's rows its
erase rules reach (by the table's date column and, for communications, its country column),
children before parents, so that deleting rows works under ``ON DELETE RESTRICT``.

A row whose table deletes rows for the category is deleted unless rows still reference it
(rows kept under another rule, or of another category): then it is kept, and anonymised by the
category's column treatments if the table declares any (else it counts as retained)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Dialect,
    and_,
    func,
    literal,
    not_,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator, TypeEngine

from connectors.dataset.matching import stored_form
from connectors.dataset.model import dataset_treatments
from connectors.dataset.reach import NO_COUNTRY, Reach, Row, Rows, chunked
from connectors.kit.activities import heartbeat
from connectors.kit.cutoffs import country_conditions
from connectors.kit.errors import ConnectorInputError
from connectors.kit.treatments import Treatments, stored_time
from dsr.connector_contract import REDACTED, EraseRule, Strategy

PSEUDONYM_CHARS, HEX_DIGITS = 64, "0123456789abcdef"
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)  # an undated row counts as the oldest


class _Dated(TypeDecorator[Any]):
    """A date column, compared with aware cutoffs (``stored_time``)."""

    impl = DateTime
    cache_ok = False  # holds the reflected column type

    def __init__(self, kind: TypeEngine[Any]) -> None:
        super().__init__()
        self.kind = kind

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(self.kind)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return stored_time(value, self.kind, dialect.name)
        return value


def check_rules(reach: Reach, rules: list[EraseRule]) -> None:
    """Refuse rules for categories the dataset does not hold, without a timezone, or confined
    to countries for a category no table of which keeps a country."""
    dataset = reach.dataset
    country_conditions(dataset.connector, rules, dataset.categories, literal(EARLIEST),
                       literal(NO_COUNTRY))
    for rule in rules:
        keeping = [spec.country_column for spec in dataset.tables.values()
                   if rule.category in spec.categories and spec.country_column]
        if rule.countries_ended is not None and not keeping:
            raise ConnectorInputError(
                f"{dataset.connector} keeps no country for {rule.category}: its rule cannot be "
                "confined to countries_ended")


def reached_by(reach: Reach, name: str, rules: list[EraseRule]) -> dict[str, ColumnElement[bool]]:
    """Per category whose erasure reaches table ``name``, the rows its rules reach
    (``country_conditions`` on the table's date and country columns); for a category of
    ``erased_with``, also every row reached from a parent row its rules reach."""
    spec, table = reach.dataset.tables[name], reach.table(name)
    mine = [rule for rule in rules if rule.category in spec.erasing]
    if not mine or spec.date_column is None:
        return {}
    column, kind = reach.dated(name), reach.date_type(name)
    earliest = stored_time(EARLIEST, kind, "sqlite")  # naive: bound by the column type
    dated = type_coerce(func.coalesce(column, literal(earliest, kind)), _Dated(kind))
    country: Any = literal(NO_COUNTRY)
    if spec.country_column:
        country = func.upper(func.coalesce(table.c[spec.country_column], NO_COUNTRY))
    reached = country_conditions(reach.dataset.connector, mine, spec.erasing, dated, country)
    for category in set(spec.erased_with) & set(reached):
        reached[category] = or_(reached[category], *_from_parents(reach, name, category, rules))
    return reached


def _from_parents(reach: Reach, name: str, category: str,
                  rules: list[EraseRule]) -> list[ColumnElement[bool]]:
    """The rows of table ``name`` reached from a parent row that the rules of ``category``
    reach (cut loose from the person: no request could find these rows again)."""
    found: list[ColumnElement[bool]] = []
    for reference in reach.dataset.tables[name].reference_list():
        parent = reached_by(reach, reference.parent_table, rules).get(category)
        if parent is not None:
            values = select(reach.table(reference.parent_table).c[reference.parent_column])
            found.append(reach.table(name).c[reference.column].in_(values.where(parent)))
    return found


def pending_where(reach: Reach, name: str, category: str) -> ColumnElement[bool] | None:
    """The rows of table ``name`` the category's column treatments have not anonymised yet:
    a column not yet null, redacted, marked or a pseudonym. None when no treatment tells
    (none declared, or only days: a row then counts as not anonymised)."""
    table = reach.table(name)
    found: list[ColumnElement[bool]] = []
    for column, strategy in reach.dataset.tables[name].treated(category).items():
        value = table.c[column]
        if strategy is Strategy.NULL:
            found.append(value.is_not(None))
        elif strategy is Strategy.REDACT:
            found.append(or_(value.is_(None), value != REDACTED))
        elif strategy is Strategy.MARK:
            found.append(value.is_(None))
        elif strategy is Strategy.PSEUDONYM:  # 64 lower-case hex digits: hashed already
            hashed = and_(func.length(value) == PSEUDONYM_CHARS,
                          func.trim(value, HEX_DIGITS) == "")
            found.append(and_(value.is_not(None), not_(hashed)))
    return or_(*found) if found else None


class Erasure:
    """One erasure, inside its transaction: counts erased and retained per category."""

    def __init__(self, reach: Reach, session: Session, treatments: Treatments, as_of: datetime,
                 *, pending_only: bool = False) -> None:
        self.reach, self.session, self.as_of = reach, session, as_of
        self.treatments = treatments
        # A sweep's: rows a category's treatments already anonymised are left (and not
        # counted again); rows deleted are deleted whatever their columns hold.
        self.pending_only = pending_only
        self.erased: Counter[str] = Counter()
        self.retained: Counter[str] = Counter()

    def run(self, rows: Rows, rules: list[EraseRule]) -> None:
        for name in reversed(self.reach.order):  # children first
            if rows.get(name):
                self.table(name, rows[name], reached_by(self.reach, name, rules))
                heartbeat({"erased_table": name})

    def table(self, name: str, rows: list[Row], reached: dict[str, ColumnElement[bool]]) -> None:
        """Erase what ``reached`` (per category) reaches of these rows of table ``name``:
        categories erased together as one, each counted."""
        spec = self.reach.dataset.tables[name]
        gone: set[tuple[Any, ...]] = set()
        done: set[str] = set()
        for category in spec.erasing:
            unit = [c for c in spec.together(category) if c in reached] if (
                category in spec.categories) else [category]
            if category not in reached or category in done:
                continue
            done |= set(unit)
            left = [row for row in rows if row.key not in gone]
            hit = self._matching(name, left, or_(*(reached[c] for c in unit)))
            gone |= self._unit(name, unit, left, hit)

    def _unit(self, name: str, unit: list[str], left: list[Row], hit: list[Row]) -> set[Any]:
        """Erase the categories of ``unit`` (erased as one) from the rows ``hit`` of the rows
        ``left``; the keys of the rows deleted. Counted as the table's own categories; what
        is left is retained for the unit's own categories of the table."""
        spec = self.reach.dataset.tables[name]
        category = unit[0]
        kept, deleted, treats = hit, [], bool(spec.treated(category))
        if spec.deletes(category):
            blocked = self._still_referenced(name, hit)
            deleted = [row for row in hit if row.key not in blocked]
            kept = [row for row in hit if row.key in blocked] if treats else []
        pending = pending_where(self.reach, name, category) if self.pending_only else None
        if pending is not None and kept:
            kept = self._matching(name, kept, pending)
        gone = {row.key for row in deleted}
        untouched = {row.key for row in (hit if treats else deleted)}
        rest = [row for row in left if row.key not in untouched]
        for counted in spec.together(category):
            self.erased[counted] += self._holding(name, counted, deleted + kept)
        for retained in (c for c in unit if c in spec.categories):
            self.retained[retained] += self._holding(name, retained, rest)
        self._delete(name, category, deleted)
        if treats:
            self._treat(name, category, kept)
        return gone

    def _holding(self, name: str, category: str, rows: list[Row]) -> int:
        """How many of ``rows`` hold the category (all of them, unless ``held_if_set``)."""
        if category not in self.reach.dataset.tables[name].held_if_set or not rows:
            return len(rows)
        return len(self._matching(name, rows, self.reach.held_where(name, category)))

    def _matching(self, name: str, rows: list[Row], condition: ColumnElement[bool]) -> list[Row]:
        """The rows (of ``rows``) the rule's condition reaches."""
        by_key = {row.key: row for row in rows}
        columns = list(self.reach.table(name).primary_key.columns)
        hit = []
        for chunk in chunked(list(by_key)):
            statement = select(*columns).where(self.reach.key_in(name, chunk), condition)
            hit += [by_key[tuple(key)] for key in self.session.execute(statement)]
        return hit

    def _still_referenced(self, name: str, rows: list[Row]) -> set[tuple[Any, ...]]:
        """The rows some row of a child table still references (after the children's own
        erasure): deleting them would break the reference."""
        blocked: set[tuple[Any, ...]] = set()
        for child, reference in self.reach.dataset.children(name):
            column = self.reach.table(child).c[reference.column]
            values = sorted({row.refs[reference.parent_column] for row in rows} - {None})
            used: set[Any] = set()
            for chunk in chunked(values):
                used |= set(self.session.scalars(select(column).where(column.in_(chunk))
                                                 .distinct()))
            blocked |= {row.key for row in rows if row.refs[reference.parent_column] in used}
        return blocked

    def _delete(self, name: str, category: str, rows: list[Row]) -> None:
        for chunk in chunked([row.key for row in rows]):
            self.treatments.delete_rows(self.session, name, [category],
                                        [self.reach.key_in(name, chunk)])

    def _treat(self, name: str, category: str, rows: list[Row]) -> None:
        """The category's column treatments, on these rows only."""
        for chunk in chunked([row.key for row in rows]):
            self.treatments.treat_columns(self.session, name, [category],
                                          [self.reach.key_in(name, chunk)], self.as_of)


def dataset_treatments_of(reach: Reach, secret: bytes) -> Treatments:
    """The dataset's treatments, carried out by the kit: an identity column's pseudonym is of
    its normalised form (one person's is the same in every table)."""
    normalise = {f"{name}.{column}": partial(stored_form, kind)
                 for name, spec in reach.dataset.tables.items()
                 for column, kind in spec.identities.items()}
    return Treatments(dataset_treatments(reach.dataset), reach.tables, secret,
                      normalise=normalise)
