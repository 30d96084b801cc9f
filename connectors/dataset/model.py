"""The dataset file: an affiliate's relational database described for the orchestrator, so a
connector is a file of declarations rather than a module of code (``connectors/README.md``,
"A dataset file"; ``connectors/datasets/shop.yaml`` is an example).

The file names the tables, the columns holding the subject's identities, the references that
lead from those tables to the rows related to them, and for each personal column its category
and what erasing the category does to it. This module reads the file and checks its shape;
``connectors.dataset.schema`` checks it against the live database.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dsr.connector_contract import Operation, Strategy, Treatment
from dsr.connector_registry import DataRole
from dsr.models import IdentityType

NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"  # a table or column name, unquoted in any dialect
CATEGORY = r"^[a-z][a-z0-9_]{1,40}$"
Name = Annotated[str, Field(pattern=NAME)]
# The flags a subject may ask for (``FlagInput``): a restriction is kept by the connector
# itself; the others once a column of the dataset is flagged with them.
FLAGS = (Operation.RESTRICT, Operation.OBJECT, Operation.WITHDRAW_CONSENT,
         Operation.MARKETING_OPT_OUT)
Flag = Literal["restrict", "object", "withdraw_consent", "marketing_opt_out"]


class DatasetError(ValueError):
    """A dataset file that cannot be used: every problem found, each naming its table and
    column (never a value held in them)."""

    def __init__(self, connector: str, problems: list[str]) -> None:
        self.connector = connector
        self.problems = list(problems)
        listed = "\n".join(f"- {problem}" for problem in self.problems)
        super().__init__(f"dataset {connector}: {len(self.problems)} problem(s):\n{listed}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    """One declared column of a table."""

    # The subject's identity held in this column, matched normalised: emails in lower case,
    # phones as E.164 (formatting characters ignored; national numbers per ``national_phones``).
    identity: IdentityType | None = None
    # The column keeps the identity hashed: ``sha256`` is the SHA-256 (lower-case hex) of its
    # normalised form (as ad and marketing systems keep emails and phones); the subject's
    # identities are hashed to match it.
    hashed: Literal["sha256"] | None = None
    # The catalogue category its values belong to (as the registry entry lists them).
    category: Annotated[str, Field(pattern=CATEGORY)] | None = None
    # What erasing the category does to the column. ``delete_row`` is the table's
    # ``delete_rows``, not a column's.
    treatment: Strategy | None = None
    # The flag this column records in the subject's rows: a timestamp column gets the time it
    # was asked (the first time stays), a boolean column true; lifting a restriction clears it.
    flag: Flag | None = None
    # A correction of the field named by this column (not an identity: those are corrected by
    # their type) sets it in the subject's rows holding their identities, where it is held.
    correctable: bool = False
    # A correctable column's allowed values: a correction to any other is refused, naming the
    # column (a preferred channel, say).
    choices: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_is_a_treatment(cls, data: Any) -> Any:
        """YAML reads ``treatment: null`` as no value: written out, it means Strategy.NULL."""
        if isinstance(data, dict) and "treatment" in data and data["treatment"] is None:
            return {**data, "treatment": Strategy.NULL.value}
        return data


class Reference(_Strict):
    """``column`` of this table holds values of ``parent_table.parent_column``: the rows
    of this table are reached from the parent rows they point to."""

    column: Name
    parent_table: Name
    parent_column: Name

    @property
    def parent(self) -> str:
        return f"{self.parent_table}.{self.parent_column}"


class Table(_Strict):
    """One table of the dataset."""

    # The columns named here, identities and personal data. Undeclared columns are neither
    # exported nor changed (amounts and such feed the affiliate's statistics).
    columns: dict[Name, Column] = Field(default_factory=dict)
    # child column -> "parent_table.parent_column", e.g. {customer_id: customers.id}.
    references: dict[Name, Annotated[str, Field(pattern=r"^[A-Za-z_]\w*\.[A-Za-z_]\w*$")]] = (
        Field(default_factory=dict))
    # The column holding the customer account the row belongs to: end-user data is only ever
    # looked up within one customer. Required on a table holding identities of end-user data;
    # a table reached by reference is confined by its parent rows (and by this column too,
    # when it has one).
    customer_column: Name | None = None
    # The date retention is counted from (an erase rule's ``before`` is compared with it);
    # required on a table holding categories. A row without a date counts as the oldest.
    # ``table.column`` for the date of the row of another table a declared reference joins
    # this one's to (the latest, if several): a meeting's visitors dated by the meeting.
    date_column: Annotated[str, Field(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?$")] | None = None
    # For communications: the country whose retention rules apply (ISO code). Rules confined
    # to ``countries_ended`` reach a row by it; a row without one counts as ``ZZ``.
    country_column: Name | None = None
    # The category whose erasure deletes the rows (children first, along the references).
    # A row still referenced by rows kept (retained ones) is kept: the column treatments of
    # the same category, if any, then anonymise it instead.
    delete_rows: Annotated[str, Field(pattern=CATEGORY)] | None = None
    # Categories of the tables this one is reached from whose erasure erases its rows too, each
    # with the category (or list of them) of this table whose treatments they get:
    # ``{profile: events}`` on a profile's events erases, with the profile, the events the
    # profile's rule reaches by this table's date, and every event of a profile the rule
    # reaches, whatever its date (no request could find them again). Counted as this table's
    # categories.
    erased_with: dict[Annotated[str, Field(pattern=CATEGORY)],
                      Annotated[str, Field(pattern=CATEGORY)] | list[
                          Annotated[str, Field(pattern=CATEGORY)]]] = Field(default_factory=dict)
    # Categories held in one row and erased as one: erasing any of them applies the column
    # treatments of all of them, cutting the row loose from the person (every identity column
    # of the table treated); a column of them may then name no treatment (it stays, no longer
    # anyone's: a duration for statistics). Erasing one counts the rows for each of them.
    erased_together: list[Annotated[str, Field(pattern=CATEGORY)]] = Field(default_factory=list)
    # Categories a row holds only while one of the category's columns holds a value (a
    # meeting without a recording holds no recording): discovery, access and erasure count
    # only the rows holding them.
    held_if_set: list[Annotated[str, Field(pattern=CATEGORY)]] = Field(default_factory=list)

    def reference_list(self) -> list[Reference]:
        return [
            Reference(column=column, parent_table=parent.split(".")[0],
                      parent_column=parent.split(".")[1])
            for column, parent in self.references.items()
        ]

    @property
    def identities(self) -> dict[str, IdentityType]:
        return {name: column.identity for name, column in self.columns.items()
                if column.identity is not None}

    @property
    def categories(self) -> list[str]:
        """The categories held in this table, in declaration order (``delete_rows`` first)."""
        found = [self.delete_rows] if self.delete_rows else []
        for column in self.columns.values():
            if column.category and column.category not in found:
                found.append(column.category)
        return found

    @property
    def erasing(self) -> list[str]:
        """The categories whose erasure reaches this table's rows: those of the tables it is
        reached from (``erased_with``) first, then its own."""
        return [*(c for c in self.erased_with if c not in self.categories), *self.categories]

    @property
    def date_via(self) -> tuple[str, str] | None:
        """The table and column of a date kept in another table (``table.column``)."""
        if self.date_column is None or "." not in self.date_column:
            return None
        table, column = self.date_column.split(".")
        return table, column

    def owns(self, category: str) -> list[str]:
        """The categories of this table whose treatments erasing ``category`` applies."""
        mapped = self.erased_with.get(category, category)
        return [mapped] if isinstance(mapped, str) else list(mapped)

    def together(self, category: str) -> list[str]:
        """The categories erased as one with ``category`` (itself alone, most often)."""
        found: list[str] = []
        for own in self.owns(category):
            group = self.erased_together if own in self.erased_together else [own]
            found += [c for c in group if c not in found]
        return found

    def deletes(self, category: str) -> bool:
        """Whether erasing ``category`` deletes this table's rows."""
        return self.delete_rows is not None and self.delete_rows in self.together(category)

    def flagged(self, flag: Operation) -> list[str]:
        """The columns recording one flag."""
        return [name for name, column in self.columns.items() if column.flag == flag.value]

    def treated(self, category: str) -> dict[str, Strategy]:
        """The column treatments erasing one category applies (those of the categories
        erased together with it; for a category of ``erased_with``, its own category's)."""
        wanted = set(self.together(category))
        return {name: column.treatment for name, column in self.columns.items()
                if column.category in wanted and column.treatment is not None}

    def correctable(self) -> list[str]:
        """The columns a correction of the field of their name sets."""
        return [name for name, column in self.columns.items() if column.correctable]


class NationalPhones(_Strict):
    """How phone numbers written without their country are read: ``trunk_prefix`` + national
    number means ``country_code`` + national number (``0612345678`` is ``+31612345678``)."""

    country_code: Annotated[str, Field(pattern=r"^\+[1-9][0-9]{0,2}$")]
    trunk_prefix: Annotated[str, Field(pattern=r"^[0-9]{0,2}$")] = "0"


class Dataset(_Strict):
    """A dataset file: one connector over one relational database."""

    connector: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")]  # its registry name
    # end_user: the customers' data (the group processes it): scoped by customer account.
    # group: the group's own data, with no customer scope.
    role: DataRole = DataRole.END_USER
    national_phones: NationalPhones | None = None
    tables: dict[Name, Table]

    @property
    def categories(self) -> tuple[str, ...]:
        found: list[str] = []
        for table in self.tables.values():
            found += [category for category in table.categories if category not in found]
        return tuple(found)

    @property
    def identity_types(self) -> tuple[IdentityType, ...]:
        """The identity types its columns hold, in the order of ``IdentityType``."""
        held = {kind for table in self.tables.values() for kind in table.identities.values()}
        return tuple(kind for kind in IdentityType if kind in held)

    def operations(self) -> dict[Operation, str | None]:
        """Every operation of the contract, with why the dataset connector cannot do it
        (None: it can)."""
        why: dict[Operation, str | None] = dict.fromkeys(Operation)
        for flag in FLAGS[1:]:
            if not any(table.flagged(flag) for table in self.tables.values()):
                why[flag] = f"no column of the dataset is flagged {flag.value}"
        if self.role is DataRole.GROUP:
            why[Operation.LOCATE] = "the group's own data belongs to no customer to locate"
        return why

    @property
    def correctable(self) -> tuple[str, ...]:
        """The fields a rectification corrects: the identity types held, then the columns
        declared ``correctable``."""
        fields = [kind.value for kind in self.identity_types]
        for table in self.tables.values():
            fields += [name for name in table.correctable() if name not in fields]
        return tuple(fields)

    def choices(self, field: str) -> Container[str]:
        """The values a correction of a correctable column may take (anything, unless one of
        the columns of that name lists its choices)."""
        listed = [set(table.columns[field].choices or ()) for table in self.tables.values()
                  if field in table.correctable() and table.columns[field].choices is not None]
        return set.intersection(*listed) if listed else _Anything()

    @property
    def supported(self) -> tuple[Operation, ...]:
        return tuple(operation for operation, why in self.operations().items() if why is None)

    def unsupported(self, operations: Iterable[Operation]) -> list[str]:
        """A problem for each of ``operations`` the dataset connector cannot do."""
        why, wanted = self.operations(), set(operations)
        return [f"operation {operation.value}: the dataset connector cannot do it "
                f"({why[operation]})" for operation in Operation
                if operation in wanted and why[operation] is not None]

    def references(self) -> Iterator[tuple[str, Reference]]:
        """Every declared reference, with the name of the table declaring it."""
        for name, table in self.tables.items():
            for reference in table.reference_list():
                yield name, reference

    def children(self, parent: str) -> list[tuple[str, Reference]]:
        return [(name, ref) for name, ref in self.references() if ref.parent_table == parent]


class _Anything:
    """Every value (a correctable column without choices)."""

    def __contains__(self, value: object) -> bool:
        return True


def dataset_treatments(dataset: Dataset) -> tuple[Treatment, ...]:
    """The treatments the file declares, as the contract states them."""
    found = []
    for name, spec in dataset.tables.items():
        if spec.delete_rows:
            found.append(Treatment(category=spec.delete_rows, table=name, column="*",
                                   strategy=Strategy.DELETE_ROW))
        found += [Treatment(category=column.category, table=name, column=column_name,
                            strategy=column.treatment)
                  for column_name, column in spec.columns.items()
                  if column.category and column.treatment]
        found += [treatment for treatment in _erased_with_others(name, spec)
                  if treatment not in found]
    return tuple(found)


def _erased_with_others(name: str, spec: Table) -> Iterator[Treatment]:
    """The treatments a category applies to a table beyond its own columns: those of the
    categories erased together with it, and those of ``erased_with``."""
    for category in spec.erasing:
        if spec.deletes(category):
            yield Treatment(category=category, table=name, column="*",
                            strategy=Strategy.DELETE_ROW)
        for column, strategy in spec.treated(category).items():
            yield Treatment(category=category, table=name, column=column, strategy=strategy)


def parse_dataset(data: Any, source: str = "dataset") -> Dataset:
    try:
        return Dataset.model_validate(data)
    except ValidationError as error:
        problems = [f"{'.'.join(str(part) for part in e['loc']) or 'file'}: {e['msg']}"
                    for e in error.errors()]
        name = data.get("connector", source) if isinstance(data, dict) else source
        raise DatasetError(str(name), problems) from None


def load_dataset(path: Path) -> Dataset:
    """A dataset file, its shape checked (every problem listed at once)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        mark = getattr(error, "problem_mark", None)  # where the YAML goes wrong, if it does
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DatasetError(path.stem, [f"{path.name}: {type(error).__name__}{where}"]) from None
    return parse_dataset(data, path.stem)
