"""The declarations are the only place an erasure is written: when a connector erases or sweeps,
every statement that deletes a row of a table declared ``delete_row`` or writes a declared
column comes from the kit's ``Treatments`` (``connectors/kit/treatments.py``), never from the
connector's own code."""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from dsr.connector_contract import EraseInput, EraseRule, Strategy, SweepInput
from tests.connectors.helpers import CONNECTORS, NOW, REGISTRY
from tests.connectors.stores import Stores

KIT = "connectors/kit/treatments.py"
UPDATE = re.compile(r'^\s*UPDATE\s+"?(\w+)"?\s+SET\s+(.*?)(?:\s+WHERE\s|$)', re.I | re.S)
DELETE = re.compile(r'^\s*DELETE\s+FROM\s+"?(\w+)"?', re.I)
SET_COLUMN = re.compile(r'"?(\w+)"?\s*=')
HOLDING = [name for name in CONNECTORS if REGISTRY.get(name).categories]


@dataclass(frozen=True)
class Write:
    """One statement writing what a treatment declares: where, and whether the kit made it."""

    table: str
    columns: tuple[str, ...]  # ("*",) for a delete
    by_kit: bool


def declared_writes(connector: Any, statement: str) -> Write | None:
    """The statement as a write of declared columns (or rows), or None if it writes none."""
    treatments = connector.treatments
    deleting = {t.table for t in treatments if t.strategy is Strategy.DELETE_ROW}
    columns = {(t.table, t.column) for t in treatments if t.strategy is not Strategy.DELETE_ROW}
    by_kit = any(frame.filename.endswith(KIT) for frame in traceback.extract_stack())
    deleted = DELETE.match(statement)
    if deleted and deleted[1] in deleting:
        return Write(deleted[1], ("*",), by_kit)
    updated = UPDATE.match(statement)
    if updated:
        table = updated[1]
        written = tuple(c for c in SET_COLUMN.findall(updated[2]) if (table, c) in columns)
        if written:
            return Write(table, written, by_kit)
    return None


def every_category(connector: Any) -> list[EraseRule]:
    """A rule for each category reaching every record dated before tomorrow."""
    return [EraseRule(category=c, before=NOW + timedelta(days=1)) for c in connector.categories]


@pytest.mark.parametrize("name", HOLDING)
def test_erase_and_sweep_write_declared_columns_only_through_the_kit(
    stores: Stores, name: str
) -> None:
    connector = stores.connectors[name]
    writes: list[Write] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        write = declared_writes(connector, statement)
        if write is not None:
            writes.append(write)

    event.listen(connector.store.engine, "before_cursor_execute", record)
    try:
        rules = every_category(connector)
        erased = connector.erase(EraseInput(scope=stores.subjects[name].scope(), rules=rules))
        swept = connector.sweep(SweepInput(sweep_id="SWEEP-KIT", as_of=NOW, rules=rules))
    finally:
        event.remove(connector.store.engine, "before_cursor_execute", record)

    assert sum(erased.erased.values()) and sum(swept.anonymised.values()), "nothing was erased"
    assert writes, "no declared column was written"
    outside = sorted({(w.table, w.columns) for w in writes if not w.by_kit})
    assert not outside, f"{name} writes declared columns outside the kit: {outside}"
