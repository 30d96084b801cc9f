"""Data-plane benchmark of the SMS connector: discover, erase and export at scale.

A benchmark, not a test: it measures and reports, it asserts nothing about time.

    .venv/bin/python bench/data_plane.py [--records 1000000] [--out bench/results/data_plane.json]

1. Builds a fresh SMS store (SQLite, WAL, in a temp dir) with ``--records`` messages across six
   customers and many end users, in ``sent_at`` order (as traffic arrives), so one subject's
   messages are scattered over the table.
2. Times ``discover`` and ``erase`` of one subject: the first call on a fresh connector (new
   engine, nothing compiled or pooled yet) and ``--runs`` warm calls. Every erase is of a
   different subject (never the idempotent no-op path). Shows the SQLite query plans.
3. Exports subjects with exactly 10,000 and 100,000 messages, each in a fresh subprocess:
   peak RSS (VmHWM; ``ru_maxrss`` too) and time in one child, tracemalloc peak of the call in
   another (tracemalloc slows the call, so it is not timed).
4. Prints a table and writes JSON (machine, Python, counts, every figure).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
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
    query_plans,
    remove_tree,
    summary,
    timed,
    under_load,
)
from machine import machine  # noqa: E402
from sqlalchemy import ClauseElement, func, select  # noqa: E402

from connectors.sms import (  # noqa: E402
    CATEGORIES,
    Message,
    SmsConnector,
    holds,
    subject_messages,
    subject_where,
)
from dsr.blobstore import LocalBlobStore  # noqa: E402
from dsr.connector_contract import AccessInput, EraseInput, EraseRule, Scope  # noqa: E402
from dsr.models import Identity, IdentityType  # noqa: E402

SECRET = b"bench-secret-not-for-production"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HISTORY = timedelta(days=425)
BATCH = 50_000
CUSTOMERS = [f"CUST-{n:04d}" for n in range(1, 7)]
SUBJECT_CUSTOMER = CUSTOMERS[0]
EXPORT_CUSTOMER = CUSTOMERS[2]
SUBJECT_PHONE = "+15550000001"
SUBJECT_MESSAGES = 40  # at SUBJECT_CUSTOMER; plus some at another customer, not counted
SUBJECT_ELSEWHERE = 10
ERASE_MESSAGES = 40  # per erase subject, at SUBJECT_CUSTOMER
MESSAGES_PER_END_USER = 20  # background: about this many messages per end user
COLUMNS = (
    "customer_account", "end_user_phone", "direction", "sender_id", "content", "sent_at",
    "status", "operator", "route", "segments", "country_ended", "cell_id", "latitude",
    "longitude", "anonymised_at",
)  # fmt: skip
TEXTS = (
    "Your parcel {ref} arrives today between 10:00 and 12:00.",
    "Your verification code is {code}. Never share this code.",
    "Reminder: your check-up is on Friday at 9:30. Reply C to confirm.",
    "Flight BF{code} is on time. Your booking reference is {ref}.",
    "Your order {ref} is being prepared and will arrive in about 25 minutes.",
    "C", "YES", "STOP", "Thanks!", "Where is my order?",
)  # fmt: skip
COUNTRIES = ("NL", "DE", "GB", "US", "SG", "FR")
OPERATORS = ("KPN", "Telekom", "EE", "Verizon", "Singtel", "Orange")


# --- the store -----------------------------------------------------------------------------


def erase_phone(n: int) -> str:
    return f"+1555001{n:04d}"


def export_phone(count: int) -> str:
    return f"+1555009{count % 10_000_000:07d}"


def build_store(
    db: Path, records: int, erase_subjects: int, export_sizes: list[int], seed: int
) -> dict[str, Any]:
    """A fresh store of ``records`` messages; returns what was seeded and how long it took."""
    started = time.perf_counter()
    # The connector's own engine creates the schema and turns on WAL.
    SmsConnector(
        f"sqlite:///{db}", LocalBlobStore(db.parent / "blobs"), SECRET
    ).store.engine.dispose()
    specials: list[tuple[str, str] | None] = []
    specials += [(SUBJECT_PHONE, SUBJECT_CUSTOMER)] * SUBJECT_MESSAGES
    specials += [(SUBJECT_PHONE, CUSTOMERS[1])] * SUBJECT_ELSEWHERE
    for n in range(erase_subjects):
        specials += [(erase_phone(n), SUBJECT_CUSTOMER)] * ERASE_MESSAGES
    for size in export_sizes:
        specials += [(export_phone(size), EXPORT_CUSTOMER)] * size
    background = records - len(specials)
    if background < 0:
        raise SystemExit(f"--records must be at least {len(specials)} for these subjects")
    end_users = max(1000, background // MESSAGES_PER_END_USER)
    rng = random.Random(seed)
    slots: list[tuple[str, str] | None] = specials + [None] * background
    rng.shuffle(slots)

    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    indexes = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='messages' "
        "AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:  # load first, index after: much faster than indexing per row
        connection.execute(f"DROP INDEX {name}")
    insert = f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    start = NOW - HISTORY
    step = HISTORY.total_seconds() / max(1, records)
    generated = 0
    for offset in range(0, records, BATCH):
        rows = [
            _row(rng, slots[i], start + timedelta(seconds=i * step), end_users)
            for i in range(offset, min(records, offset + BATCH))
        ]
        connection.execute("BEGIN")
        connection.executemany(insert, rows)
        connection.execute("COMMIT")
        generated += len(rows)
    loaded = time.perf_counter()
    for _, sql in indexes:
        connection.execute(sql)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    finished = time.perf_counter()
    return {
        "records": generated,
        "background_end_users": end_users,
        "customers": len(CUSTOMERS),
        "subject_messages": SUBJECT_MESSAGES,
        "subject_messages_at_other_customer": SUBJECT_ELSEWHERE,
        "erase_subjects": erase_subjects,
        "erase_subject_messages": ERASE_MESSAGES,
        "export_subject_messages": export_sizes,
        "load_seconds": round(loaded - started, 2),
        "index_seconds": round(finished - loaded, 2),
        "build_seconds": round(finished - started, 2),
        "db_bytes": db.stat().st_size,
    }


def _row(
    rng: random.Random, slot: tuple[str, str] | None, sent_at: datetime, end_users: int
) -> tuple[Any, ...]:
    if slot is None:
        phone = f"+4477{rng.randrange(end_users):08d}"
        customer = CUSTOMERS[rng.randrange(len(CUSTOMERS))]
    else:
        phone, customer = slot
    inbound = rng.random() < 0.15
    country = COUNTRIES[rng.randrange(len(COUNTRIES))]
    text = TEXTS[rng.randrange(5, 10) if inbound else rng.randrange(5)].format(
        ref=f"A{rng.randrange(100000, 999999)}", code=f"{rng.randrange(1000000):06d}"
    )
    located = rng.random() < 0.35
    return (
        customer,
        phone,
        "inbound" if inbound else "outbound",
        customer.replace("-", ""),
        text if rng.random() < 0.9 else None,
        sent_at.strftime("%Y-%m-%d %H:%M:%S.%f"),  # SQLAlchemy's SQLite DATETIME format
        "received" if inbound else "delivered",
        OPERATORS[rng.randrange(len(OPERATORS))],
        f"{country.lower()}-direct-0{rng.randrange(1, 5)}",
        1 + len(text) // 153,
        country,
        f"204-01-{rng.randrange(1000, 9999)}" if located else None,
        round(52.37 + rng.uniform(-0.05, 0.05), 5) if located else None,
        round(4.89 + rng.uniform(-0.05, 0.05), 5) if located else None,
        None,
    )


# --- measurements --------------------------------------------------------------------------


def scope(request_id: str, phone: str, customer: str) -> Scope:
    return Scope(
        request_id=request_id,
        identities=[Identity(type=IdentityType.PHONE, value=phone)],
        customer_account=customer,
        as_of=NOW,
    )


def connector(db: Path, blobs: Path) -> SmsConnector:
    return SmsConnector(f"sqlite:///{db}", LocalBlobStore(blobs), SECRET)


def erase_call(n: int) -> EraseInput:
    rules = [EraseRule(category=category) for category in CATEGORIES]
    return EraseInput(
        scope=scope(f"BENCH-ERASE-{n:04d}", erase_phone(n), SUBJECT_CUSTOMER), rules=rules
    )


def measure_discover(db: Path, blobs: Path, runs: int) -> dict[str, Any]:
    subject = scope("BENCH-DISCOVER", SUBJECT_PHONE, SUBJECT_CUSTOMER)
    figures: dict[str, Any] = {}
    with under_load(figures):
        sms = connector(db, blobs)
        first, discovery = timed(lambda: sms.discover(subject))
        warm = [timed(lambda: sms.discover(subject))[0] for _ in range(runs)]
        sms.store.engine.dispose()
    figures.update(summary(first, warm))
    figures["records_found"] = {h.category: h.records for h in discovery.holdings}
    return figures


def measure_erase(db: Path, blobs: Path, runs: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with under_load(figures):
        sms = connector(db, blobs)
        first, erased = timed(lambda: sms.erase(erase_call(0)))
        warm: list[float] = []
        for n in range(1, runs + 1):
            elapsed, result = timed(partial(sms.erase, erase_call(n)))
            if result.already_done or result.erased.get("phone_number") != ERASE_MESSAGES:
                raise RuntimeError("an erase run did not erase its subject: the benchmark is wrong")
            warm.append(elapsed)
        sms.store.engine.dispose()
    figures.update(summary(first, warm))
    figures["erased_first"] = erased.erased
    figures["rules"] = "all four categories, before=None (full anonymisation)"
    return figures


def plans(db: Path, blobs: Path) -> dict[str, str]:
    sms = connector(db, blobs)
    where = subject_where(SUBJECT_CUSTOMER, [SUBJECT_PHONE])
    statements: dict[str, ClauseElement] = {
        "subject_lookup": subject_messages(SUBJECT_CUSTOMER, [SUBJECT_PHONE]),
        "discover_holding": select(Message.country_ended, func.count(), func.min(Message.sent_at))
        .where(*where, holds("location_data"))
        .group_by(Message.country_ended),
        "erase_unlink_select": select(Message.id, Message.end_user_phone, Message.sent_at).where(
            *where, Message.sent_at < NOW
        ),
    }
    found = query_plans(sms.store.engine, statements)
    sms.store.engine.dispose()
    return found


def profile(db: Path, blobs: Path, runs: int) -> dict[str, str]:
    """cProfile of warm discover and erase calls (top functions by cumulative time)."""
    sms = connector(db, blobs)
    subject = scope("BENCH-DISCOVER", SUBJECT_PHONE, SUBJECT_CUSTOMER)
    sms.discover(subject)
    out = profiled({
        "discover": lambda: [sms.discover(subject) for _ in range(runs)],
        "erase": lambda: [sms.erase(erase_call(1 + runs + n)) for n in range(runs)],
    })  # fmt: skip
    sms.store.engine.dispose()
    return out


# --- exports, each in a fresh process ------------------------------------------------------


def export_child(db: str, blobs: str, size: int, mode: str) -> dict[str, Any]:
    """Run in a fresh interpreter: one export of the subject with ``size`` messages."""
    call = AccessInput(
        scope=scope(f"BENCH-EXPORT-{size}-{mode}", export_phone(size), EXPORT_CUSTOMER)
    )
    return export_figures(lambda: connector(Path(db), Path(blobs)), call, Path(blobs), mode)


# --- the report ------------------------------------------------------------


def rows_for_table(results: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    store = results["store"]
    n = store["records"]
    yield (
        "build store",
        f"{n:,} messages",
        (
            f"{store['build_seconds']} s (load {store['load_seconds']} s, "
            f"index {store['index_seconds']} s, {store['db_bytes'] / 2**20:.0f} MiB)"
        ),
    )
    for name, target in (("discover", "< 50 ms"), ("erase", "< 50 ms")):
        figures = results[name]
        yield f"{name} first call", target, f"{figures['first_ms']} ms"
        yield (
            f"{name} warm ({figures['warm_runs']} runs)",
            target,
            f"median {figures['warm_median_ms']} ms, p95 {figures['warm_p95_ms']} ms, "
            f"max {figures['warm_max_ms']} ms (load {figures['loadavg_before']} -> "
            f"{figures['loadavg_after']})",
        )
    for size, figures in results["export"].items():
        yield (
            f"export {int(size):,} msgs",
            "memory flat",
            export_text(figures)
            + f" (load {figures['loadavg_before']} -> {figures['loadavg_after']})",
        )
    uses_index = "USING INDEX ix_messages_subject" in results["plans"]["subject_lookup"]
    yield (
        "subject lookup plan",
        "composite index",
        results["plans"]["subject_lookup"]
        + ("" if uses_index else "  <-- NOT the composite index"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "data_plane.json")
    parser.add_argument("--runs", type=int, default=20, help="warm runs per operation")
    parser.add_argument("--export-sizes", default="10000,100000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="also cProfile warm calls")
    parser.add_argument("--keep", action="store_true", help="keep the temp store and print it")
    args = parser.parse_args()
    sizes = [int(size) for size in args.export_sizes.split(",") if size]
    erase_subjects = 1 + args.runs + (args.runs if args.profile else 0)
    folder = Path(tempfile.mkdtemp(prefix="bench-data-plane-"))
    db, blobs = folder / "sms.db", folder / "blobs"
    try:
        results: dict[str, Any] = {
            "machine": machine(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        print(f"building {args.records:,} messages in {db} ...", flush=True)
        results["store"] = build_store(db, args.records, erase_subjects, sizes, args.seed)
        results["plans"] = plans(db, blobs)
        results["discover"] = measure_discover(db, blobs, args.runs)
        results["erase"] = measure_erase(db, blobs, args.runs)
        print("exporting in fresh subprocesses ...", flush=True)
        results["export"] = measure_exports("data_plane", db, blobs, sizes, "messages")
        if args.profile:
            results["profile"] = profile(db, blobs, args.runs)
        results["targets"] = {
            "discover_and_erase_ms": 50,
            "export_memory": "peak at 100,000 close to peak at 10,000",
        }
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            remove_tree(folder)
    print_table(
        f"SMS connector data plane, {results['store']['records']:,} messages",
        ["measure", "target", "result"],
        rows_for_table(results),
    )
    for name, plan in results["plans"].items():
        print(f"plan {name}:\n  " + plan.replace("\n", "\n  "))
    for name, text in results.get("profile", {}).items():
        print(f"--- cProfile {name} ({args.runs} warm calls) ---\n{text}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
