"""The dataset connector's retention sweep, on SQLite and PostgreSQL: every customer's rows past
their retention, per category by each table's date column and per country by its country
column, children before parents, in chunks with a heartbeat after each, once per sweep."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from temporalio.testing import ActivityEnvironment

from connectors.dataset import DatasetConnector
from connectors.kit import cutoffs
from connectors.kit.activities import connector_activities
from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import REDACTED, EraseRule, SweepInput
from dsr.hashing import keyed_hash
from tests.connectors.dataset_shop import (
    EMAIL,
    connector,
    dump,
    opened_database,
    shop,
    utc,
    with_messages,
)
from tests.connectors.helpers import NOW, SECRET

# Orders kept until mid-2025, profiles until 2023: orders 10 (2019), 12 (2025-01, at customer
# B) and 13 (2024, Sam's) are past it, order 11 (2026) is not; every profile is, but Maya's at A
# is still referenced by order 11, so it is anonymised rather than deleted.
RULES = [EraseRule(category="orders", before=utc("2025-06-01T00:00")),
         EraseRule(category="customer_profile", before=utc("2023-01-01T00:00"))]


@pytest.fixture
def database(app_database_url: str) -> Iterator[tuple[str, Engine]]:
    with opened_database(app_database_url, messages=True) as opened:
        yield opened


@pytest.fixture
def shop_connector(database: tuple[str, Engine], tmp_path: Path) -> DatasetConnector:
    return connector(database[0], with_messages(), tmp_path)


def sweep_call(rules: list[EraseRule], sweep_id: str = "SWEEP-1") -> SweepInput:
    return SweepInput(sweep_id=sweep_id, as_of=NOW, rules=rules)


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


def test_a_sweep_erases_every_customers_rows_past_their_retention(
        shop_connector: DatasetConnector, database: tuple[str, Engine]) -> None:
    engine = database[1]
    before = dump(engine)
    with engine.begin() as connection:  # Maya's messages go first: they hold her row at A
        connection.exec_driver_sql("DELETE FROM messages")
    result = shop_connector.sweep(sweep_call(RULES))
    assert result.anonymised == {"orders": 3, "customer_profile": 3}
    after = dump(engine)
    assert ids(after["orders"]) == [11]
    maya = before["customers"][0]
    assert after["customers"] == [{**maya, "email": keyed_hash(SECRET, EMAIL, "pseudonym"),
                                   "phone": None, "address": None, "name": REDACTED}]


def test_a_sweep_is_done_once_and_not_counted_again(
        shop_connector: DatasetConnector, database: tuple[str, Engine]) -> None:
    engine = database[1]
    first = shop_connector.sweep(sweep_call(RULES))
    # Her row at A (order 11, messages) and Sam's (a message) are anonymised, not deleted.
    assert first.anonymised == {"orders": 3, "customer_profile": 3}
    snapshot = dump(engine)
    again = shop_connector.sweep(sweep_call(RULES).model_copy(update={"as_of": NOW.replace(
        hour=11)}))
    assert again == first.model_copy(update={"already_done": True})
    assert dump(engine) == snapshot
    fresh = shop_connector.sweep(sweep_call(RULES, "SWEEP-2"))
    assert fresh.anonymised == {"orders": 0, "customer_profile": 0}
    assert dump(engine) == snapshot


def test_a_sweep_goes_by_country(
        shop_connector: DatasetConnector, database: tuple[str, Engine]) -> None:
    """Six months, but three years in Italy: the Dutch messages of January 2024 (Maya's,
    stored as "nl", and Sam's) are past it, the Italian one of the next day is not."""
    engine = database[1]
    before = dump(engine)
    result = shop_connector.sweep(sweep_call([
        EraseRule(category="message_content", before=utc("2026-05-01T00:00")),
        EraseRule(category="message_content", before=utc("2023-11-29T00:00"),
                  countries_ended=["it"])]))
    assert result.anonymised == {"message_content": 2}
    assert dump(engine)["messages"] == [
        {**row, "body": REDACTED} if row["id"] in (20, 23) else row
        for row in before["messages"]]
    with pytest.raises(ConnectorInputError, match="keeps no country for orders"):
        shop_connector.sweep(sweep_call([EraseRule(category="orders", before=NOW,
                                                   countries_ended=["IT"])]))


def test_a_sweep_rule_is_checked(shop_connector: DatasetConnector) -> None:
    with pytest.raises(ConnectorInputError, match="needs a 'before' cutoff"):
        shop_connector.sweep(sweep_call([EraseRule(category="orders")]))
    with pytest.raises(ConnectorInputError, match="no category named 'recordings'"):
        shop_connector.sweep(sweep_call([EraseRule(category="recordings", before=NOW)]))


async def test_a_sweep_goes_in_chunks_with_heartbeats(
        database: tuple[str, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of two rows, on a table keyed by two columns (compared as row values)."""
    url, engine = database
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE visits (customer_id INTEGER NOT NULL REFERENCES customers (id), "
            "day_no INTEGER NOT NULL, page VARCHAR(200), visited_at TIMESTAMP NOT NULL, "
            "PRIMARY KEY (customer_id, day_no))")
        for customer_id, day_no, page, at in [
                (1, 1, "/a", "2020-01-01 10:00"), (1, 2, "/b", "2020-01-02 10:00"),
                (2, 1, "/c", "2020-01-01 11:00"), (3, 1, "/d", "2020-01-03 10:00"),
                (3, 2, "/e", "2026-11-01 10:00")]:
            connection.exec_driver_sql(
                f"INSERT INTO visits VALUES ({customer_id}, {day_no}, '{page}', '{at}')")
    data = shop(visits={"date_column": "visited_at",
                        "references": {"customer_id": "customers.id"},
                        "columns": {"page": {"category": "browsing", "treatment": "redact"}}})
    visits = connector(url, data, tmp_path)
    monkeypatch.setattr(cutoffs, "SWEEP_CHUNK_ROWS", 2)
    activities = {getattr(a, "__temporal_activity_definition").name: a
                  for a in connector_activities(visits)}
    beats: list[Any] = []
    environment = ActivityEnvironment()
    environment.on_heartbeat = lambda *details: beats.append(details)
    call = sweep_call([EraseRule(category="browsing", before=utc("2021-01-01T00:00"))])
    result = await environment.run(activities["shop.sweep"], call)
    assert result.anonymised == {"browsing": 4}
    assert [row["page"] for row in dump_visits(engine)] == [REDACTED] * 4 + ["/e"]
    assert len(beats) == 2  # chunks of 2 and 2 (the last, short of a chunk, ends the paging)


def dump_visits(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.exec_driver_sql(
            "SELECT * FROM visits ORDER BY customer_id, day_no")]
