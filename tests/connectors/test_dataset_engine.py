"""The dataset connector's operations on the example shop, on SQLite and PostgreSQL: matching by
normalised identity within one customer, erasure by rule along the references (children before
parents, under ON DELETE RESTRICT), exactly the declared treatments, once per call, and access
exports of the subject's rows alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError
from temporalio.testing import ActivityEnvironment

from connectors.dataset import DatasetConnector, records
from connectors.dataset.matching import lookup_sql
from connectors.kit.activities import connector_activities
from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import (
    REDACTED,
    AccessInput,
    EraseInput,
    EraseResult,
    EraseRule,
    RectifyInput,
)
from dsr.hashing import keyed_hash
from dsr.models import Correction
from dsr.models import IdentityType as Kind
from tests.connectors.dataset_shop import (
    ACCOUNT,
    EMAIL,
    OTHER_ACCOUNT,
    PHONE,
    connector,
    dump,
    opened_database,
    scope,
    shop,
    utc,
    with_messages,
)
from tests.connectors.helpers import NOW, SECRET

MAYA = scope((Kind.EMAIL, EMAIL.upper()))  # typed in capitals; stored as Maya.Okafor@...
ALL_OF_IT = [EraseRule(category="customer_profile"), EraseRule(category="orders")]


@pytest.fixture
def database(app_database_url: str) -> Iterator[tuple[str, Engine]]:
    with opened_database(app_database_url) as opened:
        yield opened


@pytest.fixture
def with_messages_db(app_database_url: str) -> Iterator[tuple[str, Engine]]:
    with opened_database(app_database_url, messages=True) as opened:
        yield opened


@pytest.fixture
def shop_connector(database: tuple[str, Engine], tmp_path: Path) -> DatasetConnector:
    return connector(database[0], shop(), tmp_path)


def engine_of(database: tuple[str, Engine]) -> Engine:
    return database[1]


def rows_by_id(tables: dict[str, list[dict[str, Any]]], table: str) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in tables[table]}


def erase(shop: DatasetConnector, rules: list[EraseRule], who: Any = MAYA) -> EraseResult:
    return shop.erase(EraseInput(scope=who, rules=rules))


# --- finding the subject --------------------------------------------------------------------


def test_discovery_counts_and_dates_within_the_customer(shop_connector: DatasetConnector) -> None:
    found = {h.category: h for h in shop_connector.discover(MAYA).holdings}
    assert {c: h.records for c, h in found.items()} == {"customer_profile": 1, "orders": 2}
    assert (found["orders"].earliest, found["orders"].latest) == (
        utc("2019-04-01T10:00"), utc("2026-10-01T10:00"))
    assert found["customer_profile"].latest == utc("2019-03-01T09:00")
    at_b = {h.category: h.records
            for h in shop_connector.discover(scope((Kind.EMAIL, EMAIL),
                                                   account=OTHER_ACCOUNT)).holdings}
    assert at_b == {"customer_profile": 1, "orders": 1}


def test_identities_match_normalised(database: tuple[str, Engine], tmp_path: Path) -> None:
    """Maya typed her number at A in national form with spaces; Sam's has spaces after +44."""
    shop_connector = connector(database[0], shop(), tmp_path)
    by_phone = shop_connector.discover(scope((Kind.PHONE, PHONE)))
    assert {h.category: h.records for h in by_phone.holdings} == {
        "customer_profile": 1, "orders": 2}
    sam = shop_connector.discover(scope((Kind.PHONE, "+447700900123")))
    assert {h.category: h.records for h in sam.holdings} == {"customer_profile": 1, "orders": 1}
    # Without the file's national_phones, a national number is no one's.
    data = shop()
    del data["national_phones"]
    plain = connector(database[0], data, tmp_path)
    assert plain.discover(scope((Kind.PHONE, PHONE))).holdings == []
    assert plain.discover(scope((Kind.PHONE, "+447700900123"))).records == 2


def test_nothing_is_looked_up_without_a_customer_account(
        shop_connector: DatasetConnector, database: tuple[str, Engine]) -> None:
    nobody = scope((Kind.EMAIL, EMAIL), account=None)
    before = dump(engine_of(database))
    assert shop_connector.discover(nobody).holdings == []
    assert shop_connector.access(AccessInput(scope=nobody)).blob_ref is None
    assert erase(shop_connector, ALL_OF_IT, nobody) == EraseResult(connector="shop")
    assert dump(engine_of(database)) == before


def test_locate_names_the_customers_holding_an_identity(
        shop_connector: DatasetConnector) -> None:
    assert shop_connector.locate(scope((Kind.EMAIL, EMAIL), account=None)).customers == [
        ACCOUNT, OTHER_ACCOUNT]
    assert shop_connector.locate(scope((Kind.PHONE, "+447700900123"))).customers == [ACCOUNT]
    assert shop_connector.locate(scope((Kind.CHANNEL_ID, "line:maya"))).customers == []


def test_each_identity_is_looked_up_by_an_index_on_its_expression(
        database: tuple[str, Engine], tmp_path: Path) -> None:
    """One lookup per identity column, by an expression written without bound parameters
    (``lookup_sql``): an index on that expression serves it (on PostgreSQL, planned with
    sequential scans off, as on a table too large to scan)."""
    url, engine = database
    with engine.begin() as connection:
        for name, column, kind in (("email", "email", Kind.EMAIL),
                                   ("phone", "phone", Kind.PHONE)):
            connection.exec_driver_sql(
                f"CREATE INDEX ix_customers_{name}_lookup ON customers "
                f"(customer_account, {lookup_sql(column, kind, engine.dialect)})")
    shop_connector = connector(url, shop(), tmp_path)
    seen: list[tuple[str, Any]] = []
    listened = shop_connector.store.engine

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(listened, "before_cursor_execute", capture)
    found = shop_connector.discover(scope((Kind.EMAIL, EMAIL), (Kind.PHONE, PHONE)))
    event.remove(listened, "before_cursor_execute", capture)
    assert {h.category: h.records for h in found.holdings} == {
        "customer_profile": 1, "orders": 2}
    lookups = [(s, p) for s, p in seen if "FROM customers" in s and "customer_account" in s]
    assert len(lookups) == 2
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as connection:
        if postgres:
            connection.exec_driver_sql("SET enable_seqscan = off")
        plans = ["\n".join(str(step[-1]) for step in connection.exec_driver_sql(
                     f"EXPLAIN {'' if postgres else 'QUERY PLAN '}{statement}", parameters))
                 for statement, parameters in lookups]
    assert ["ix_customers_email_lookup" in plans[0], "ix_customers_phone_lookup" in plans[1]] == [
        True, True], plans


# --- erasure --------------------------------------------------------------------------------


def test_deleting_goes_children_first_under_on_delete_restrict(
        shop_connector: DatasetConnector, database: tuple[str, Engine]) -> None:
    engine = engine_of(database)
    with pytest.raises(IntegrityError), shop_connector.store.writing() as session:
        session.execute(text("DELETE FROM customers WHERE id = 1"))  # its orders refuse it
    before = dump(engine)
    result = erase(shop_connector, ALL_OF_IT)
    assert (result.erased, result.retained) == (
        {"orders": 2, "customer_profile": 1}, {"orders": 0, "customer_profile": 0})
    after = dump(engine)
    assert after["orders"] == [row for row in before["orders"] if row["id"] not in (10, 11)]
    assert after["customers"] == [row for row in before["customers"] if row["id"] != 1]


def test_erasing_applies_exactly_the_declared_treatments(
        shop_connector: DatasetConnector, database: tuple[str, Engine]) -> None:
    """Her orders are kept, so her customer row stays and is anonymised as declared: its
    email pseudonymised, phone and address nulled, name redacted; nothing else changes."""
    before = dump(engine_of(database))
    result = erase(shop_connector, [EraseRule(category="customer_profile")])
    assert (result.erased, result.retained) == ({"customer_profile": 1}, {"customer_profile": 0})
    after = dump(engine_of(database))
    assert after["orders"] == before["orders"]
    maya = rows_by_id(before, "customers")[1]
    assert rows_by_id(after, "customers") == {
        **rows_by_id(before, "customers"),
        1: {**maya, "email": keyed_hash(SECRET, EMAIL, "pseudonym"), "phone": None,
            "address": None, "name": REDACTED},
    }
    assert shop_connector.discover(MAYA).holdings == []  # no longer hers to find


def test_erase_rules_cut_off_by_each_tables_date(
        shop_connector: DatasetConnector, database: tuple[str, Engine]) -> None:
    before = dump(engine_of(database))
    result = erase(shop_connector, [
        EraseRule(category="orders", before=utc("2020-01-01T00:00")),
        EraseRule(category="customer_profile", before=utc("2019-01-01T00:00"))])
    assert (result.erased, result.retained) == (
        {"orders": 1, "customer_profile": 0}, {"orders": 1, "customer_profile": 1})
    after = dump(engine_of(database))
    assert after["customers"] == before["customers"]
    assert [row["id"] for row in after["orders"]] == [11, 12, 13]
    # Later, the deferred erasure of what was kept: the customer row must stay for order 11.
    later = erase(shop_connector, [EraseRule(category="customer_profile",
                                             before=utc("2020-01-01T00:00"))])
    assert later.erased == {"customer_profile": 1}
    assert rows_by_id(dump(engine_of(database)), "customers")[1]["name"] == REDACTED


def test_a_rule_confined_to_countries_uses_the_country_column(
        with_messages_db: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = with_messages_db
    shop_connector = connector(url, with_messages(), tmp_path)
    (held,) = [h for h in shop_connector.discover(MAYA).holdings
               if h.category == "message_content"]
    assert (held.records, held.countries_ended) == (3, ["IT", "NL", "ZZ"])
    assert held.latest_by_country == {"NL": utc("2024-01-01T10:00"),
                                      "IT": utc("2024-01-02T10:00"),
                                      "ZZ": utc("2026-11-01T10:00")}
    before = dump(engine)
    result = erase(shop_connector, [
        EraseRule(category="message_content", before=utc("2025-01-01T00:00")),
        EraseRule(category="message_content", before=utc("2023-01-01T00:00"),
                  countries_ended=["IT"])])
    assert (result.erased, result.retained) == ({"message_content": 1}, {"message_content": 2})
    after = dump(engine)
    # Only the Dutch message (stored as "nl") is past its retention; Italy keeps longer.
    assert after["messages"] == [{**row, "body": REDACTED} if row["id"] == 20 else row
                                 for row in before["messages"]]
    assert {name: rows for name, rows in after.items() if name != "messages"} == {
        name: rows for name, rows in before.items() if name != "messages"}
    with pytest.raises(ConnectorInputError, match="keeps no country for orders"):
        erase(shop_connector, [EraseRule(category="orders", countries_ended=["IT"])])


def test_days_and_marks(with_messages_db: tuple[str, Engine], tmp_path: Path) -> None:
    """A timestamp cut to its day and a bookkeeping mark (on PostgreSQL the date column keeps
    its offset, timestamptz)."""
    url, engine = with_messages_db
    shop_connector = connector(url, with_messages(columns={
        "body": {"category": "message_content", "treatment": "redact"},
        "sent_at": {"category": "message_content", "treatment": "to_day"},
        "anonymised_at": {"category": "message_content", "treatment": "mark"}}), tmp_path)
    before = dump(engine)
    result = erase(shop_connector, [EraseRule(category="message_content",
                                              before=utc("2025-01-01T00:00"))])
    assert result.erased == {"message_content": 2}
    assert dump(engine)["messages"] == [
        {**row, "body": REDACTED, "sent_at": utc_day(row["sent_at"]),
         "anonymised_at": NOW.replace(tzinfo=None)} if row["id"] in (20, 21) else row
        for row in before["messages"]]


def utc_day(value: datetime) -> datetime:
    """The UTC day of a stored time (naive: UTC already)."""
    day = value.astimezone(UTC) if value.tzinfo else value
    return day.replace(hour=0, minute=0, second=0, microsecond=0)


def test_unknown_categories_are_refused(shop_connector: DatasetConnector) -> None:
    with pytest.raises(ConnectorInputError, match="no category named 'recordings'"):
        erase(shop_connector, [EraseRule(category="recordings")])


def test_a_retried_erasure_is_done_once(
        shop_connector: DatasetConnector, database: tuple[str, Engine]) -> None:
    rules = [EraseRule(category="orders", before=utc("2020-01-01T00:00"))]
    first = erase(shop_connector, rules)
    after_first = dump(engine_of(database))
    again = erase(shop_connector, rules)
    assert again == first.model_copy(update={"already_done": True})
    assert dump(engine_of(database)) == after_first
    # The same request with other rules (a legal hold ended) is another operation.
    assert not erase(shop_connector, ALL_OF_IT).already_done


# --- access and rectification ----------------------------------------------------------------


def exported(shop_connector: DatasetConnector, ref: str | None) -> list[dict[str, Any]]:
    assert ref is not None
    with shop_connector.blobs.open_reader(ref) as file:
        return [json.loads(line) for line in file]


def test_access_exports_the_customer_row_and_its_orders_alone(
        shop_connector: DatasetConnector) -> None:
    result = shop_connector.access(AccessInput(scope=MAYA))
    assert result.records == {"customer_profile": 1, "orders": 2}
    assert exported(shop_connector, result.blob_ref) == [
        {"category": "customer_profile", "table": "customers", "record": {
            "id": 1, "created_at": "2019-03-01T09:00:00", "email": "Maya.Okafor@Example.NET",
            "phone": "06 1234 5678", "name": "Maya Okafor", "address": "Keizersgracht 1"}},
        {"category": "orders", "table": "orders", "record": {
            "id": 10, "customer_id": 1, "ordered_at": "2019-04-01T10:00:00",
            "shipping_address": "Keizersgracht 1", "amount": "12.50"}},
        {"category": "orders", "table": "orders", "record": {
            "id": 11, "customer_id": 1, "ordered_at": "2026-10-01T10:00:00",
            "shipping_address": "Prinsengracht 2", "amount": "40.00"}},
    ]
    again = shop_connector.access(AccessInput(scope=MAYA))
    assert again == result.model_copy(update={"already_done": True})


def test_an_export_streams_rows_found_by_several_lookups_once(
        database: tuple[str, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table no other references is read as it is exported, a chunk at a time (here one row):
    only its parents' rows are held. Orders that also carry a contact email are found by it
    and by their customer: each is exported once, Sam's order bearing Maya's email as hers."""
    url, engine = database
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE orders ADD COLUMN customer_account VARCHAR(64)")
        connection.exec_driver_sql("ALTER TABLE orders ADD COLUMN contact_email VARCHAR(254)")
        connection.execute(text("UPDATE orders SET customer_account = :a WHERE id <> 12"),
                           {"a": ACCOUNT})
        connection.execute(text("UPDATE orders SET customer_account = :b WHERE id = 12"),
                           {"b": OTHER_ACCOUNT})
        connection.execute(text("UPDATE orders SET contact_email = :e WHERE id IN (10, 13)"),
                           {"e": EMAIL})
    orders = shop()["tables"]["orders"]
    data = shop(orders={**orders, "customer_column": "customer_account", "columns": {
        **orders["columns"], "contact_email": {"identity": "email"}}})
    monkeypatch.setattr(records, "EXPORT_CHUNK_ROWS", 1)
    shop_connector = connector(url, data, tmp_path)
    with shop_connector.store.reading() as session:
        held = shop_connector.reach.subject_rows(session, MAYA, leaves=False)
    assert held is not None and list(held) == ["customers"]
    result = shop_connector.access(AccessInput(scope=MAYA))
    assert result.records == {"customer_profile": 1, "orders": 3}
    assert [(r["table"], r["record"]["id"]) for r in exported(shop_connector, result.blob_ref)
            ] == [("customers", 1), ("orders", 10), ("orders", 13), ("orders", 11)]
    found = {h.category: h.records for h in shop_connector.discover(MAYA).holdings}
    assert found == {"customer_profile": 1, "orders": 3}


async def test_the_connector_is_served_as_activities(shop_connector: DatasetConnector) -> None:
    activities = {getattr(a, "__temporal_activity_definition").name: a
                  for a in connector_activities(shop_connector)}
    beats: list[Any] = []
    environment = ActivityEnvironment()
    environment.on_heartbeat = lambda *details: beats.append(details)
    result = await environment.run(activities["shop.access"], AccessInput(scope=MAYA))
    assert result.records == {"customer_profile": 1, "orders": 2}
    assert beats  # a heartbeat per exported chunk


def test_rectification_corrects_identity_columns(
        shop_connector: DatasetConnector, database: tuple[str, Engine]) -> None:
    before = dump(engine_of(database))
    call = RectifyInput(scope=MAYA, corrections=[
        Correction(field="email", value="Maya.Okafor@Example.ORG"),
        Correction(field="phone", value="+31612345679"),  # found by email, her phone fixed
        Correction(field="name", value="Maya A. Okafor")])
    result = shop_connector.rectify(call)
    assert (result.updated, result.unsupported_fields) == ({"email": 1, "phone": 1}, ["name"])
    after = dump(engine_of(database))
    assert after["orders"] == before["orders"]
    assert rows_by_id(after, "customers") == {
        **rows_by_id(before, "customers"),
        1: {**rows_by_id(before, "customers")[1], "email": "maya.okafor@example.org",
            "phone": "+31612345679"}}
    assert shop_connector.rectify(call).already_done
    with pytest.raises(ConnectorInputError) as error:
        shop_connector.rectify(RectifyInput(scope=MAYA, corrections=[
            Correction(field="phone", value="06 9999 0000")]))
    assert str(error.value) == "correction of phone is malformed"


def test_a_group_dataset_has_no_customer_scope(
        database: tuple[str, Engine], tmp_path: Path) -> None:
    data = shop()
    data["role"] = "group"
    group = connector(database[0], data, tmp_path)
    assert "locate" not in group.activities
    anyone = scope((Kind.EMAIL, EMAIL), account=None)
    assert {h.category: h.records for h in group.discover(anyone).holdings} == {
        "customer_profile": 2, "orders": 3}
