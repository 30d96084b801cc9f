"""The dataset file: its shape, and its check against the live database at start, on SQLite and
PostgreSQL. Each kind of mistake is refused naming it, several at once listed together; columns
a lookup filters on without an index are reported (and logged without values)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect

from connectors.dataset import DatasetError, dataset_connector, parse_dataset
from connectors.dataset import schema as dataset_schema
from connectors.dataset.own import OWN_SCHEMA
from connectors.kit.activities import connector_activities
from dsr.connector_contract import Strategy, Treatment
from tests.conftest import captured_logs
from tests.connectors.dataset_shop import (
    CUSTOMERS,
    OPENED,
    SHOP_FILE,
    connector,
    opened_database,
    shop,
    with_messages,
)

EMAIL_LOOKUP = "lower(trim(email))"
PHONE_LOOKUP = ("replace(replace(replace(replace(replace(replace(replace(phone, ' ', ''), '-', "
                "''), '(', ''), ')', ''), '.', ''), '/', ''), '\u00a0', '')")
EXPECTED_WARNINGS = [  # the shop indexes its emails as stored: no use to a lookup
    f"customers.email: identity column without an index on its lookup, {EMAIL_LOOKUP} "
    "(without it each lookup reads all of the customer's rows)",
    f"customers.phone: identity column without an index on its lookup, {PHONE_LOOKUP} "
    "(without it each lookup reads all of the customer's rows)",
    "customers.created_at: date column without an index",
    "orders.ordered_at: date column without an index",
]


@pytest.fixture
def shop_url(app_database_url: str) -> Iterator[str]:
    with opened_database(app_database_url) as (url, _):
        yield url


@pytest.fixture
def with_messages_url(app_database_url: str) -> Iterator[str]:
    with opened_database(app_database_url, messages=True) as (url, _):
        yield url


def refused(url: str, data: dict[str, Any], folder: Path) -> list[str]:
    with pytest.raises(DatasetError) as error:
        connector(url, data, folder)
    assert str(error.value).startswith(f"dataset shop: {len(error.value.problems)} problem(s)")
    for problem in error.value.problems:
        assert f"- {problem}" in str(error.value)
    return error.value.problems


def customers(**columns: Any) -> dict[str, Any]:
    """The example's customers table with columns added, changed or (None) dropped."""
    table = shop()["tables"]["customers"]
    merged = {**table["columns"], **columns}
    return {**table, "columns": {name: value for name, value in merged.items()
                                 if value is not None}}


def orders(**fields: Any) -> dict[str, Any]:
    return {**shop()["tables"]["orders"], **fields}


# --- the example --------------------------------------------------------------------------


def test_the_example_file_connects_the_shop(shop_url: str, tmp_path: Path) -> None:
    cls = dataset_connector(SHOP_FILE)
    assert cls.name == "shop"
    assert cls.categories == ("customer_profile", "orders")
    assert cls.activities == ("discover", "access", "erase", "rectify", "restrict",
                              "marketing_opt_out", "locate", "sweep")
    assert list(cls.treatments) == [
        Treatment(category="customer_profile", table="customers", column="*",
                  strategy=Strategy.DELETE_ROW),
        Treatment(category="customer_profile", table="customers", column="email",
                  strategy=Strategy.PSEUDONYM),
        Treatment(category="customer_profile", table="customers", column="phone",
                  strategy=Strategy.NULL),  # written `treatment: null` in the file
        Treatment(category="customer_profile", table="customers", column="name",
                  strategy=Strategy.REDACT),
        Treatment(category="customer_profile", table="customers", column="address",
                  strategy=Strategy.NULL),
        Treatment(category="orders", table="orders", column="*", strategy=Strategy.DELETE_ROW),
    ]
    shop_connector = connector(shop_url, shop(), tmp_path)
    served = [getattr(a, "__temporal_activity_definition").name
              for a in connector_activities(shop_connector)]
    assert served == [f"shop.{operation}" for operation in cls.activities]
    assert shop_connector.warnings == EXPECTED_WARNINGS


def test_starting_creates_only_its_own_tables(shop_url: str, tmp_path: Path) -> None:
    """Its operation log, restrictions and flags: in a schema of its own on PostgreSQL."""
    engine = create_engine(shop_url)
    OPENED.append(engine)  # closed before the database is dropped

    def columns(found: Any) -> dict[str, list[tuple[str, str, bool]]]:
        return {name: [(c["name"], str(c["type"]), c["nullable"])
                       for c in found.get_columns(name)] for name in ("customers", "orders")}

    before = columns(inspect(engine))
    connector(shop_url, shop(), tmp_path)
    connector(shop_url, shop(), tmp_path)  # a second worker starting on the same database
    found = inspect(engine)
    assert columns(found) == before
    if engine.dialect.name == "postgresql":
        assert sorted(found.get_table_names()) == ["customers", "orders"]
        assert sorted(found.get_table_names(schema=OWN_SCHEMA)) == [
            "shop_flags", "shop_operation_log", "shop_restrictions"]
    else:
        assert sorted(found.get_table_names()) == [
            "customers", "dsr_connector_shop_flags", "dsr_connector_shop_operation_log",
            "dsr_connector_shop_restrictions", "orders"]


# --- refused, naming the mistake ------------------------------------------------------------


def test_a_missing_table_is_named(shop_url: str, tmp_path: Path) -> None:
    data = shop(refunds={"date_column": "refunded_at",
                         "references": {"order_id": "orders.id"},
                         "columns": {"reason": {"category": "orders", "treatment": "redact"}}})
    assert refused(shop_url, data, tmp_path) == ["table refunds: not in the database"]


def test_a_missing_column_is_named(shop_url: str, tmp_path: Path) -> None:
    data = shop(customers=customers(birthday={"category": "customer_profile",
                                              "treatment": "null"}))
    data["tables"]["orders"]["date_column"] = "placed_at"
    assert refused(shop_url, data, tmp_path) == [
        "customers.birthday: no such column", "orders.placed_at: no such column"]


def test_a_category_without_a_treatment_is_named(shop_url: str, tmp_path: Path) -> None:
    data = shop(customers=customers(name={"category": "customer_profile"}))
    connector(shop_url, data, tmp_path)  # the row is deleted: nothing more to declare
    data["tables"]["customers"].pop("delete_rows")
    assert refused(shop_url, data, tmp_path) == [
        "customers.name: category customer_profile has no treatment"]


def test_a_reference_that_does_not_join_is_named(shop_url: str, tmp_path: Path) -> None:
    missing = shop(orders=orders(references={"customer_id": "customers.uuid"}))
    assert refused(shop_url, missing, tmp_path) == [
        "orders.customer_id -> customers.uuid: customers has no column uuid"]
    mistyped = shop(orders=orders(references={"shipping_address": "customers.id"}))
    (problem,) = refused(shop_url, mistyped, tmp_path)
    assert problem.startswith("orders.shipping_address -> customers.id: types VARCHAR(300) and ")
    assert problem.endswith(" do not join")
    undeclared = shop(orders=orders(references={"customer_id": "clients.id"}))
    assert "orders.customer_id -> clients.id: clients is not a table of the dataset" in (
        refused(shop_url, undeclared, tmp_path))


def test_a_table_no_identity_reaches_is_named(shop_url: str, tmp_path: Path) -> None:
    data = shop(orders=orders(references={}))
    assert refused(shop_url, data, tmp_path) == [
        "table orders: not reachable from any identity (declare an identity column or a "
        "reference to a table that is)"]


def test_several_mistakes_are_listed_together(shop_url: str, tmp_path: Path) -> None:
    data = shop(
        customers={**customers(name={"category": "customer_profile"},
                               phone={"identity": "phone", "category": "customer_profile",
                                      "treatment": "pseudonym"}),
                   "delete_rows": None, "customer_column": None},
        orders=orders(references={"customer_id": "customers.uuid"}, delete_rows=None,
                      columns={"shipping_address": {"category": "orders",
                                                    "treatment": "null"},
                               "amount": {"category": "orders", "treatment": "null"}}),
        refunds={"columns": {}},
    )
    problems = refused(shop_url, data, tmp_path)
    assert problems == [
        "table refunds: not in the database",
        "customers.name: category customer_profile has no treatment",
        "table customers: holds identities of end-user data but names no customer_column "
        "(every lookup is confined to one customer)",
        "customers.phone: treatment pseudonym needs a text column of at least 64 characters",
        "orders.amount: treatment null needs a nullable column",
        "orders.customer_id -> customers.uuid: customers has no column uuid",
        "table refunds: not reachable from any identity (declare an identity column or a "
        "reference to a table that is)",
    ]


def test_problems_name_tables_and_columns_never_values(shop_url: str, tmp_path: Path) -> None:
    data = shop(customers=customers(name={"category": "customer_profile", "treatment": "mark"},
                                    email={"identity": "email"}))
    data["tables"]["customers"].pop("delete_rows")
    problems = refused(shop_url, data, tmp_path)
    assert problems == [
        "customers.email: holds an identity that erasure would leave (give it a category and "
        "treatment, or the table delete_rows)",
        "customers.name: treatment mark needs a timestamp column",
    ]
    held = {str(value) for row in CUSTOMERS for value in row.values()}
    assert not any(value in problem for problem in problems for value in held if len(value) > 3)


def test_the_file_shape_is_checked_before_the_database(tmp_path: Path) -> None:
    data = shop(customers=customers(name={"category": "Customer Profile", "treatment": "shred"}))
    data["role"] = "partner"
    with pytest.raises(DatasetError) as error:
        parse_dataset(data)
    assert [problem.split(":")[0] for problem in error.value.problems] == [
        "role", "tables.customers.columns.name.category", "tables.customers.columns.name.treatment"]


def test_references_in_a_cycle_are_refused(shop_url: str, tmp_path: Path) -> None:
    data = shop(customers={**shop()["tables"]["customers"],
                           "references": {"id": "orders.customer_id"}})
    assert refused(shop_url, data, tmp_path) == [
        "references form a cycle through tables customers, orders"]


# --- warnings: lookups without an index ---------------------------------------------------


def test_unindexed_lookups_are_reported_and_logged_without_values(
        shop_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with captured_logs(monkeypatch, dataset_schema) as logs:
        started = connector(shop_url, shop(), tmp_path)
    assert started.warnings == EXPECTED_WARNINGS
    assert [(entry["event"], entry["warning"]) for entry in logs] == [
        ("dataset_warning", warning) for warning in EXPECTED_WARNINGS]
    engine = create_engine(shop_url)
    OPENED.append(engine)  # closed before the database is dropped
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE INDEX ix_customers_phone ON customers (phone)")
        connection.exec_driver_sql(
            "CREATE INDEX ix_customers_created ON customers (customer_account, created_at)")
        connection.exec_driver_sql(  # an expression index counts too
            "CREATE INDEX ix_orders_day ON orders (lower(shipping_address), ordered_at)")
    assert connector(shop_url, shop(), tmp_path).warnings == EXPECTED_WARNINGS[:2]
    with engine.begin() as connection:  # identities indexed as the lookup matches them
        connection.exec_driver_sql(
            f"CREATE INDEX ix_customers_email_lookup ON customers ({EMAIL_LOOKUP})")
        connection.exec_driver_sql(
            f"CREATE INDEX ix_customers_phone_lookup ON customers (customer_account, "
            f"{PHONE_LOOKUP})")
    assert connector(shop_url, shop(), tmp_path).warnings == []


def test_a_foreign_key_the_file_does_not_declare_is_reported(
        with_messages_url: str, tmp_path: Path) -> None:
    started = connector(with_messages_url, shop(), tmp_path)
    assert started.warnings == [*EXPECTED_WARNINGS, (
        "messages.customer_id: a foreign key into customers that the dataset does not declare "
        "(it may refuse erasing deletions)")]
    declared = connector(with_messages_url, with_messages(), tmp_path)
    assert declared.warnings == [
        *EXPECTED_WARNINGS, "messages.sent_at: date column without an index",
        "messages.customer_id: reference column without an index"]


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "shop.yaml"
    broken.write_text("connector: shop\ntables: {customers: [\n")
    with pytest.raises(DatasetError) as error:
        dataset_connector(broken)
    assert error.value.problems == ["shop.yaml: ParserError at line 3"]
