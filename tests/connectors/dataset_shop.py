"""The example shop's database for the dataset connector's tests: its tables (created here, by
SQL, as the affiliate's application would), its rows and helpers reading them back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, select

from connectors.dataset import DatasetConnector, parse_dataset
from dsr.blobstore import LocalBlobStore
from dsr.connector_contract import Scope
from dsr.models import Identity, IdentityType
from tests.connectors.helpers import NOW, SECRET

SHOP_FILE = Path(__file__).parents[2] / "connectors" / "datasets" / "shop.yaml"
SHOP = yaml.safe_load(SHOP_FILE.read_text())
ACCOUNT, OTHER_ACCOUNT = "acct-a", "acct-b"
EMAIL = "maya.okafor@example.net"
PHONE = "+31612345678"

SCHEMA = [
    """CREATE TABLE customers (
        id INTEGER PRIMARY KEY,
        customer_account VARCHAR(64) NOT NULL,
        email VARCHAR(254),
        name VARCHAR(200),
        phone VARCHAR(32),
        address VARCHAR(300),
        newsletter_opt_out_at TIMESTAMP,
        created_at TIMESTAMP NOT NULL)""",
    "CREATE INDEX ix_customers_subject ON customers (customer_account, email)",
    """CREATE TABLE orders (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE RESTRICT,
        shipping_address VARCHAR(300),
        amount NUMERIC(10, 2) NOT NULL,
        ordered_at TIMESTAMP NOT NULL)""",
    "CREATE INDEX ix_orders_customer ON orders (customer_id)",
]
# Communications, for per-country rules: where each message ended decides its retention. On
# PostgreSQL their times are kept with their offset (timestamptz), as many applications do.
MESSAGES = [
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE RESTRICT,
        body TEXT,
        country VARCHAR(2),
        sent_at {stamp} NOT NULL,
        anonymised_at TIMESTAMP)""",
]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def at(text: str) -> datetime:
    """A stored time: naive UTC, as the shop's TIMESTAMP columns keep it."""
    return datetime.fromisoformat(text)


# Maya is a customer of two of the group's customers (A and B) with the same email address;
# at A she typed her number in national form and her address in capitals. Sam is A's too.
CUSTOMERS = [
    dict(id=1, customer_account=ACCOUNT, email="Maya.Okafor@Example.NET", name="Maya Okafor",
         phone="06 1234 5678", address="Keizersgracht 1", created_at=at("2019-03-01 09:00")),
    dict(id=2, customer_account=OTHER_ACCOUNT, email=EMAIL, name="Maya O.",
         phone=PHONE, address="Keizersgracht 1", created_at=at("2021-05-01 12:00")),
    dict(id=3, customer_account=ACCOUNT, email="sam@example.org", name="Sam Reyes",
         phone="+44 7700 900123", address="1 High Street", created_at=at("2022-07-01 08:30")),
]
ORDERS = [
    dict(id=10, customer_id=1, shipping_address="Keizersgracht 1", amount=Decimal("12.50"),
         ordered_at=at("2019-04-01 10:00")),
    dict(id=11, customer_id=1, shipping_address="Prinsengracht 2", amount=Decimal("40.00"),
         ordered_at=at("2026-10-01 10:00")),
    dict(id=12, customer_id=2, shipping_address="Keizersgracht 1", amount=Decimal("9.99"),
         ordered_at=at("2025-01-01 10:00")),
    dict(id=13, customer_id=3, shipping_address="1 High Street", amount=Decimal("5.00"),
         ordered_at=at("2024-01-01 10:00")),
]
MESSAGE_ROWS = [
    dict(id=20, customer_id=1, body="Where is my parcel?", country="nl",
         sent_at=utc("2024-01-01T10:00")),
    dict(id=21, customer_id=1, body="Thanks!", country="IT", sent_at=utc("2024-01-02T10:00")),
    dict(id=22, customer_id=1, body="Hello", country=None, sent_at=utc("2026-11-01T10:00")),
    dict(id=23, customer_id=3, body="Sam's question", country="NL",
         sent_at=utc("2024-01-01T10:00")),
]


# The engines a test opened (the shop's and its connectors'), closed before its database is
# dropped: ``opened_database``.
OPENED: list[Engine] = []


@contextmanager
def opened_database(url: str, messages: bool = False) -> Iterator[tuple[str, Engine]]:
    """The shop's database at ``url``, and every engine opened on it closed afterwards."""
    try:
        yield url, build(url, messages)
    finally:
        while OPENED:
            OPENED.pop().dispose()


def build(url: str, messages: bool = False) -> Engine:
    """The shop's tables and rows, created as its own application would."""
    engine = create_engine(url)
    OPENED.append(engine)
    with engine.begin() as connection:
        stamp = ("TIMESTAMP WITH TIME ZONE" if engine.dialect.name == "postgresql"
                 else "TIMESTAMP")
        for statement in SCHEMA + (MESSAGES if messages else []):
            connection.exec_driver_sql(statement.format(stamp=stamp))
        tables = reflect(connection)
        connection.execute(tables["customers"].insert(), CUSTOMERS)
        connection.execute(tables["orders"].insert(), ORDERS)
        if messages:
            connection.execute(tables["messages"].insert(), MESSAGE_ROWS)
    return engine


def reflect(engine: Engine | Connection) -> dict[str, Table]:
    metadata = MetaData()
    metadata.reflect(engine, only=lambda name, _: name in ("customers", "orders", "messages"))
    return dict(metadata.tables)


def dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of the shop's tables, by primary key."""
    with engine.connect() as connection:
        return {name: [dict(row._mapping) for row in connection.execute(
                    select(table).order_by(*table.primary_key.columns))]
                for name, table in reflect(engine).items()}


def shop(**changes: Any) -> dict[str, Any]:
    """The example file's declarations, with tables changed (None drops one)."""
    data = yaml.safe_load(SHOP_FILE.read_text())
    for name, table in changes.items():
        if table is None:
            data["tables"].pop(name)
        else:
            data["tables"][name] = table
    return data


def with_messages(**message_table: Any) -> dict[str, Any]:
    return shop(messages={
        "date_column": "sent_at", "country_column": "country",
        "references": {"customer_id": "customers.id"},
        "columns": {"body": {"category": "message_content", "treatment": "redact"}},
        **message_table})


def connector(url: str, data: dict[str, Any], folder: Path) -> DatasetConnector:
    cls = DatasetConnector.for_dataset(parse_dataset(data))
    opened = cls(url, LocalBlobStore(folder / "blobs"), SECRET)
    OPENED.append(opened.store.engine)
    return opened


def scope(*identities: tuple[IdentityType, str], account: str | None = ACCOUNT,
          request_id: str = "req-shop-1") -> Scope:
    return Scope(request_id=request_id, customer_account=account, as_of=NOW,
                 identities=[Identity(type=kind, value=value) for kind, value in identities])

