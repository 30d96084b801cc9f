"""Every product connector's store, seeded once from the shared population; each test gets its
own copy of the files and opens a connector on first use."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.builtin import BUILTIN
from connectors.conversations import ConversationsConnector
from connectors.customer_account import CustomerAccountConnector
from connectors.dataset.connector import DatasetConnector
from connectors.flow_builder import FlowBuilderConnector
from connectors.inbox import InboxConnector
from connectors.marketing import MarketingConnector
from connectors.numbers import NumbersConnector
from connectors.seeds.demo import DemoFacts, seed_stores
from connectors.seeds.stores import POPULATION_SEEDS
from connectors.sms import SmsConnector
from connectors.voice import VoiceConnector
from dsr.blobstore import LocalBlobStore
from dsr.connector_contract import EraseInput, EraseRule, Scope
from tests.connectors.helpers import (
    CONNECTORS,
    CUTOFF,
    NOW,
    PEOPLE,
    POPULATION,
    SECRET,
    Row,
    Subject,
    query,
    rows,
)
from tests.connectors.subjects import Picks, pick


@dataclass(frozen=True)
class Seeded:
    """The seeded template: what each seed wrote, and whom the tests act on."""

    folder: Path  # connectors/<name>.db
    facts: DemoFacts  # the SMS and customer-account demo (connectors.seeds.demo)
    written: dict[str, int]  # rows each population seed wrote
    picks: Picks
    subjects: dict[str, Subject]  # by connector name, and "push_own_id"


def open_connector(folder: Path, name: str, blobs: LocalBlobStore) -> Any:
    return BUILTIN[name](f"sqlite:///{folder / 'connectors' / f'{name}.db'}", blobs, SECRET)


def seed_template(folder: Path) -> Seeded:
    blobs = LocalBlobStore(folder / "blobs")
    opened = {name: open_connector(folder, name, blobs) for name in CONNECTORS}
    facts = seed_stores(opened["sms"], opened["customer_account"], people=PEOPLE, now=NOW)
    written = {
        name: fill(opened[name], POPULATION, now=NOW) for name, fill in POPULATION_SEEDS.items()
    }
    for connector in opened.values():
        connector.store.engine.dispose()
    picks, subjects = pick(folder / "connectors", facts)
    return Seeded(folder, facts, written, picks, subjects)


class Opened(dict[str, Any]):
    """The test's connectors by name, each opened on its copy of the store when first asked."""

    def __init__(self, folder: Path, blobs: LocalBlobStore) -> None:
        super().__init__()
        self.folder, self.blobs = folder, blobs

    def __missing__(self, name: str) -> Any:
        connector = self[name] = open_connector(self.folder, name, self.blobs)
        return connector


class Stores:
    """One test's copy of every seeded store."""

    def __init__(self, seeded: Seeded, folder: Path) -> None:
        shutil.copytree(seeded.folder / "connectors", folder / "connectors")
        self.folder = folder
        self.blobs = LocalBlobStore(folder / "blobs")
        self.connectors = Opened(folder, self.blobs)
        self.facts = seeded.facts
        self.written = seeded.written
        self.picks = seeded.picks
        self.subjects = seeded.subjects

    def db(self, name: str) -> Path:
        return self.folder / "connectors" / f"{name}.db"

    def rows(self, name: str, sql: str, *params: Any) -> list[Row]:
        return rows(self.db(name), sql, *params)

    def query(self, name: str, sql: str, *params: Any) -> list[dict[str, Any]]:
        return query(self.db(name), sql, *params)

    def table(self, name: str, table: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.rows(name, f"SELECT * FROM {table} ORDER BY 1")]

    def dump(self, name: str) -> dict[str, dict[int, tuple[Any, ...]]]:
        """Every data table's rows by id (not the operation log or restrictions)."""
        schema: Any = BUILTIN[name]
        tables = [table.name for table in schema.schema.metadata.sorted_tables]
        return {
            table: {
                row["id"]: tuple(row.values())
                for row in self.query(name, f"SELECT * FROM {table}")
            }
            for table in tables
            if table not in ("operation_log", "restrictions")
        }

    def export(self, ref: str) -> list[dict[str, Any]]:
        with self.blobs.open_reader(ref) as file:
            return [json.loads(line) for line in file]

    @property
    def sms(self) -> SmsConnector:
        return self.connectors["sms"]  # type: ignore[no-any-return]

    @property
    def accounts(self) -> CustomerAccountConnector:
        return self.connectors["customer_account"]  # type: ignore[no-any-return]

    @property
    def voice(self) -> VoiceConnector:
        return self.connectors["voice"]  # type: ignore[no-any-return]

    @property
    def numbers(self) -> NumbersConnector:
        return self.connectors["numbers"]  # type: ignore[no-any-return]

    @property
    def inbox(self) -> InboxConnector:
        return self.connectors["inbox"]  # type: ignore[no-any-return]

    @property
    def flow(self) -> FlowBuilderConnector:
        return self.connectors["flow_builder"]  # type: ignore[no-any-return]

    @property
    def conversations(self) -> ConversationsConnector:
        return self.connectors["conversations"]  # type: ignore[no-any-return]

    @property
    def cdp(self) -> DatasetConnector:
        return self.connectors["cdp"]  # type: ignore[no-any-return]

    @property
    def marketing(self) -> MarketingConnector:
        return self.connectors["marketing"]  # type: ignore[no-any-return]


def holding_map(stores: Stores, name: str, subject: Scope) -> dict[str, Any]:
    return {h.category: h for h in stores.connectors[name].discover(subject).holdings}


def erase_by_rule(stores: Stores, name: str, request_id: str = "REQ-0001") -> Any:
    """Erase every category of the connector's subject before the cutoff."""
    connector = stores.connectors[name]
    rules = [EraseRule(category=c, before=CUTOFF) for c in connector.categories]
    return connector.erase(EraseInput(scope=stores.subjects[name].scope(request_id), rules=rules))
