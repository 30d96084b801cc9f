"""Rectification in a dataset: corrections of identity columns (fields ``email``, ``phone``...:
the identity types the dataset holds), validated and normalised as the product normalises
identities, applied to the subject's rows that hold one of their identities. A corrected
identity stays restricted if the subject was (``Restrictions.carry_over``)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connectors.dataset.matching import hashed
from connectors.dataset.model import Dataset
from connectors.dataset.reach import Reach, Rows, chunked
from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import Scope
from dsr.models import Correction, Identity, IdentityType

Keys = dict[str, list[tuple[Any, ...]]]  # primary keys per table


def corrections(dataset: Dataset,
                given: list[Correction]) -> tuple[dict[IdentityType, Identity], list[str]]:
    """The corrected identity per type the dataset holds (the last one given winning), and
    the fields it does not hold; a malformed value is refused naming its field only."""
    values: dict[IdentityType, Identity] = {}
    unsupported = set()
    for correction in given:
        kind = next((k for k in dataset.identity_types if k.value == correction.field), None)
        if kind is None:
            unsupported.add(correction.field)
            continue
        try:
            values[kind] = Identity(type=kind, value=correction.value)
        except ValidationError:
            raise ConnectorInputError(f"correction of {correction.field} is malformed") from None
    return values, sorted(unsupported)


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
    count = 0
    for name, keys in found.items():
        table, spec = reach.table(name), reach.dataset.tables[name]
        for column in (c for c, k in spec.identities.items() if k is identity.type):
            stored = hashed(value) if spec.columns[column].hashed else value
            for chunk in chunked(keys):
                result = session.execute(update(table).where(
                    reach.key_in(name, chunk)).values({column: stored}))
                count += result.rowcount  # type: ignore[attr-defined]
    return count
