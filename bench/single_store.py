"""Single-store benchmark: pre-verified requests at once against one PostgreSQL store.

A benchmark, not a test: it measures and reports; it checks what the requests did, never
their times.

    .venv/bin/python bench/single_store.py [--sizes 100 200] [--mixes access erasure mixed]
                                           [--rounds N] [--postgres-url URL]

A throwaway database on the PostgreSQL server of ``--postgres-url`` (by default the cluster
``.ci/run`` starts: dsrtest on port 5433, role dsr) gets the shop's tables and 10,000
fictional customers with 20,000 orders, spread over the demo's 6 customer accounts. The shop
is served by the dataset connector (``bench/datasets/shop.yaml``) through the run's registry,
on the embedded stack as ``make demo`` configures it (bench/single_store_stack.py). For each
size and mix (access only, erasure only, half and half) it submits that many customers'
pre-verified instructions through the API at once (50 at a time; each about a different
shop customer: its email address and phone number), waits for every answer, then checks
each erasure in SQL and opens each access package. It prints a table and writes
``--out``: requests/s, latency from submission to answer, and each process's CPU per request;
with ``--rounds`` every size and mix is measured that many times, rounds interleaved, and
each figure's median is reported beside every round's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from machine import machine  # noqa: E402
from orch_measures import BATCH, CpuMeter, in_batches  # noqa: E402
from orch_stack import ROOT, Subject, controller_request, percentiles  # noqa: E402
from shop_store import (  # noqa: E402
    DEFAULT_ADMIN_URL,
    BackendCpu,
    Customer,
    Shop,
    build_shop,
    check_erasures,
    check_package,
    throwaway_database,
)
from single_store_stack import ShopStack, single_store_stack  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402
from temporalio.client import Client  # noqa: E402

from dsr.models import Right, RightsRequest  # noqa: E402
from dsr.sealedblobs import sealed_blob_store  # noqa: E402
from dsr.signers import door_signer  # noqa: E402
from dsr.status import Status  # noqa: E402
from dsr.temporal import connect  # noqa: E402
from services import workflow_client as officer  # noqa: E402
from workflows.models import ConnectorStatus, RequestOutcome  # noqa: E402

OUT = ROOT / "bench" / "results" / "single_store.json"
SHOWN = ("temporal", "orchestrator worker", "shop worker", "smtp", "database")
MIXES = {"access": [Right.ACCESS], "erasure": [Right.ERASURE],
         "mixed": [Right.ACCESS, Right.ERASURE]}  # mixed: every other request each


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"runs": {}, "parameters": parameters(args), "machine": machine()}
    with throwaway_database(args.postgres_url) as url:
        started = time.perf_counter()
        accounts = tuple(f"CUST-{n:04d}" for n in range(1, 7))
        shop = build_shop(url, args.customers, args.orders, accounts)
        results["parameters"]["seed_seconds"] = round(time.perf_counter() - started, 1)
        results["parameters"]["postgres"] = server_version(url)
        print(f"seeded {len(shop.customers):,} customers and {shop.orders:,} orders in "
              f"{results['parameters']['seed_seconds']} s", flush=True)
        async with single_store_stack(url, args.keep, not args.no_bytecode_cache) as stack:
            results["parameters"]["policy_confirmed_for_the_run"] = stack.confirmed
            bench = Bench(stack, shop, await connect(stack.settings), args.postgres_url)
            await bench.warm_up()
            for round_ in range(1, args.rounds + 1):  # rounds interleaved: other load spreads
                for size in args.sizes:
                    for mix in args.mixes:
                        name = f"{mix}-{size}"
                        print(f"{name} (round {round_}): {size} requests at once ...", flush=True)
                        figures = await bench.measure(mix, size)
                        print(f"{name}: {summary(figures)}", flush=True)
                        rounds = results["runs"].setdefault(name, {"rounds": []})["rounds"]
                        rounds.append(figures)
                        results["runs"][name]["median"] = median_of(rounds)
                        save(args.out, results)
    return results


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (each on its own: not one round's figures)."""
    def median(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    per = [r["cpu"]["cpu_ms_per_request"] for r in rounds]
    return {
        "rounds": len(rounds),
        "requests_per_second": median([r["requests_per_second"] for r in rounds]),
        "requests_per_second_range": [min(r["requests_per_second"] for r in rounds),
                                      max(r["requests_per_second"] for r in rounds)],
        "latency_seconds": {key: median([r["latency_seconds"][key] for r in rounds])
                            for key in ("p50", "p95", "max")},
        "cpu_ms_per_request": {name: median([p[name] for p in per]) for name in per[0]},
        "cores_busy": median([r["cpu"]["cores_busy"] for r in rounds]),
        "problems": sum(len(r["checked"]["problems"]) for r in rounds),
    }


class Bench:
    """The runs on one stack and shop: every request about a shop customer not asked about
    before (an erased one can be erased only once)."""

    def __init__(self, stack: ShopStack, shop: Shop, client: Client, admin_url: str) -> None:
        self.stack, self.shop, self.client = stack, shop, client
        self.admin_url = admin_url
        self.fresh = iter(random.Random(1).sample(sorted(shop.customers), len(shop.customers)))
        self.engine = create_engine(shop.url)
        self.blobs = sealed_blob_store(stack.settings)
        self.erased: list[int] = []
        self.count = 0

    def requests(self, mix: str, size: int) -> list[tuple[RightsRequest, Customer]]:
        out = []
        for index in range(size):
            rights = MIXES[mix]
            right = rights[index % len(rights)]
            customer = self.shop.customers[next(self.fresh)]
            self.count += 1
            request_id = f"BENCH-SHOP-{self.count:05d}-{right.value.upper()}"
            subject = Subject(customer.end_user(), customer.account)
            out.append((controller_request(request_id, subject, [right]), customer))
        return out

    async def warm_up(self) -> None:
        """One access and one erasure first (not measured): imports, caches and pools."""
        print("warming up: one access, one erasure ...", flush=True)
        batch = self.requests("mixed", 2)
        _, outcomes, _ = await self.submit_all([r for r, _ in batch])
        self.check(batch, outcomes)

    async def measure(self, mix: str, size: int) -> dict[str, Any]:
        batch = self.requests(mix, size)
        load_before = loadavg()
        meter = CpuMeter(self.stack.pids | {"bench client": os.getpid()})
        database = BackendCpu(self.admin_url, make_url(self.shop.url).database or "").start()
        seconds, outcomes, latency = await self.submit_all([r for r, _ in batch])
        cpu = with_database(meter.stop(size), database.stop(), size)
        load_after = loadavg()
        problems = self.check(batch, outcomes)
        return {
            "requests": size,
            "mix": mix,
            "access": sum(Right.ACCESS in r.rights for r, _ in batch),
            "erasure": sum(Right.ERASURE in r.rights for r, _ in batch),
            "seconds": round(seconds, 2),
            "requests_per_second": round(size / seconds, 2),
            "latency_seconds": percentiles(latency),
            "cpu": cpu,
            "checked": {"problems": problems,
                        "erasures_checked_in_sql": sum(Right.ERASURE in r.rights for r, _ in batch),
                        "packages_opened": sum(Right.ACCESS in r.rights for r, _ in batch)},
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        }

    async def submit_all(
        self, requests: list[RightsRequest]
    ) -> tuple[float, list[RequestOutcome], list[float]]:
        """Submit all (``BATCH`` at a time), wait for every answer: the seconds from the first
        submission to the last answer, the outcomes, and each request's latency from its own
        submission to its ``answered_at``."""
        settings = self.stack.settings
        submitted: dict[str, datetime] = {}

        async def submit(request: RightsRequest) -> Any:
            submitted[request.request_id] = datetime.now(UTC)
            return await officer.submit(self.client, settings, request,
                                        door=door_signer(settings, request.channel))

        started = time.perf_counter()
        handles = await in_batches([partial(submit, request) for request in requests])
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(h.result() for h in handles)), timeout=60 + 5 * len(requests))
        except TimeoutError:
            raise SystemExit(await self.stuck(requests)) from None
        seconds = time.perf_counter() - started
        latency = [(o.answered_at - submitted[o.request_id]).total_seconds()
                   for o in outcomes if o.answered_at is not None]
        return seconds, outcomes, latency

    async def stuck(self, requests: list[RightsRequest]) -> str:
        """What the requests not answered wait for (a held answer says why)."""
        counts: dict[str, int] = {}
        for request in requests:
            status = await officer.status(self.client, request.request_id)
            counts[status.status.value] = counts.get(status.status.value, 0) + 1
            if status.held_for_review:
                counts["held: " + "; ".join(status.held_for_review)] = 1
        return f"requests not answered in time: {counts}"

    def check(self, batch: list[tuple[RightsRequest, Customer]],
              outcomes: list[RequestOutcome]) -> list[str]:
        """Every outcome answered with the shop done; every erasure in SQL; every package."""
        problems = [f"{o.request_id}: {o.status.value}, shop "
                    f"{[c.status.value for c in o.connectors if c.connector == 'shop']}"
                    for o in outcomes
                    if o.status is not Status.ANSWERED or [c.status for c in o.connectors
                                                          if c.connector == "shop"]
                    != [ConnectorStatus.DONE]]
        erased = [c.id for r, c in batch if Right.ERASURE in r.rights]
        self.erased += erased
        all_orders = sum(len(self.shop.customers[c].orders) for c in self.erased)
        problems += check_erasures(self.engine, self.shop, erased, len(self.erased), all_orders)
        for request, customer in batch:
            if Right.ACCESS in request.rights:
                problems += check_package(self.blobs, request.request_id, customer)
        if problems:
            print(f"{len(problems)} problem(s):\n  " + "\n  ".join(problems[:20]), flush=True)
        return problems


def with_database(cpu: dict[str, Any], database: dict[str, Any], size: int) -> dict[str, Any]:
    """The processes' CPU with the database's backends added as one more process."""
    seconds = cpu["cpu_seconds"] | {"database": database["cpu_seconds"]}
    return cpu | {
        "cpu_seconds": seconds,
        "cpu_ms_per_request": {name: round(1000 * s / size, 1) for name, s in seconds.items()},
        "cores_busy": round(sum(seconds.values()) / cpu["wall_seconds"], 2),
        "database_backends_seen": database["backends_seen"],
        "postgres_cluster_cpu_seconds": database["cluster_cpu_seconds"],
    }


def reachable(admin_url: str) -> None:
    """Stop here, saying how to start one, when there is no PostgreSQL server to use."""
    engine = create_engine(admin_url)
    try:
        with engine.connect():
            pass
    except OperationalError as error:
        where = make_url(admin_url).render_as_string(hide_password=True)
        raise SystemExit(
            f"no PostgreSQL server at {where} ({str(error).splitlines()[0]}): start the one "
            ".ci/run creates (pg_ctlcluster 15 dsrtest start), or name another with "
            "--postgres-url or DSR_BENCH_POSTGRES_URL (a role that may CREATE DATABASE)"
        ) from None
    finally:
        engine.dispose()


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def server_version(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "customers": args.customers,
        "orders": args.orders,
        "customer_accounts": 6,
        "sizes": args.sizes,
        "rounds": args.rounds,
        "mixes": args.mixes,
        "submit_batch": BATCH,
        "stack_bytecode_cache": not args.no_bytecode_cache,
        "environment_pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "worker_env": {k: v for k, v in os.environ.items() if k.startswith("DSR_WORKER_")},
    }


def summary(run: dict[str, Any]) -> str:
    latency, per = run["latency_seconds"], run["cpu"]["cpu_ms_per_request"]
    cpu = ", ".join(f"{name} {per[name]:.0f}" for name in SHOWN)
    return (f"{run['requests_per_second']} req/s, p50 {latency['p50']:.2f} s, p95 "
            f"{latency['p95']:.2f} s, max {latency['max']:.2f} s; CPU ms/request {cpu}; "
            f"{len(run['checked']['problems'])} problems; load {run['loadavg_before']} -> "
            f"{run['loadavg_after']}")


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    rounds, customers = results["parameters"]["rounds"], results["parameters"]["customers"]
    table = Table(title=f"Single store (PostgreSQL, {customers:,} customers): requests at once"
                  + (f", medians of {rounds} rounds" if rounds > 1 else ""))
    for column in ("run", "req/s", "p50 s", "p95 s", "max s",
                   *(f"{name} ms" for name in SHOWN), "checked"):
        table.add_column(column)
    for name, run in results["runs"].items():
        median = run["median"]
        latency, per = median["latency_seconds"], median["cpu_ms_per_request"]
        low, high = median["requests_per_second_range"]
        table.add_row(name, f"{median['requests_per_second']}"
                      + (f" ({low}-{high})" if rounds > 1 else ""),
                      f"{latency['p50']:.1f}", f"{latency['p95']:.1f}", f"{latency['max']:.1f}",
                      *(f"{per[n]:.0f}" for n in SHOWN),
                      "ok" if not median["problems"] else f"{median['problems']} problems")
    Console(width=160).print(table)


def save(out: Path, results: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--mixes", nargs="+", default=list(MIXES), choices=list(MIXES))
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every size and mix this many times (medians reported)")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--postgres-url", default=os.environ.get(
        "DSR_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="a server where the role may CREATE DATABASE (default: .ci/run's dsrtest)")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="leave PYTHONDONTWRITEBYTECODE to the environment (if it is set, "
                             "the sandbox compiles the workflow modules for each workflow)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--keep", action="store_true", help="keep the temp data folder")
    args = parser.parse_args()
    needed = sum(args.sizes) * len(args.mixes) * args.rounds + 2
    if needed > args.customers:
        raise SystemExit(f"{needed} requests need as many customers: --customers {needed}")
    reachable(args.postgres_url)
    results = asyncio.run(run(args))
    print_table(results)
    problems = sum(run["median"]["problems"] for run in results["runs"].values())
    print(f"wrote {args.out}")
    if problems:
        raise SystemExit(f"{problems} problem(s) found in what the requests did")


if __name__ == "__main__":
    main()
