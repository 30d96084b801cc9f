"""The connector contract's shared parts: erase rules confined to the countries communications
ended in, indexes added to an existing store, and the blob store exports are written to."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.builtin import BUILTIN
from connectors.kit.errors import ConnectorInputError
from connectors.seeds.demo import DemoFacts
from connectors.sms import SmsConnector
from dsr.blobstore import LocalBlobStore
from dsr.connector_contract import EraseInput, EraseRule, Scope
from dsr.models import Identity, IdentityType
from tests.connectors.helpers import NOW, SECRET
from tests.connectors.stores import Stores


@pytest.fixture
def sms(stores: Stores) -> tuple[SmsConnector, DemoFacts, Path]:
    return stores.sms, stores.facts, stores.db("sms")


def _subject(customer: str, phone: str) -> Scope:
    return Scope(request_id="REQ-COUNTRY",
                 identities=[Identity(type=IdentityType.PHONE, value=phone)],
                 customer_account=customer, as_of=NOW)


def _roaming(database: Path) -> tuple[str, str]:
    """The end user (and customer) whose messages ended in the most countries."""
    with sqlite3.connect(database) as connection:
        customer, phone, countries = connection.execute(
            "SELECT customer_account, end_user_phone, COUNT(DISTINCT country_ended) AS n "
            "FROM messages GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT 1").fetchone()
    assert countries >= 2, "the seed lets about one message in ten end abroad"
    return customer, phone


def _messages(database: Path, customer: str, phone: str) -> list[sqlite3.Row]:
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(
            "SELECT * FROM messages WHERE customer_account = ? AND end_user_phone = ? "
            "AND anonymised_at IS NULL ORDER BY id", (customer, phone)).fetchall()


def test_discovery_reports_the_newest_message_per_country(
    sms: tuple[SmsConnector, DemoFacts, Path],
) -> None:
    connector, _, database = sms
    customer, phone = _roaming(database)
    [traffic] = [h for h in connector.discover(_subject(customer, phone)).holdings
                 if h.category == "traffic_data"]
    rows = _messages(database, customer, phone)
    newest: dict[str, str] = {}
    for row in rows:
        newest[row["country_ended"]] = max(newest.get(row["country_ended"], ""), row["sent_at"])
    assert sorted(traffic.latest_by_country) == traffic.countries_ended == sorted(newest)
    assert {country: moment.replace(tzinfo=None).isoformat(sep=" ")
            for country, moment in traffic.latest_by_country.items()} == newest


def test_a_rule_confined_to_a_country_reaches_only_messages_that_ended_there(
    sms: tuple[SmsConnector, DemoFacts, Path],
) -> None:
    connector, _, database = sms
    customer, phone = _roaming(database)
    before = _messages(database, customer, phone)
    countries = sorted({row["country_ended"] for row in before})
    confined, other = countries[0], countries[1:]
    six_months = NOW - timedelta(days=183)
    rules = [EraseRule(category="traffic_data", before=NOW, countries_ended=[confined]),
             EraseRule(category="traffic_data", before=six_months, countries_ended=other)]

    result = connector.erase(EraseInput(scope=_subject(customer, phone), rules=rules))

    reached = [row for row in before if row["country_ended"] == confined
               or row["sent_at"] < six_months.replace(tzinfo=None).isoformat(sep=" ")]
    assert result.erased["traffic_data"] == len(reached)
    left = _messages(database, customer, phone)
    assert {row["id"] for row in left} == {row["id"] for row in before} - {
        row["id"] for row in reached}
    assert all(row["country_ended"] != confined for row in left)


def test_a_connector_without_countries_refuses_a_confined_rule(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    cdp: Any = BUILTIN["cdp"](f"sqlite:///{tmp_path / 'cdp.db'}", blobs, SECRET)
    scope = Scope(request_id="REQ-1", customer_account="CUST-0001", as_of=NOW,
                  identities=[Identity(type=IdentityType.EMAIL, value="ana@example.com")])
    rule = EraseRule(category="events", countries_ended=["IT"])

    with pytest.raises(ConnectorInputError, match="keeps no country"):
        cdp.erase(EraseInput(scope=scope, rules=[rule]))


def test_an_index_added_later_is_created_on_an_existing_store(
    sms: tuple[SmsConnector, DemoFacts, Path],
) -> None:
    connector, _, database = sms
    connector.store.engine.dispose()
    with sqlite3.connect(database) as connection:
        connection.execute("DROP INDEX ix_messages_phone")  # a store from before the index

    SmsConnector(f"sqlite:///{database}", LocalBlobStore(database.parent / "blobs"), SECRET)

    with sqlite3.connect(database) as connection:
        names = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "ix_messages_phone" in names


def test_an_unconfined_rule_leaves_the_countries_another_rule_names(
    sms: tuple[SmsConnector, DemoFacts, Path],
) -> None:
    """A sweep's "six months, but two years in Italy": the Italian rule governs Italy."""
    connector, _, database = sms
    customer, phone = _roaming(database)
    before = _messages(database, customer, phone)
    kept_country = sorted({row["country_ended"] for row in before})[0]
    long_ago = NOW - timedelta(days=3650)
    rules = [EraseRule(category="traffic_data", before=NOW),
             EraseRule(category="traffic_data", before=long_ago, countries_ended=[kept_country])]

    connector.erase(EraseInput(scope=_subject(customer, phone), rules=rules))

    left = _messages(database, customer, phone)
    assert left and {row["country_ended"] for row in left} == {kept_country}
    assert len(left) == sum(1 for row in before if row["country_ended"] == kept_country)


def test_blob_store_refuses_escaping_keys_and_leaves_no_half_blob(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    for key in ("../outside", "/etc/passwd", "exports/../../x", "a//b", ""):
        with pytest.raises(ValueError):
            blobs.ref(key)
    with pytest.raises(RuntimeError), blobs.open_writer("exports/REQ-1/sms.jsonl") as file:
        file.write(b"half")
        raise RuntimeError("crash")
    assert not blobs.exists("blob:exports/REQ-1/sms.jsonl")
    assert list((tmp_path / "blobs").rglob("*.partial")) == []
    with blobs.open_writer("exports/REQ-1/sms.jsonl") as file:
        file.write(b"whole\n")
    assert blobs.path("blob:exports/REQ-1/sms.jsonl").read_bytes() == b"whole\n"

