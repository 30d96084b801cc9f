"""Data-plane benchmark of a dataset-file connector, beside the SMS connector's.

A benchmark, not a test: it measures and reports, it asserts nothing about time.

    .venv/bin/python bench/data_plane_dataset.py [--records 1000000] [--customers 100000]
        [--out bench/results/data_plane_dataset.json] [--sms bench/results/data_plane.json]

1. Builds a fresh web shop (SQLite, WAL, in a temp dir) connected by the example dataset file
   ``connectors/datasets/shop.yaml``: ``--records`` rows across its two tables, ``--customers``
   customers (end users of six customer accounts) and their orders, created by SQL as the
   shop's own application would. Orders are written in ``ordered_at`` order (as they come), so
   one customer's orders are scattered over the table. Identities are stored as people typed
   them (emails in any case, phones with spaces or in national form). The indexes are those
   the dataset check asks for; its warnings are printed (none expected). ``--plain-indexes``
   indexes the identity columns as they are, not as the lookup matches them.
2. Times ``discover`` and ``erase`` of one subject (an email address and a phone number) as
   ``bench/data_plane.py`` does: the first call on a fresh connector and ``--runs`` warm calls,
   every erase of a different customer (40 orders deleted, then the customer). Shows the SQLite
   query plan of every statement the engine runs for a discover, an export and an erase.
3. Exports customers with exactly 10,000 and 100,000 orders, each in fresh subprocesses: peak
   RSS and time in one, tracemalloc peak of the call in another.
4. Prints a table beside the SMS connector's figures (``--sms``, as ``bench/data_plane.py``
   last wrote them) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from data_plane_shared import (  # noqa: E402
    export_figures,
    export_text,
    measure_exports,
    print_table,
    profiled,
    remove_tree,
    summary,
    timed,
    under_load,
)
from machine import machine  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.dialects.sqlite.base import SQLiteDialect  # noqa: E402

from connectors.dataset import DatasetConnector, dataset_connector  # noqa: E402
from connectors.dataset.matching import lookup_sql  # noqa: E402
from dsr.blobstore import LocalBlobStore  # noqa: E402
from dsr.connector_contract import AccessInput, EraseInput, EraseRule, Scope  # noqa: E402
from dsr.models import Identity, IdentityType  # noqa: E402

SHOP_FILE = ROOT / "connectors" / "datasets" / "shop.yaml"
Shop = dataset_connector(SHOP_FILE)
SECRET = b"bench-secret-not-for-production"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HISTORY = timedelta(days=425)  # of orders, as the SMS store's messages
SIGNED_UP = timedelta(days=730)  # customers signed up over the two years before
BATCH = 50_000
ACCOUNTS = [f"CUST-{n:04d}" for n in range(1, 7)]
SUBJECT_ACCOUNT, EXPORT_ACCOUNT = ACCOUNTS[0], ACCOUNTS[2]
# The subject: a customer at SUBJECT_ACCOUNT (email in capitals, phone in national form) and,
# with the same email, at another account (not counted).
SUBJECT_EMAIL, SUBJECT_PHONE = "maya.okafor@example.net", "+31612345678"
SUBJECT_ORDERS, SUBJECT_ELSEWHERE = 40, 10
ERASE_ORDERS = 40  # per erase subject, at SUBJECT_ACCOUNT
SCHEMA = [  # the shop's tables (tests/connectors/dataset_shop.py), as its application has them
    """CREATE TABLE customers (
        id INTEGER PRIMARY KEY,
        customer_account VARCHAR(64) NOT NULL,
        email VARCHAR(254),
        name VARCHAR(200),
        phone VARCHAR(32),
        address VARCHAR(300),
        newsletter_opt_out_at TIMESTAMP,
        created_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE orders (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE RESTRICT,
        shipping_address VARCHAR(300),
        amount NUMERIC(10, 2) NOT NULL,
        ordered_at TIMESTAMP NOT NULL)""",
]
# The indexes the dataset check asks for: identity columns as the lookup matches them
# (``lookup_sql``; within the customer), the customer, date and reference columns.
EMAIL_LOOKUP, PHONE_LOOKUP = (
    lookup_sql(name, kind, SQLiteDialect())
    for name, kind in (("email", IdentityType.EMAIL), ("phone", IdentityType.PHONE))
)
INDEXES = [
    f"CREATE INDEX ix_customers_email ON customers (customer_account, {EMAIL_LOOKUP})",
    f"CREATE INDEX ix_customers_phone ON customers (customer_account, {PHONE_LOOKUP})",
    "CREATE INDEX ix_customers_created ON customers (created_at)",
    "CREATE INDEX ix_orders_customer ON orders (customer_id)",
    "CREATE INDEX ix_orders_ordered ON orders (ordered_at)",
]
PLAIN_INDEXES = [  # --plain-indexes: the identity columns as stored
    "CREATE INDEX ix_customers_email ON customers (customer_account, email)",
    "CREATE INDEX ix_customers_phone ON customers (customer_account, phone)",
    *INDEXES[2:],
]
STREETS = ("Keizersgracht", "Prinsengracht", "High Street", "Hauptstrasse", "Rue de Rivoli")
CITIES = ("Amsterdam", "Utrecht", "London", "Berlin", "Paris")


# --- the store -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A customer row to seed: at which account, identities as stored, how many orders."""

    account: str
    email: str
    phone: str
    orders: int


def erase_identities(n: int) -> tuple[str, str]:
    return f"erase.{n:04d}@example.net", f"+3162{n:07d}"


def export_identities(size: int) -> tuple[str, str]:
    return f"export.{size}@example.net", f"+3163{size % 10_000_000:07d}"


def national(phone: str) -> str:
    """A Dutch E.164 number as typed nationally: ``06 1234 5678``."""
    digits = "0" + phone[3:]
    return f"{digits[:2]} {digits[2:6]} {digits[6:]}"


def specials(erase_subjects: int, export_sizes: list[int]) -> list[Person]:
    people = [
        Person(SUBJECT_ACCOUNT, "Maya.Okafor@Example.NET", national(SUBJECT_PHONE),
               SUBJECT_ORDERS),
        Person(ACCOUNTS[1], SUBJECT_EMAIL, SUBJECT_PHONE, SUBJECT_ELSEWHERE),
    ]  # fmt: skip
    for n in range(erase_subjects):
        email, phone = erase_identities(n)
        people.append(Person(SUBJECT_ACCOUNT, email, national(phone), ERASE_ORDERS))
    for size in export_sizes:
        email, phone = export_identities(size)
        people.append(Person(EXPORT_ACCOUNT, email.upper(), phone, size))
    return people


def background(rng: random.Random, n: int) -> Person:
    email = f"customer.{n}@example.com"
    roll = rng.random()
    if roll < 0.5:
        phone = national(f"+316{rng.randrange(10**8):08d}")
    elif roll < 0.8:
        phone = f"+31 6 {rng.randrange(10**4):04d} {rng.randrange(10**4):04d}"
    else:
        phone = f"+44 7700 {rng.randrange(10**6):06d}"
    return Person(
        ACCOUNTS[rng.randrange(len(ACCOUNTS))],
        email.title() if rng.random() < 0.1 else email,
        phone,
        0,
    )


def build_store(
    db: Path,
    records: int,
    customers: int,
    erase_subjects: int,
    export_sizes: list[int],
    seed: int,
    indexes: list[str],
) -> dict[str, Any]:
    """A fresh shop of ``records`` rows (``customers`` of them customers); returns what was
    seeded and how long it took."""
    started = time.perf_counter()
    rng = random.Random(seed)
    people = specials(erase_subjects, export_sizes)
    orders = records - customers
    special_orders = sum(person.orders for person in people)
    if customers < len(people) + 1000 or orders < special_orders:
        raise SystemExit(f"--records must leave at least {special_orders:,} orders")
    people += [background(rng, n) for n in range(customers - len(people))]
    rng.shuffle(people)
    # customer ids in sign-up order; each order slot names its customer's id
    slots = [id_ for id_, person in enumerate(people, start=1) for _ in range(person.orders)]
    others = [id_ for id_, person in enumerate(people, start=1) if not person.orders]
    slots += [others[rng.randrange(len(others))] for _ in range(orders - len(slots))]
    for id_ in range(len(slots) - 1, 0, -1):  # shuffle in place (Random.shuffle, without
        j = rng.randrange(id_ + 1)  # a list copy the size of the store)
        slots[id_], slots[j] = slots[j], slots[id_]
    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    for statement in SCHEMA:
        connection.execute(statement)
    connection.execute("BEGIN")
    signed_up = NOW - HISTORY - SIGNED_UP
    step = SIGNED_UP.total_seconds() / customers
    connection.executemany(
        "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (_customer(rng, id_, person, signed_up + timedelta(seconds=id_ * step))
         for id_, person in enumerate(people, start=1)),
    )  # fmt: skip
    connection.execute("COMMIT")
    start, step = NOW - HISTORY, HISTORY.total_seconds() / max(1, orders)
    for offset in range(0, orders, BATCH):
        rows = [_order(rng, i + 1, slots[i], start + timedelta(seconds=i * step))
                for i in range(offset, min(orders, offset + BATCH))]  # fmt: skip
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", rows)
        connection.execute("COMMIT")
    loaded = time.perf_counter()
    for statement in indexes:  # load first, index after: much faster than indexing per row
        connection.execute(statement)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    finished = time.perf_counter()
    return {
        "records": records,
        "customers": customers,
        "orders": orders,
        "customer_accounts": len(ACCOUNTS),
        "subject_orders": SUBJECT_ORDERS,
        "subject_orders_at_other_account": SUBJECT_ELSEWHERE,
        "erase_subjects": erase_subjects,
        "erase_subject_orders": ERASE_ORDERS,
        "export_subject_orders": export_sizes,
        "indexes": indexes,
        "load_seconds": round(loaded - started, 2),
        "index_seconds": round(finished - loaded, 2),
        "build_seconds": round(finished - started, 2),
        "db_bytes": db.stat().st_size,
    }


def _customer(rng: random.Random, id_: int, person: Person, created: datetime) -> tuple[Any, ...]:
    return (
        id_,
        person.account,
        person.email,
        f"Customer {id_}",
        person.phone,
        f"{STREETS[rng.randrange(len(STREETS))]} {rng.randrange(1, 300)}, "
        f"{CITIES[rng.randrange(len(CITIES))]}",
        created.strftime("%Y-%m-%d %H:%M:%S.%f") if rng.random() < 0.05 else None,
        created.strftime("%Y-%m-%d %H:%M:%S.%f"),  # SQLAlchemy's SQLite DATETIME format
    )


def _order(rng: random.Random, id_: int, customer: int, ordered: datetime) -> tuple[Any, ...]:
    return (
        id_,
        customer,
        f"{STREETS[rng.randrange(len(STREETS))]} {rng.randrange(1, 300)}, "
        f"{CITIES[rng.randrange(len(CITIES))]}",
        f"{rng.randrange(100, 50_000) / 100:.2f}",
        ordered.strftime("%Y-%m-%d %H:%M:%S.%f"),
    )


# --- measurements --------------------------------------------------------------------------


def scope(request_id: str, email: str, phone: str, account: str) -> Scope:
    return Scope(
        request_id=request_id,
        identities=[
            Identity(type=IdentityType.EMAIL, value=email),
            Identity(type=IdentityType.PHONE, value=phone),
        ],
        customer_account=account,
        as_of=NOW,
    )


def subject_scope(request_id: str) -> Scope:
    return scope(request_id, SUBJECT_EMAIL, SUBJECT_PHONE, SUBJECT_ACCOUNT)


def connector(db: Path, blobs: Path) -> DatasetConnector:
    return Shop(f"sqlite:///{db}", LocalBlobStore(blobs), SECRET)


def erase_call(n: int) -> EraseInput:
    return EraseInput(
        scope=scope(f"BENCH-ERASE-{n:04d}", *erase_identities(n), SUBJECT_ACCOUNT),
        rules=[EraseRule(category=category) for category in Shop.categories],
    )


def measure_discover(db: Path, blobs: Path, runs: int) -> dict[str, Any]:
    subject = subject_scope("BENCH-DISCOVER")
    figures: dict[str, Any] = {}
    with under_load(figures):
        shop = connector(db, blobs)
        first, discovery = timed(lambda: shop.discover(subject))
        warm = [timed(lambda: shop.discover(subject))[0] for _ in range(runs)]
        shop.store.engine.dispose()
    figures.update(summary(first, warm))
    figures["records_found"] = {h.category: h.records for h in discovery.holdings}
    return figures


def measure_erase(db: Path, blobs: Path, runs: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    expected = {"orders": ERASE_ORDERS, "customer_profile": 1}
    with under_load(figures):
        shop = connector(db, blobs)
        first, erased = timed(lambda: shop.erase(erase_call(0)))
        warm: list[float] = []
        for n in range(1, runs + 1):
            elapsed, result = timed(partial(shop.erase, erase_call(n)))
            if result.already_done or result.erased != expected:
                raise RuntimeError(f"an erase run did not erase its subject: {result}")
            warm.append(elapsed)
        shop.store.engine.dispose()
    figures.update(summary(first, warm))
    figures["erased_first"] = erased.erased
    figures["rules"] = "both categories, before=None (orders deleted, then the customer)"
    return figures


def statements_and_plans(db: Path, blobs: Path, erase_subject: int) -> dict[str, Any]:
    """Every statement the engine runs for one discover, one export (of the subject's 40
    orders) and one erase, with its SQLite query plan: a reader sees each lookup use an
    index, and how many statements a call makes."""
    shop = connector(db, blobs)
    engine = shop.store.engine
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    out: dict[str, Any] = {}
    for name, call in (
        ("discover", lambda: shop.discover(subject_scope("BENCH-PLANS"))),
        ("access", lambda: shop.access(AccessInput(scope=subject_scope("BENCH-PLANS")))),
        ("erase", lambda: shop.erase(erase_call(erase_subject))),
    ):
        seen.clear()
        event.listen(engine, "before_cursor_execute", capture)
        call()
        event.remove(engine, "before_cursor_execute", capture)
        found = []
        with engine.connect() as connection:
            for statement, parameters in seen:
                if not statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
                    continue  # BEGIN, INSERT into the operation log, COMMIT
                first = parameters[0] if isinstance(parameters, list) else parameters
                steps = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", first)
                found.append({
                    "sql": short_sql(statement),
                    "plan": "\n".join(step[-1] for step in steps.all()),
                })  # fmt: skip
        out[name] = {"statements_run": len(seen), "planned": found}
    engine.dispose()
    return out


def short_sql(statement: str) -> str:
    """A statement on one line, a long list of parameters shortened: ``?, ... (40)``."""
    text = " ".join(statement.split())
    return re.sub(r"\?(?:, \?){3,}", lambda found: f"?, ... ({found.group(0).count('?')})", text)


def profile(db: Path, blobs: Path, runs: int, first_subject: int) -> dict[str, str]:
    """cProfile of warm discover and erase calls (top functions by cumulative time)."""
    shop = connector(db, blobs)
    subject = subject_scope("BENCH-DISCOVER")
    shop.discover(subject)
    out = profiled({
        "discover": lambda: [shop.discover(subject) for _ in range(runs)],
        "erase": lambda: [shop.erase(erase_call(first_subject + n)) for n in range(runs)],
    })  # fmt: skip
    shop.store.engine.dispose()
    return out


def export_child(db: str, blobs: str, size: int, mode: str) -> dict[str, Any]:
    """Run in a fresh interpreter: one export of the customer with ``size`` orders."""
    email, phone = export_identities(size)
    call = AccessInput(scope=scope(f"BENCH-EXPORT-{size}-{mode}", email, phone, EXPORT_ACCOUNT))
    return export_figures(lambda: connector(Path(db), Path(blobs)), call, Path(blobs), mode)


# --- the report ----------------------------------------------------------------------------


def warm_text(figures: dict[str, Any]) -> str:
    return (
        f"median {figures['warm_median_ms']} ms, p95 {figures['warm_p95_ms']} ms, "
        f"max {figures['warm_max_ms']} ms; first {figures['first_ms']} ms "
        f"(load {figures['loadavg_before']} -> {figures['loadavg_after']})"
    )


def export_cell(figures: dict[str, Any]) -> str:
    return export_text(figures) + (
        f" (load {figures['loadavg_before']} -> {figures['loadavg_after']})"
        if "loadavg_before" in figures else ""
    )  # fmt: skip


def side_by_side(sms: dict[str, Any] | None, shop: dict[str, Any]) -> Iterator[tuple[str, ...]]:
    """Rows: measure, target, the SMS connector's result, the dataset connector's."""
    store = shop["store"]
    none = "(no SMS figures: run bench/data_plane.py)"
    sms_store = sms["store"] if sms else None
    yield (
        "store",
        "1,000,000 rows",
        (
            f"{sms_store['records']:,} messages, one table, "
            f"{sms_store['db_bytes'] / 2**20:.0f} MiB (run {sms['started_at']})"
        )
        if sms and sms_store
        else none,
        f"{store['customers']:,} customers + {store['orders']:,} orders, "
        f"{store['db_bytes'] / 2**20:.0f} MiB, built in {store['build_seconds']} s",
    )
    for name, what in (("discover", "one subject"), ("erase", "one subject, all categories")):
        yield (
            f"{name} {what}, warm ({shop[name]['warm_runs']} runs)",
            "< 50 ms",
            warm_text(sms[name]) if sms else none,
            warm_text(shop[name]),
        )
    for size, figures in shop["export"].items():
        sms_figures = sms["export"].get(size) if sms else None
        yield (
            f"export {int(size):,} messages / orders",
            "memory flat",
            export_cell(sms_figures) if sms_figures else none,
            export_cell(figures),
        )
    yield ("dataset check warnings", "none", "-", "; ".join(shop["warnings"]) or "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "data_plane_dataset.json"
    )
    parser.add_argument("--sms", type=Path, default=ROOT / "bench" / "results" / "data_plane.json")
    parser.add_argument("--runs", type=int, default=20, help="warm runs per operation")
    parser.add_argument("--export-sizes", default="10000,100000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--plain-indexes",
        action="store_true",
        help="index identity columns as stored, not as the lookup matches them",
    )
    parser.add_argument("--profile", action="store_true", help="also cProfile warm calls")
    parser.add_argument("--keep", action="store_true", help="keep the temp store and print it")
    args = parser.parse_args()
    sizes = [int(size) for size in args.export_sizes.split(",") if size]
    plan_subject = 1 + args.runs
    erase_subjects = plan_subject + 1 + (args.runs if args.profile else 0)
    folder = Path(tempfile.mkdtemp(prefix="bench-data-plane-dataset-"))
    db, blobs = folder / "shop.db", folder / "blobs"
    indexes = PLAIN_INDEXES if args.plain_indexes else INDEXES
    try:
        results: dict[str, Any] = {
            "machine": machine(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "dataset": str(SHOP_FILE.relative_to(ROOT)),
        }
        print(f"building {args.records:,} rows in {db} ...", flush=True)
        results["store"] = build_store(
            db, args.records, args.customers, erase_subjects, sizes, args.seed, indexes
        )
        shop = connector(db, blobs)
        results["warnings"] = shop.warnings
        shop.store.engine.dispose()
        print("dataset check warnings:", results["warnings"] or "none", flush=True)
        results["discover"] = measure_discover(db, blobs, args.runs)
        results["erase"] = measure_erase(db, blobs, args.runs)
        results["statements"] = statements_and_plans(db, blobs, plan_subject)
        print("exporting in fresh subprocesses ...", flush=True)
        results["export"] = measure_exports("data_plane_dataset", db, blobs, sizes, "orders")
        if args.profile:
            results["profile"] = profile(db, blobs, args.runs, plan_subject + 1)
        results["targets"] = {
            "discover_and_erase_ms": 50,
            "export_memory": "peak at 100,000 close to peak at 10,000",
        }
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            remove_tree(folder)
    sms = json.loads(args.sms.read_text()) if args.sms.exists() else None
    print_table(
        f"Data plane, SMS connector beside a dataset-file connector ({SHOP_FILE.name})",
        ["measure", "target", "SMS (hand-written)", "shop (dataset file)"],
        side_by_side(sms, results),
    )
    for name, found in results["statements"].items():
        print(f"{name}: {found['statements_run']} statements, query plans:")
        for step in found["planned"]:
            print(f"  {step['sql']}\n    " + step["plan"].replace("\n", "\n    "))
    for name, text in results.get("profile", {}).items():
        print(f"--- cProfile {name} ({args.runs} warm calls) ---\n{text}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
