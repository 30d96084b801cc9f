"""A dataset file checked against the live database at start (SQLAlchemy inspection).

Every problem is collected and reported in one ``DatasetError``: a table or column that is not
there, a category without a treatment, a treatment or a flag that does not fit its column, a
reference that does not join, a table no identity reaches. Columns a lookup filters on without
an index are warnings, returned and logged. Messages name tables and columns, never a value.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Engine,
    Inspector,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Uuid,
    inspect,
    text,
)
from sqlalchemy.exc import SAWarning
from sqlalchemy.types import TypeEngine

from connectors.dataset.matching import lookup_sql
from connectors.dataset.model import Dataset, DatasetError
from connectors.dataset.model import Table as TableSpec
from dsr.connector_contract import REDACTED, Strategy
from dsr.connector_registry import DataRole
from dsr.models import IdentityType

log = structlog.get_logger(__name__)
PSEUDONYM_CHARS = 64  # a keyed hash in hex


@dataclass
class Checked:
    """The dataset's tables as the database has them, parents before children (``order``),
    and the warnings found."""

    tables: dict[str, Table]
    order: list[str]
    warnings: list[str] = field(default_factory=list)


def check_dataset(dataset: Dataset, engine: Engine) -> Checked:
    """The dataset checked against the database; ``DatasetError`` lists every problem."""
    inspector = inspect(engine)
    present = set(inspector.get_table_names())
    metadata = MetaData()
    tables: dict[str, Table] = {}
    problems: list[str] = []
    for name in dataset.tables:
        if name not in present:
            problems.append(f"table {name}: not in the database")
            continue
        with warnings.catch_warnings():  # SQLite: expression indexes are not reflected
            warnings.simplefilter("ignore", SAWarning)
            tables[name] = Table(name, metadata, autoload_with=engine)
    for name, spec in dataset.tables.items():
        problems += _declarations(name, spec, dataset.role)
        problems += _erased_along(name, spec, dataset)
        problems += _date_via(name, spec, dataset, tables)
        if name in tables:
            problems += _columns(name, spec, tables[name])
    problems += _references(dataset, tables)
    order, cycle = _parents_first(dataset)
    if cycle:
        problems.append(f"references form a cycle through tables {', '.join(cycle)}")
    problems += [f"table {name}: not reachable from any identity (declare an identity column "
                 "or a reference to a table that is)" for name in _unreachable(dataset)]
    if problems:
        raise DatasetError(dataset.connector, problems)
    found = _unindexed(dataset, tables, inspector) + _undeclared_foreign_keys(
        dataset, inspector, present)
    for warning in found:
        log.warning("dataset_warning", connector=dataset.connector, warning=warning)
    return Checked(tables, order, found)


def _declarations(name: str, spec: TableSpec, role: DataRole) -> list[str]:
    """What the file itself gets wrong about one table."""
    problems = []
    for column, declared in spec.columns.items():
        where = f"{name}.{column}"
        if declared.treatment is Strategy.DELETE_ROW:
            problems.append(f"{where}: delete_row is not a column's treatment "
                            "(give the table delete_rows)")
        elif declared.category and declared.treatment is None and (
                declared.category != spec.delete_rows) and (
                declared.category not in spec.erased_together):
            problems.append(f"{where}: category {declared.category} has no treatment")
        elif declared.treatment is not None and declared.category is None:
            problems.append(f"{where}: treatment {declared.treatment.value} has no category")
        if declared.hashed and not declared.identity:
            problems.append(f"{where}: hashed, but holds no identity (say which: identity:)")
        if declared.hashed and declared.treatment is Strategy.PSEUDONYM:
            problems.append(f"{where}: a hashed identity already looks like a pseudonym, which "
                            "erasure would leave as it is (null it, or delete the rows)")
        if declared.identity and declared.flag:
            problems.append(f"{where}: holds an identity, so it cannot record {declared.flag}")
        if declared.identity and declared.treatment is None and spec.delete_rows is None:
            problems.append(f"{where}: holds an identity that erasure would leave (give it a "
                            "category and treatment, or the table delete_rows)")
        if declared.correctable and (declared.identity or declared.flag):
            problems.append(f"{where}: correctable, but holds an identity or a flag (an identity "
                            "is corrected by its type, a flag by its operation)")
        if declared.choices is not None and not declared.correctable:
            problems.append(f"{where}: choices, but not correctable")
        if declared.correctable and column in {kind.value for kind in IdentityType}:
            problems.append(f"{where}: correctable, but named like the identity type {column}")
    if spec.categories and spec.date_column is None:
        problems.append(f"table {name}: holds categories but names no date_column")
    if spec.identities and role is DataRole.END_USER and spec.customer_column is None:
        problems.append(f"table {name}: holds identities of end-user data but names no "
                        "customer_column (every lookup is confined to one customer)")
    return problems


def _erased_along(name: str, spec: TableSpec, dataset: Dataset) -> list[str]:
    """What ``erased_with`` and ``erased_together`` get wrong about one table."""
    problems = []
    parents = {ref.parent_table for ref in spec.reference_list()}
    for category in spec.erased_with:
        where = f"table {name}: erased_with {category}"
        if category in spec.categories:
            problems.append(f"{where}: a category of this table (erasing it reaches its rows)")
        elif not any(category in dataset.tables[parent].erasing
                     for parent in parents if parent in dataset.tables):
            problems.append(f"{where}: held by no table this one references")
        problems += [f"{where}: {own} is not a category of this table"
                     for own in spec.owns(category) if own not in spec.categories]
    problems += [f"table {name}: held_if_set {category}: not a category of this table"
                 for category in spec.held_if_set if category not in spec.categories]
    together = spec.erased_together
    if together and len(set(together)) < 2:
        problems.append(f"table {name}: erased_together names fewer than two categories")
    problems += [f"table {name}: erased_together {category}: not a category of this table"
                 for category in together if category not in spec.categories]
    if together and not spec.deletes(together[0]):
        treated = spec.treated(together[0])
        problems += [f"{name}.{column}: holds an identity that erasing {', '.join(together)} "
                     "leaves (the row would not be cut loose)"
                     for column in spec.identities if column not in treated]
    return problems


def _date_via(name: str, spec: TableSpec, dataset: Dataset,
              tables: dict[str, Table]) -> list[str]:
    """A date kept in another table (``date_column: table.column``): that table is declared,
    joined to this one by a reference, and has the column, a date or timestamp."""
    if spec.date_via is None:
        return []
    other, column = spec.date_via
    where = f"table {name}: date_column {spec.date_column}"
    joins = any(ref.parent_table == other for ref in spec.reference_list()) or (
        other in dataset.tables and any(
            ref.parent_table == name for ref in dataset.tables[other].reference_list()))
    if not joins:
        return [f"{where}: no reference joins {name} and {other}"]
    if other not in tables or column not in tables[other].columns:
        return [f"{where}: no such column"] if other in tables else []
    if not isinstance(tables[other].c[column].type, Date | DateTime):
        return [f"{where}: not a date or timestamp"]
    return []


def _columns(name: str, spec: TableSpec, table: Table) -> list[str]:
    """The named columns exist and fit what is declared of them."""
    problems = []
    named = [*spec.columns, *spec.references, spec.customer_column,
             None if spec.date_via else spec.date_column, spec.country_column]
    missing = [column for column in dict.fromkeys(named)
               if column is not None and column not in table.columns]
    problems += [f"{name}.{column}: no such column" for column in missing]
    if not table.primary_key.columns:
        problems.append(f"table {name}: has no primary key (rows are addressed by it)")
    date = spec.date_column
    if date and date in table.columns and not isinstance(table.c[date].type, Date | DateTime):
        problems.append(f"{name}.{date}: the date_column is not a date or timestamp")
    country = spec.country_column
    if country and country in table.columns and not isinstance(table.c[country].type, String):
        problems.append(f"{name}.{country}: the country_column is not text")
    for column, declared in spec.columns.items():
        if column in table.columns and declared.flag and not declared.identity:
            unfit = _unflaggable(table.c[column].type, table.c[column].nullable)
            if unfit:
                problems.append(f"{name}.{column}: flag {declared.flag} {unfit}")
        if column in table.columns and declared.correctable and not isinstance(
                table.c[column].type, String):
            problems.append(f"{name}.{column}: correctable, but not a text column")
        if column in table.columns and declared.treatment is not None:
            unfit = _unfit(declared.treatment, table.c[column].type, table.c[column].nullable)
            if unfit:
                problems.append(f"{name}.{column}: treatment {declared.treatment.value} "
                                f"{unfit}")
    return problems


def _unfit(strategy: Strategy, kind: TypeEngine[object], nullable: bool | None) -> str | None:
    """Why a treatment cannot be applied to a column of this type, or None."""
    length = getattr(kind, "length", None)
    if strategy is Strategy.NULL and not nullable:
        return "needs a nullable column"
    if strategy in (Strategy.PSEUDONYM, Strategy.REDACT):
        wanted = PSEUDONYM_CHARS if strategy is Strategy.PSEUDONYM else len(REDACTED)
        if not isinstance(kind, String):
            return "needs a text column"
        if length is not None and length < wanted:
            return f"needs a text column of at least {wanted} characters"
    if strategy in (Strategy.TO_DAY, Strategy.MARK) and not isinstance(kind, DateTime):
        return "needs a timestamp column"
    return None


def _unflaggable(kind: TypeEngine[object], nullable: bool | None) -> str | None:
    """Why a column cannot record a flag (the time it was asked, or true), or None."""
    if isinstance(kind, Boolean):
        return None
    if not isinstance(kind, Date | DateTime):
        return "needs a timestamp, date or boolean column"
    return None if nullable else "needs a nullable column (no value: not flagged)"


def _references(dataset: Dataset, tables: dict[str, Table]) -> list[str]:
    """Each reference joins: its parent is a declared table with that column, of a type the
    child column compares with."""
    problems = []
    for name, reference in dataset.references():
        where = f"{name}.{reference.column} -> {reference.parent}"
        parent = tables.get(reference.parent_table)
        if reference.parent_table not in dataset.tables:
            problems.append(f"{where}: {reference.parent_table} is not a table of the dataset")
        elif parent is not None and reference.parent_column not in parent.columns:
            problems.append(f"{where}: {reference.parent_table} has no column "
                            f"{reference.parent_column}")
        child = tables.get(name)
        if parent is None or child is None or reference.column not in child.columns or (
                reference.parent_column not in parent.columns):
            continue
        child_type = child.c[reference.column].type
        parent_type = parent.c[reference.parent_column].type
        if _kind(child_type) != _kind(parent_type):
            problems.append(f"{where}: types {child_type} and {parent_type} do not join")
    return problems


_KINDS: tuple[tuple[Any, str], ...] = (
    ((Integer, Numeric), "number"), (String, "text"), (DateTime, "timestamp"), (Date, "date"),
    (Uuid, "uuid"), (Boolean, "boolean"),
)


def _kind(kind: TypeEngine[object]) -> str:
    """The family of a column type: columns of one family compare without a cast."""
    return next((family for types, family in _KINDS if isinstance(kind, types)),
                type(kind).__name__)


def _parents_first(dataset: Dataset) -> tuple[list[str], list[str]]:
    """The tables, each after the tables it references; and the tables on a cycle, if any."""
    parents = {name: {ref.parent_table for ref in spec.reference_list()
                      if ref.parent_table in dataset.tables}
               for name, spec in dataset.tables.items()}
    order: list[str] = []
    while len(order) < len(parents):
        ready = [name for name, needs in parents.items()
                 if name not in order and needs <= set(order)]
        if not ready:
            return order, sorted(set(parents) - set(order))
        order += ready
    return order, []


def _unreachable(dataset: Dataset) -> list[str]:
    reached = {name for name, spec in dataset.tables.items() if spec.identities}
    grown = True
    while grown:
        more = {name for name, ref in dataset.references() if ref.parent_table in reached}
        grown = not more <= reached
        reached |= more
    return [name for name in dataset.tables if name not in reached]


def _unindexed(dataset: Dataset, tables: dict[str, Table], inspector: Inspector) -> list[str]:
    """The identity, customer, date and reference columns no index holds; an email or phone
    column needs an index on the expression its lookup matches (``lookup_sql``)."""
    found = []
    dialect = inspector.bind.dialect
    for name, spec in dataset.tables.items():
        indexed, expressions = _indexed(inspector, tables[name])
        for column, kind in spec.identities.items():
            lookup = lookup_sql(column, kind, dialect, spec.columns[column].hashed is not None)
            if lookup is None and column not in indexed:
                found.append(f"{name}.{column}: identity column without an index")
            elif lookup is not None and not any(_canonical(lookup) in _canonical(expression)
                                                for expression in expressions):
                found.append(f"{name}.{column}: identity column without an index on its lookup, "
                             f"{lookup} (without it each lookup reads all of the customer's rows)")
        looked_up = [(spec.customer_column, "customer"),
                     (None if spec.date_via else spec.date_column, "date"),
                     *((column, "reference") for column in spec.references)]
        for looked, role in looked_up:
            if looked is not None and looked not in indexed:
                found.append(f"{name}.{looked}: {role} column without an index")
    return found


def _indexed(inspector: Inspector, table: Table) -> tuple[set[str], list[str]]:
    """The columns some index holds (plain or in an expression), and the SQL of each
    expression index."""
    indexed = {column.name for column in table.primary_key.columns}
    with warnings.catch_warnings():  # SQLite: expression indexes are not reflected
        warnings.simplefilter("ignore", SAWarning)
        indexes = inspector.get_indexes(table.name)
        uniques = inspector.get_unique_constraints(table.name)
    expressions = []
    for index in indexes:
        indexed |= {column for column in index.get("column_names", []) if column}
        if index.get("expressions"):
            expressions.append(", ".join(index.get("expressions") or []))
    for unique in uniques:
        indexed |= set(unique["column_names"])
    if inspector.bind.dialect.name == "sqlite":  # expression indexes: read from their SQL
        with inspector.engine.connect() as connection:
            expressions += connection.execute(
                text("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t "
                     "AND sql IS NOT NULL"), {"t": table.name}).scalars().all()
    return indexed | _named_in(table, expressions), expressions


def _canonical(sql: str) -> str:
    """An index expression as comparable text, whichever database printed it: PostgreSQL
    prints ``lower(trim(email))`` as ``lower(TRIM(BOTH FROM email))`` (before version 16,
    ``lower(btrim((email)::text))``)."""
    found = re.sub(r"::[a-z ]+(\(\d+\))?", "", sql.lower().replace('"', ""))  # casts
    found = re.sub(r"\b(btrim\(|trim\(\s*both\s+from\s+)", "trim(", found)
    return re.sub(r"(?<=[(,])\((\w+)\)", r"\1", re.sub(r"\s+", "", found))  # (email): email


def _named_in(table: Table, expressions: Iterable[str]) -> set[str]:
    words = {word for expression in expressions for word in re.findall(r"\w+", expression)}
    return {column.name for column in table.columns if column.name in words}


def _undeclared_foreign_keys(dataset: Dataset, inspector: Inspector,
                             present: set[str]) -> list[str]:
    """Foreign keys into a table whose rows erasure deletes that the dataset does not declare:
    such a key may refuse the deletion (the erasure then fails as a whole)."""
    deleting = {name for name, spec in dataset.tables.items() if spec.delete_rows}
    declared = {(name, ref.column, ref.parent_table) for name, ref in dataset.references()}
    found = []
    for name in sorted(present):
        for key in inspector.get_foreign_keys(name):
            parent = key["referred_table"]
            for column in key["constrained_columns"]:
                if parent in deleting and (name, column, parent) not in declared:
                    found.append(f"{name}.{column}: a foreign key into {parent} that the "
                                 "dataset does not declare (it may refuse erasing deletions)")
    return found
