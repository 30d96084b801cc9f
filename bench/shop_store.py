"""The single-store benchmark's shop database (bench/single_store.py): a throwaway PostgreSQL
database with the shop's tables, seeded deterministically with fictional customers and
orders; the checks of what each request did to it; and the CPU its backends spent.

Everything is fictional: names from the shared population's lists, email addresses on example
domains, phone numbers only from the UK ranges Ofcom reserves for drama (1,000 numbers each).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import threading
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from orch_stack import cpu_seconds
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from connectors.dataset.matching import lookup_sql
from connectors.seeds.population import FIRST_NAMES, LAST_NAMES, EndUser
from dsr.blobstore import BlobStore
from dsr.models import IdentityType
from tests.connectors.dataset_shop import SCHEMA as SHOP_TABLES

# The role .ci/run creates in its cluster dsrtest (it may CREATE DATABASE).
DEFAULT_ADMIN_URL = "postgresql+psycopg://dsr:dsr@127.0.0.1:5433/postgres"

# The shop's tables as its application creates them, with the date columns' indexes the
# dataset check asks for (the sweep's).
SCHEMA = [
    *SHOP_TABLES,
    "CREATE INDEX ix_customers_created ON customers (created_at)",
    "CREATE INDEX ix_orders_ordered ON orders (ordered_at)",
]


def _lookup_indexes(engine: Engine) -> list[str]:
    """The indexes the dataset check asks for: email and phone as the lookup matches them
    (``lookup_sql``), within the customer."""
    return [
        f"CREATE INDEX ix_customers_{name} ON customers (customer_account, "
        f"({lookup_sql(name, kind, engine.dialect)}))"
        for name, kind in (("email", IdentityType.EMAIL), ("phone", IdentityType.PHONE))
    ]


# UK numbers reserved for drama (E.164 prefix, as stored: "+44 113 496 0xxx").
DRAMA_RANGES = ("7700 900", "20 7946 0", "113 496 0", "114 496 0", "115 496 0", "116 496 0",
                "117 496 0", "118 496 0", "121 496 0", "131 496 0", "141 496 0", "151 496 0",
                "161 496 0")
STREETS = ("Station Road", "High Street", "Mill Lane", "Church Street", "Park Avenue",
           "Keizersgracht", "Hauptstrasse", "Rue de la Paix", "Orchard Road", "Elm Street")
CITIES = ("Amsterdam", "Berlin", "London", "Leeds", "Singapore", "Lyon", "Utrecht", "Hamburg")
DOMAINS = ("example.com", "example.org", "example.net")
EPOCH = datetime(2019, 1, 1)


@dataclass
class Customer:
    id: int
    account: str
    email: str  # as stored (sometimes capitalised)
    name: str
    phone: str  # as stored, with spaces
    address: str
    created_at: datetime
    orders: dict[int, str] = field(default_factory=dict)  # order id -> shipping address

    def end_user(self) -> EndUser:
        """The customer as ``orch_stack.controller_request`` names an end user: the email
        address and the phone number (E.164), no channel id."""
        first, _, last = self.name.partition(" ")
        return EndUser(first_name=first, last_name=last, phone=self.phone.replace(" ", ""),
                       email=self.email.lower(), country="GB", customers=(self.account,))


@dataclass
class Shop:
    url: str  # the shop's database, for the connector (DSR_CONNECTOR_SHOP_URL)
    customers: dict[int, Customer]
    orders: int


@contextlib.contextmanager
def throwaway_database(admin_url: str) -> Iterator[str]:
    """A new database on the server of ``admin_url`` (its role may CREATE DATABASE), dropped
    afterwards with whatever is still connected to it; yields its URL."""
    name = f"bench_shop_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        admin.dispose()


def build_shop(url: str, customers: int, orders: int, accounts: tuple[str, ...],
               seed: int = 18) -> Shop:
    """The shop's tables and rows: ``customers`` spread over ``accounts``, each with one
    order and the rest of the ``orders`` spread at random; the same rows for the same seed."""
    if customers > 1000 * len(DRAMA_RANGES):
        raise SystemExit(f"at most {1000 * len(DRAMA_RANGES)} customers: phones run out")
    rng = random.Random(seed)
    phones = rng.sample(range(1000 * len(DRAMA_RANGES)), customers)
    shop: dict[int, Customer] = {}
    for number in range(1, customers + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = f"{first}.{last.replace(' ', '')}.{number}"
        slot = phones[number - 1]
        shop[number] = Customer(
            id=number, account=accounts[number % len(accounts)],
            email=f"{local if rng.random() < 0.2 else local.lower()}@{rng.choice(DOMAINS)}",
            name=f"{first} {last}",
            phone=f"+44 {DRAMA_RANGES[slot // 1000]}{slot % 1000:03d}",
            address=_address(rng),
            created_at=EPOCH + timedelta(days=rng.randrange(1800), minutes=rng.randrange(1440)))
    order_rows = []
    for number in range(1, orders + 1):
        owner = shop[number if number <= customers else rng.randint(1, customers)]
        shipping = owner.address if rng.random() < 0.8 else _address(rng)
        owner.orders[number] = shipping
        order_rows.append({
            "id": number, "customer_id": owner.id, "shipping_address": shipping,
            "amount": Decimal(rng.randrange(500, 50_000)) / 100,
            "ordered_at": owner.created_at + timedelta(days=rng.randrange(1, 700))})
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in [*SCHEMA, *_lookup_indexes(engine)]:
                connection.exec_driver_sql(statement)
            connection.execute(text(
                "INSERT INTO customers (id, customer_account, email, name, phone, address, "
                "created_at) VALUES (:id, :account, :email, :name, :phone, :address, "
                ":created_at)"), [_row(c) for c in shop.values()])
            connection.execute(text(
                "INSERT INTO orders VALUES (:id, :customer_id, :shipping_address, :amount, "
                ":ordered_at)"), order_rows)
            connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return Shop(url, shop, orders)


def _address(rng: random.Random) -> str:
    return f"{rng.randint(1, 250)} {rng.choice(STREETS)}, {rng.choice(CITIES)}"


def _row(customer: Customer) -> dict[str, Any]:
    return {"id": customer.id, "account": customer.account, "email": customer.email,
            "name": customer.name, "phone": customer.phone, "address": customer.address,
            "created_at": customer.created_at}


# --- the checks ----------------------------------------------------------------------------


def check_erasures(engine: Engine, shop: Shop, erased: list[int], all_erased: int,
                   all_orders_erased: int) -> list[str]:
    """Problems with the erased customers' rows (name, phone and address null, email a
    pseudonym, their orders' shipping addresses null, nothing deleted) and with anyone
    else's (``all_*``: how many rows all erasures so far should have anonymised)."""
    problems = []
    with engine.connect() as connection:
        rows = {row.id: row for row in connection.execute(text(
            "SELECT id, email, name, phone, address FROM customers WHERE id = ANY(:ids)"),
            {"ids": erased})}
        shipping = connection.execute(text(
            "SELECT customer_id, id, shipping_address FROM orders WHERE customer_id = ANY(:ids)"),
            {"ids": erased}).all()
        counts = connection.execute(text(
            "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), "
            "(SELECT count(*) FROM customers WHERE name IS NULL), "
            "(SELECT count(*) FROM orders WHERE shipping_address IS NULL)")).one()
    for customer_id in erased:
        row = rows.get(customer_id)
        if row is None:
            problems.append(f"customer {customer_id}: row deleted")
        elif (row.name, row.phone, row.address) != (None, None, None):
            problems.append(f"customer {customer_id}: name, phone or address left")
        elif row.email in (None, shop.customers[customer_id].email):
            problems.append(f"customer {customer_id}: email not a pseudonym")
    left = [order for _, order, address in shipping if address is not None]
    expected = sum(len(shop.customers[c].orders) for c in erased)
    if left or len(shipping) != expected:
        problems.append(f"orders: {len(left)} shipping addresses left, {len(shipping)} of "
                        f"{expected} orders found")
    if tuple(counts) != (len(shop.customers), shop.orders, all_erased, all_orders_erased):
        problems.append(f"whole shop: (customers, orders, names null, shipping null) is "
                        f"{tuple(counts)}, expected {len(shop.customers), shop.orders, all_erased, all_orders_erased}")  # noqa: E501
    return problems


def check_package(blobs: BlobStore, request_id: str, customer: Customer) -> list[str]:
    """Problems with one access package: opened from the blob store, it must hold the
    customer's row (email, name, phone, address as stored) and exactly its orders."""
    with blobs.open_reader(blobs.ref(f"packages/{request_id}.zip")) as sealed:
        archive = zipfile.ZipFile(io.BytesIO(sealed.read()))
    records = json.loads(archive.read("shop.json"))
    profile = [r["record"] for r in records if r["table"] == "customers"]
    orders = {r["record"]["id"]: r["record"]["shipping_address"]
              for r in records if r["table"] == "orders"}
    want = {"id": customer.id, "email": customer.email, "name": customer.name,
            "phone": customer.phone, "address": customer.address}
    problems = []
    if len(profile) != 1 or {k: profile[0].get(k) for k in want} != want:
        problems.append(f"{request_id}: customer row missing or different")
    if orders != customer.orders:
        problems.append(f"{request_id}: {len(orders)} orders, expected {len(customer.orders)}")
    if sorted(archive.namelist()) != ["manifest.json", "shop.json", "shop/customer_profile.csv",
                                      "shop/orders.csv"]:
        problems.append(f"{request_id}: package holds {sorted(archive.namelist())}")
    return problems


# --- the database's CPU --------------------------------------------------------------------


class BackendCpu:
    """CPU seconds of the backends serving one database, between ``start`` and ``stop``:
    polled from pg_stat_activity (through a connection to another database, not counted)
    every ``every`` seconds, each backend's /proc times read; a backend that ends between
    two polls loses what it spent after the last one. ``cluster`` also gives the whole
    cluster's CPU (the postmaster, its live children and those it reaped: other users'
    work on a shared cluster included)."""

    def __init__(self, admin_url: str, database: str, every: float = 0.2) -> None:
        self.engine = create_engine(admin_url, pool_size=1)
        self.database, self.every = database, every
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.postmaster: int | None = None
        self.cluster_before = 0.0

    def start(self) -> BackendCpu:
        for pid in self._poll():  # backends already there count from now
            self.first[pid] = self.last[pid]
        self.postmaster = self._postmaster()
        self.cluster_before = self._cluster()
        self.thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self.done.set()
        self.thread.join()
        self._poll()
        cluster = self._cluster() - self.cluster_before
        self.engine.dispose()
        return {"cpu_seconds": round(sum(self.last[p] - self.first.get(p, 0.0)
                                         for p in self.last), 2),
                "backends_seen": len(self.last), "cluster_cpu_seconds": round(cluster, 2)}

    def _run(self) -> None:
        while not self.done.wait(self.every):
            self._poll()

    def _poll(self) -> list[int]:
        with self.engine.connect() as connection:
            pids = connection.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :db"),
                {"db": self.database}).scalars().all()
        for pid in pids:
            if Path(f"/proc/{pid}").exists():
                self.last[pid] = max(self.last.get(pid, 0.0), cpu_seconds(pid, False))
        return list(pids)

    def _postmaster(self) -> int | None:
        with self.engine.connect() as connection:
            own = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        try:
            return int(Path(f"/proc/{own}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return None  # the server is on another machine: no cluster figure

    def _cluster(self) -> float:
        if self.postmaster is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime
        return cpu_seconds(self.postmaster) + reaped
