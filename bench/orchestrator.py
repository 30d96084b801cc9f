"""Orchestrator benchmark on the embedded stack: overhead, latency, open requests, history.

A benchmark, not a test: it measures and reports, it asserts nothing about time.

    .venv/bin/python bench/orchestrator.py [overhead|latency|open|history] [options]

With no subcommand it runs all four. Each starts the embedded stack (Temporal dev server,
SMTP, codec and download servers, the real worker ``worker.py --all``) on free ports in a temp
folder, seeds the reference stores, and stops it at the end.

1. overhead: ``--requests`` pre-verified erasures (a customer's API instruction naming a phone
   number, an email address and a WhatsApp id: every end-user connector), all submitted at
   once (50 at a time); then, on the same server, as many bare workflows making the same
   activity calls in the same shape with no-op activities (bench/orch_bare.py).
2. latency: ``--latency-requests`` such erasures one at a time, submission to answer.
3. open: ``--open-requests`` emailed access requests waiting for a code nobody submits; the
   worker's and the Temporal server's RSS, and the status Query's latency on a sample.
4. history: events per finished request for each right.

Results merge into ``--out`` (one part per benchmark), and a table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import orch_measures as measures  # noqa: E402
from machine import machine  # noqa: E402
from orch_stack import ROOT, running_stack, subjects  # noqa: E402

OUT = ROOT / "bench" / "results" / "orchestrator.json"
TARGETS = {
    "overhead_ratio": 0.8,
    "latency_p95_seconds": 2.0,
    "open_worker_rss_mib": 1024,
}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmarks asked for; each part is saved to ``args.out`` as soon as it is done."""
    results = Results(args)
    wanted = set(args.only)
    if wanted & {"overhead", "latency", "history"}:
        with running_stack(args.keep) as stack:
            pool = subjects()
            if "overhead" in wanted:
                results["overhead"] = await measures.overhead(
                    stack.settings, pool, args.requests, args.rounds
                )
                results.save()
            if "latency" in wanted:
                print(f"latency: {args.latency_requests} erasures one at a time ...", flush=True)
                results["latency"] = await measures.latency(
                    stack.settings, pool, args.latency_requests
                )
                results.save()
            if "history" in wanted:
                print("history: one request per right and shape ...", flush=True)
                results["history"] = await measures.histories(stack.settings, stack.facts, pool)
                results.save()
    if "open" in wanted:
        with running_stack(args.keep) as stack:
            results["open"] = await measures.open_requests(
                stack.settings, args.open_requests, args.sample
            )
            results.save()
    return results.save()


class Results(dict[str, Any]):
    """The figures of this run, merged into the saved file after each benchmark."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.args = args

    def save(self) -> dict[str, Any]:
        return save(self.args.out, self, self.args)


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "requests": args.requests,
        "overhead_rounds": args.rounds,
        "latency_requests": args.latency_requests,
        "open_requests": args.open_requests,
        "status_sample": args.sample,
        "submit_batch": measures.BATCH,
        "open_at_most_in_intake": measures.IN_INTAKE,
        "worker_env": {k: v for k, v in os.environ.items() if k.startswith("DSR_WORKER_")},
    }


# --- the report ----------------------------------------------------------------------------


def rows_for_table(results: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    if "overhead" in results:
        yield from _overhead_rows(results["overhead"])
    if "latency" in results:
        lat = results["latency"]
        answered = lat["submit_to_answered_at_seconds"]
        yield (
            f"latency, submit to answer ({lat['requests']} erasures one at a time)",
            f"p95 < {TARGETS['latency_p95_seconds']} s",
            f"p50 {answered['p50']:.2f} s, p95 {answered['p95']:.2f} s, "
            f"max {answered['max']:.2f} s "
            f"(first, excluded: {lat['first_request_seconds_excluded']} s)",
        )
    if "open" in results:
        yield from _open_rows(results["open"])
    if "history" in results:
        for right, shapes in results["history"].items():
            c, p = shapes["controller_api"], shapes["subject_panel"]
            yield (
                f"history events: {right}",
                "-",
                f"customer API {c['events']} ({c['activities']} remote activities, "
                f"{len(c['connectors'])} connectors, {c['status']}); panel {p['events']} "
                f"({p['activities']} remote activities, {len(p['connectors'])} connectors, "
                f"{p['status']})",
            )


def _overhead_rows(o: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    yield (
        f"throughput, {o['requests']} erasures ({len(o['connectors_reached'])} connectors, "
        f"{o['activity_calls_per_request']} activity calls each)",
        "-",
        f"{o['orchestrator_requests_per_second']} req/s, "
        f"{o['orchestrator_activity_calls_per_second']} activity calls/s "
        f"({o['orchestrator_seconds']} s)",
    )
    yield (
        "bare Temporal, same shape, no-op activities",
        "-",
        f"{o['bare_requests_per_second']} req/s, {o['bare_activity_calls_per_second']} "
        f"activity calls/s ({o['bare_seconds']} s)",
    )
    remote = o.get("bare_all_remote")
    if remote:
        yield (
            "bare Temporal, same calls all remote (no local activities)",
            "-",
            f"{remote['requests_per_second']} req/s; orchestrator / this "
            f"{remote['orchestrator_ratio']}",
        )
    yield (
        "orchestrator / bare",
        f">= {TARGETS['overhead_ratio']}",
        f"{o['ratio']} by wall time ({o.get('rounds', 1)} alternating rounds); "
        f"{o.get('cpu_ratio', '-')} by CPU per request (all processes)",
    )
    if "events_per_request" in o:
        events = o["events_per_request"]
        yield (
            "  history events per request",
            "-",
            f"orchestrator {events['orchestrator']}, bare {events['bare']}",
        )
    for label, key in (("orchestrator", "orchestrator_cpu"), ("bare", "bare_cpu")):
        cpu = o[key]
        per = ", ".join(f"{name} {ms:.0f}" for name, ms in cpu["cpu_ms_per_request"].items())
        yield f"  CPU ms per request, {label}", "-", f"{per} ({cpu['cores_busy']} cores busy)"


def _open_rows(o: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    yield (
        f"{o['requests']:,} requests waiting for verification: worker RSS",
        f"< {TARGETS['open_worker_rss_mib']} MiB",
        f"{o['worker_rss_mib']} MiB, peak {o.get('worker_peak_rss_mib', '-')} MiB "
        f"({o['waiting']:,} waiting; started in "
        f"{o['submit_seconds']} s, all waiting after {o['all_waiting_after_seconds']} s)",
    )
    yield ("  Temporal dev server RSS", "-", f"{o['temporal_rss_mib']} MiB")
    q = o["status_query_seconds"]
    yield (
        f"  status Query ({q['n']} random requests)",
        "answered",
        f"p50 {q['p50'] * 1000:.0f} ms, p95 {q['p95'] * 1000:.0f} ms, max {q['max'] * 1000:.0f} ms",
    )


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Orchestrator on the embedded stack")
    for column in ("measure", "target", "result"):
        table.add_column(column)
    for row in rows_for_table(results):
        table.add_row(*row)
    Console(width=160).print(table)


def save(out: Path, results: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Merge into ``out``: a benchmark run alone replaces only its own part."""
    saved: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    for name, figures in results.items():
        saved[name] = {
            "figures": figures,
            "parameters": parameters(args),
            "machine": machine(),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    saved["targets"] = TARGETS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(saved, indent=2, default=str) + "\n")
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "only", nargs="*", default=["overhead", "latency", "open", "history"],
        choices=["overhead", "latency", "open", "history"], metavar="BENCHMARK",
        help="overhead, latency, open, history (default: all)",
    )  # fmt: skip
    parser.add_argument("--requests", type=int, default=200, help="overhead: erasures")
    parser.add_argument("--rounds", type=int, default=4, help="overhead: alternating rounds")
    parser.add_argument("--latency-requests", type=int, default=30)
    parser.add_argument("--open-requests", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=50, help="open: status Queries timed")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--keep", action="store_true", help="keep the temp data folder")
    args = parser.parse_args()
    saved = asyncio.run(run(args))
    print_table({name: part["figures"] for name, part in saved.items() if name != "targets"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
