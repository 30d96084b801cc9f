"""Rectification in a dataset: corrections of identity columns (fields ``email``, ``phone``...:
the identity types the dataset holds), validated and normalised as the product normalises
identities, and of the columns declared ``correctable`` (the field named by the column), applied
to the subject's rows that hold one of their identities, where the column holds a value (a
correction adds nothing). A corrected identity stays restricted if the subject was
(``Restrictions.carry_over``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connectors.dataset.matching import hashed
from connectors.dataset.model import Dataset
from connectors.dataset.model import Table as TableSpec
from connectors.dataset.reach import Reach, Rows, chunked
from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import Scope
from dsr.models import Correction, Identity, IdentityType

Keys = dict[str, list[tuple[Any, ...]]]  # primary keys per table


class Corrections(NamedTuple):
    """A rectification's corrections the dataset can apply, and the fields it cannot."""

    identities: dict[IdentityType, Identity]
    fields: dict[str, str]  # correctable column name -> value
    unsupported: list[str]


def corrections(dataset: Dataset, given: list[Correction]) -> Corrections:
    """The corrected identity per type the dataset holds and the value per correctable column
    (the last one given winning), and the fields it does not hold; a malformed identity is
    refused naming its field only."""
    values: dict[IdentityType, Identity] = {}
    fields: dict[str, str] = {}
    unsupported = set()
    for correction in given:
        kind = next((k for k in dataset.identity_types if k.value == correction.field), None)
        if kind is None and correction.field in dataset.correctable:
            if correction.value not in dataset.choices(correction.field):
                raise ConnectorInputError(f"corrected {correction.field} must be one of the "
                                          "values its column allows")
            fields[correction.field] = correction.value
            continue
        if kind is None:
            unsupported.add(correction.field)
            continue
        try:
            values[kind] = Identity(type=kind, value=correction.value)
        except ValidationError:
            raise ConnectorInputError(f"correction of {correction.field} is malformed") from None
    return Corrections(values, fields, sorted(unsupported))


def found_by_identity(reach: Reach, session: Session, rows: Rows, scope: Scope) -> Keys:
    """The keys of the subject's rows that hold one of their identities (not rows reached
    only by reference: another person's number may be on those), before any correction."""
    found: Keys = {}
    for name in reach.dataset.tables:
        holding = reach.identity_where(name, scope)
        key = list(reach.table(name).primary_key.columns)
        for chunk in chunked([row.key for row in rows.get(name, [])]):
            if holding is not None:
                found.setdefault(name, []).extend(tuple(k) for k in session.execute(
                    select(*key).where(reach.key_in(name, chunk), holding)))
    return found


def correct(reach: Reach, session: Session, found: Keys, identity: Identity) -> int:
    """One identity type's columns set to its normalised value (hashed in a hashed column) in
    the rows found; how many."""
    value = identity.normalised.partition(":")[2]
    return sum(_set(reach, session, found, (name, column),
                    hashed(value) if reach.dataset.tables[name].columns[column].hashed else value)
               for name, column in _columns(reach, lambda spec: [
                   c for c, kind in spec.identities.items() if kind is identity.type]))


def correct_field(reach: Reach, session: Session, found: Keys, field: str, value: str) -> int:
    """A correctable column set to ``value`` in the rows found; how many."""
    return sum(_set(reach, session, found, column, value)
               for column in _columns(reach, lambda spec: [
                   c for c in spec.correctable() if c == field]))


def _columns(reach: Reach, pick: Callable[[TableSpec], list[str]]) -> list[tuple[str, str]]:
    return [(name, column) for name, spec in reach.dataset.tables.items()
            for column in pick(spec)]


def _set(reach: Reach, session: Session, found: Keys, where: tuple[str, str], value: str) -> int:
    """One column of the rows found set to ``value`` where it holds one; how many."""
    name, column = where
    table, count = reach.table(name), 0
    for chunk in chunked(found.get(name, [])):
        result = session.execute(update(table).where(
            reach.key_in(name, chunk), table.c[column].is_not(None)).values({column: value}))
        count += result.rowcount  # type: ignore[attr-defined]
    return count
