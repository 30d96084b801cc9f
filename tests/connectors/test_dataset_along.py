"""What erasing a category does beyond its own columns, declared in a dataset file, on the
example shop's database (SQLite and PostgreSQL): ``erased_with`` (a parent's category erasing
rows reached from it, by their date and with every parent row it reaches), ``erased_together``
(categories of one row cut loose as one), and ``correctable`` columns; each declaration refused,
naming its table and column, when it is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from connectors.dataset import DatasetConnector
from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import (
    REDACTED,
    AccessInput,
    EraseInput,
    EraseRule,
    FlagInput,
    RectifyInput,
)
from dsr.models import Correction
from dsr.models import IdentityType as Kind
from tests.connectors.dataset_shop import (
    EMAIL,
    connector,
    dump,
    opened_database,
    scope,
    shop,
    utc,
    with_messages,
)
from tests.connectors.test_dataset_file import customers, orders, refused

MAYA = scope((Kind.EMAIL, EMAIL.upper()))


@pytest.fixture
def shop_url(app_database_url: str) -> Iterator[str]:
    with opened_database(app_database_url) as (url, _):
        yield url


@pytest.fixture
def messages_url(app_database_url: str) -> Iterator[str]:
    with opened_database(app_database_url, messages=True) as (url, _):
        yield url


def erase(shop_connector: DatasetConnector, *rules: EraseRule) -> Any:
    return shop_connector.erase(EraseInput(scope=MAYA, rules=list(rules)))


def rows_of(url: str, table: str) -> dict[int, dict[str, Any]]:
    engine = create_engine(url)
    try:
        return {row["id"]: row for row in dump(engine)[table]}
    finally:
        engine.dispose()


def messages_together() -> dict[str, Any]:
    """The shop with messages holding their content and traffic in one row, erased as one."""
    return with_messages(
        erased_together=["message_content", "message_traffic"],
        columns={"body": {"category": "message_content", "treatment": "redact"},
                 "anonymised_at": {"category": "message_traffic", "treatment": "mark"},
                 "country": {"category": "message_traffic"}})


# --- erased_with ---------------------------------------------------------------------------


def test_erasing_a_parents_category_erases_every_row_reached_from_the_rows_it_reaches(
        shop_url: str, tmp_path: Path) -> None:
    """Maya's customer row (2019) is reached by a profile rule of 2020: both her orders go
    with it, the new one too, and so then does the row; the other customer's stay."""
    data = shop(orders=orders(erased_with={"customer_profile": "orders"}))
    shop_connector = connector(shop_url, data, tmp_path)
    before = rows_of(shop_url, "orders")

    result = erase(shop_connector, EraseRule(category="customer_profile",
                                             before=utc("2020-01-01T00:00")))

    assert result.erased == {"orders": 2, "customer_profile": 1}
    assert result.retained == {"customer_profile": 0}
    assert sorted(rows_of(shop_url, "orders")) == [12, 13]
    assert rows_of(shop_url, "orders")[12] == before[12]
    assert sorted(rows_of(shop_url, "customers")) == [2, 3]
    assert ("orders", "*") in {(t.table, t.column) for t in shop_connector.treatments
                               if t.category == "customer_profile"}


def test_a_parents_rule_reaches_rows_by_their_own_date_when_it_reaches_no_parent(
        shop_url: str, tmp_path: Path) -> None:
    """Customers dated by their opt-out (Maya's now): a rule of 2025 reaches not her customer
    row but her order of 2019 by its own date, counted as an order; the newer order stays."""
    data = shop(orders=orders(erased_with={"customer_profile": "orders"}))
    data["tables"]["customers"]["date_column"] = "newsletter_opt_out_at"
    shop_connector = connector(shop_url, data, tmp_path)
    shop_connector.marketing_opt_out(FlagInput(scope=MAYA))  # dates her row NOW
    result = erase(shop_connector, EraseRule(category="customer_profile",
                                             before=utc("2025-01-01T00:00")))

    assert result.erased == {"orders": 1, "customer_profile": 0}
    assert sorted(rows_of(shop_url, "orders")) == [11, 12, 13]
    assert 1 in rows_of(shop_url, "customers")


# --- erased_together -----------------------------------------------------------------------


def test_erasing_one_of_the_categories_erased_together_cuts_the_row_loose(
        messages_url: str, tmp_path: Path) -> None:
    shop_url = messages_url
    shop_connector = connector(shop_url, messages_together(), tmp_path)
    before = rows_of(shop_url, "messages")

    result = erase(shop_connector, EraseRule(category="message_traffic",
                                             before=utc("2025-01-01T00:00")))

    assert result.erased == {"message_content": 2, "message_traffic": 2}
    assert result.retained == {"message_traffic": 1}
    after = rows_of(shop_url, "messages")
    for message in (20, 21):
        assert after[message]["body"] == REDACTED and after[message]["anonymised_at"]
        assert after[message]["country"] == before[message]["country"], "it stays"
    assert after[22] == before[22] and after[23] == before[23]
    again = erase(shop_connector, EraseRule(category="message_content"),
                  EraseRule(category="message_traffic"))
    assert again.erased == {"message_content": 3, "message_traffic": 3}, "each row once"
    assert rows_of(shop_url, "messages")[22]["body"] == REDACTED


# --- correctable columns -------------------------------------------------------------------


def test_a_correctable_column_is_corrected_within_its_choices(
        shop_url: str, tmp_path: Path) -> None:
    data = shop(customers=customers(
        name={"category": "customer_profile", "treatment": "redact", "correctable": True},
        address={"category": "customer_profile", "treatment": "null", "correctable": True,
                 "choices": ["Keizersgracht 1", "Herengracht 3"]}))
    shop_connector = connector(shop_url, data, tmp_path)
    assert shop_connector.correctable == ("email", "phone", "name", "address")
    corrections = [Correction(field="name", value="Maya A. Okafor"),
                   Correction(field="address", value="Herengracht 3"),
                   Correction(field="shoe_size", value="38")]

    result = shop_connector.rectify(RectifyInput(scope=MAYA, corrections=corrections))

    assert (result.updated, result.unsupported_fields) == (
        {"name": 1, "address": 1}, ["shoe_size"])
    after = rows_of(shop_url, "customers")
    assert (after[1]["name"], after[1]["address"]) == ("Maya A. Okafor", "Herengracht 3")
    assert after[2]["name"] == "Maya O.", "another customer's row"
    with pytest.raises(ConnectorInputError, match="corrected address must be one of") as error:
        shop_connector.rectify(RectifyInput(scope=scope((Kind.EMAIL, EMAIL), request_id="r2"),
                                            corrections=[Correction(field="address",
                                                                    value="Elm Street 9")]))
    assert "Elm Street" not in str(error.value)


# --- refused -------------------------------------------------------------------------------


def test_wrong_erased_with_and_erased_together_are_named(
        messages_url: str, tmp_path: Path) -> None:
    shop_url = messages_url
    data = messages_together()
    data["tables"]["orders"]["erased_with"] = {"orders": "orders", "message_content": "refunds"}
    data["tables"]["messages"]["erased_together"] = ["message_content", "invoices"]
    assert refused(shop_url, data, tmp_path) == [
        "table orders: erased_with orders: a category of this table (erasing it reaches its "
        "rows)",
        "table orders: erased_with message_content: held by no table this one references",
        "table orders: erased_with message_content: refunds is not a category of this table",
        "messages.country: category message_traffic has no treatment",
        "table messages: erased_together invoices: not a category of this table",
    ]
    data = messages_together()
    data["tables"]["messages"]["erased_together"] = ["message_content", "message_content"]
    assert refused(shop_url, data, tmp_path) == [
        "messages.country: category message_traffic has no treatment",
        "table messages: erased_together names fewer than two categories"]


def test_erased_together_must_cut_every_identity_loose(shop_url: str, tmp_path: Path) -> None:
    table = customers(phone={"identity": "phone", "category": "contact"},
                      name={"category": "contact", "treatment": "redact"})
    table.pop("delete_rows")
    table["erased_together"] = ["customer_profile", "contact"]
    assert refused(shop_url, shop(customers=table), tmp_path) == [
        "customers.phone: holds an identity that erasure would leave (give it a category and "
        "treatment, or the table delete_rows)",
        "customers.phone: holds an identity that erasing customer_profile, contact leaves "
        "(the row would not be cut loose)",
    ]


def test_wrong_correctable_columns_are_named(shop_url: str, tmp_path: Path) -> None:
    data = shop(customers=customers(
        email={"identity": "email", "category": "customer_profile", "treatment": "pseudonym",
               "correctable": True},
        address={"category": "customer_profile", "treatment": "null", "choices": ["x"]}))
    data["tables"]["orders"]["columns"]["amount"]["correctable"] = True
    assert refused(shop_url, data, tmp_path) == [
        "customers.email: correctable, but holds an identity or a flag (an identity is "
        "corrected by its type, a flag by its operation)",
        "customers.email: correctable, but named like the identity type email",
        "customers.address: choices, but not correctable",
        "orders.amount: correctable, but not a text column",
    ]


def test_account_scope_is_kept(shop_url: str, tmp_path: Path) -> None:
    """The other customer's Maya is out of reach of the first's erasure whatever it declares."""
    data = shop(orders=orders(erased_with={"customer_profile": "orders"}))
    shop_connector = connector(shop_url, data, tmp_path)
    before = rows_of(shop_url, "customers")
    erase(shop_connector, EraseRule(category="customer_profile"))
    assert rows_of(shop_url, "customers") == {2: before[2], 3: before[3]}
    assert sorted(rows_of(shop_url, "orders")) == [12, 13]


# --- dates kept in another table, categories held only while set ---------------------------


def test_a_row_is_dated_by_the_row_a_reference_joins_it_to(
        shop_url: str, tmp_path: Path) -> None:
    """Orders dated by their customer's creation (2019 for Maya at the first customer): a
    rule of 2020 reaches both of hers, the new one too."""
    shop_connector = connector(shop_url, shop(orders=orders(
        date_column="customers.created_at")), tmp_path)
    (held,) = [h for h in shop_connector.discover(MAYA).holdings if h.category == "orders"]
    assert (held.records, held.earliest, held.latest) == (
        2, utc("2019-03-01T09:00"), utc("2019-03-01T09:00"))

    result = erase(shop_connector, EraseRule(category="orders", before=utc("2020-01-01T00:00")))

    assert result.erased == {"orders": 2}
    assert sorted(rows_of(shop_url, "orders")) == [12, 13]


def test_a_category_held_if_set_counts_only_the_rows_holding_it(
        messages_url: str, tmp_path: Path) -> None:
    engine = create_engine(messages_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE messages SET body = NULL WHERE id = 21")
    engine.dispose()
    data = messages_together()
    data["tables"]["messages"]["held_if_set"] = ["message_content"]
    shop_connector = connector(messages_url, data, tmp_path)
    held = {h.category: h.records for h in shop_connector.discover(MAYA).holdings}
    assert held == {"customer_profile": 1, "orders": 2, "message_content": 2,
                    "message_traffic": 3}
    export = shop_connector.access(AccessInput(scope=MAYA))
    assert export.records["message_content"] == 2

    result = erase(shop_connector, EraseRule(category="message_traffic",
                                             before=utc("2025-01-01T00:00")))

    assert result.erased == {"message_content": 1, "message_traffic": 2}


def test_wrong_dates_and_held_if_set_are_named(shop_url: str, tmp_path: Path) -> None:
    """A customer dated by the latest of its orders is fine (a reference joins them)."""
    data = shop(orders=orders(date_column="customers.name", held_if_set=["refunds"]))
    data["tables"]["customers"]["date_column"] = "orders.ordered_at"
    assert refused(shop_url, data, tmp_path) == [
        "table orders: held_if_set refunds: not a category of this table",
        "table orders: date_column customers.name: not a date or timestamp",
    ]
    data = shop(orders=orders(date_column="refunds.paid_at"))
    data["tables"]["customers"]["date_column"] = "orders.paid_at"
    assert refused(shop_url, data, tmp_path) == [
        "table customers: date_column orders.paid_at: no such column",
        "table orders: date_column refunds.paid_at: no reference joins orders and refunds",
    ]
