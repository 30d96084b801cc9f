"""What the data-plane benchmarks share (``data_plane.py``, the SMS connector;
``data_plane_dataset.py``, a dataset-file connector): timing and its summary, the load average
around each measure, SQLite query plans, cProfile of warm calls, and access exports measured in
fresh subprocesses (peak RSS in one, tracemalloc peak in another)."""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.sql import ClauseElement

from dsr.blobstore import LocalBlobStore
from dsr.connector_contract import AccessInput, AccessResult

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def loadavg() -> str:
    """``/proc/loadavg``'s three load averages (1, 5, 15 minutes)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


@contextmanager
def under_load(figures: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Record the load average before and after a measure in its figures."""
    figures["loadavg_before"] = loadavg()
    yield figures
    figures["loadavg_after"] = loadavg()


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Milliseconds a call took, and its result."""
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def summary(first_ms: float, warm_ms: list[float]) -> dict[str, Any]:
    ordered = sorted(warm_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "first_ms": round(first_ms, 2),
        "warm_runs": len(warm_ms),
        "warm_median_ms": round(statistics.median(warm_ms), 2),
        "warm_p95_ms": round(p95, 2),
        "warm_min_ms": round(ordered[0], 2),
        "warm_max_ms": round(ordered[-1], 2),
    }


def query_plans(engine: Engine, statements: dict[str, ClauseElement]) -> dict[str, str]:
    """SQLite's ``EXPLAIN QUERY PLAN`` of each statement (values inlined)."""
    plans = {}
    with engine.connect() as connection:
        for name, statement in statements.items():
            sql = statement.compile(engine, compile_kwargs={"literal_binds": True})
            steps = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
            plans[name] = "\n".join(step[-1] for step in steps)
    return plans


def profiled(calls: dict[str, Callable[[], Any]], top: int = 18) -> dict[str, str]:
    """cProfile of each call: its top functions by cumulative time."""
    out = {}
    for name, call in calls.items():
        profiler = cProfile.Profile()
        profiler.runcall(call)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
        out[name] = text.getvalue()
    return out


def remove_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()


# --- exports, each in a fresh process ------------------------------------------------------


def export_figures(
    connect: Callable[[], Any], call: AccessInput, blobs: Path, mode: str
) -> dict[str, Any]:
    """In a fresh interpreter: one export by the connector ``connect`` makes. ``mode``
    ``tracemalloc``: the call's traced peak (not timed: tracing slows it); else its time, the
    process's resident memory around it and its peak."""
    after_import = vm("VmRSS")
    connector = connect()
    after_connector = vm("VmRSS")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    current_before = vm("VmRSS")
    if mode == "tracemalloc":
        tracemalloc.start()
        result: AccessResult = connector.access(call)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"tracemalloc_peak_bytes": peak, "records": result.records}
    elapsed, result = timed(lambda: connector.access(call))
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    path = LocalBlobStore(blobs).path(result.blob_ref or "")
    return {
        "seconds": round(elapsed / 1000, 3),
        "rss_after_import_kib": after_import,
        "rss_after_connector_kib": after_connector,
        "rss_current_before_export_kib": current_before,
        "rss_current_after_export_kib": vm("VmRSS"),
        # ru_maxrss survives fork+exec on Linux, so in a child it starts at the parent's RSS
        # at fork time; VmHWM belongs to the child's own address space and is the true peak.
        "ru_maxrss_before_export_kib": rss_before,
        "ru_maxrss_after_export_kib": rss_after,
        "vm_hwm_kib": vm("VmHWM"),
        "records": result.records,
        "blob_bytes": path.stat().st_size,
    }


def vm(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS: resident now, VmHWM: its peak)."""
    try:
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def in_child(module: str, function: str, *args: Any) -> dict[str, Any]:
    """``module.function(*args)`` run in a fresh interpreter; its JSON answer."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(BENCH)!r}); import {module}; "
        f"print(json.dumps({module}.{function}(*{args!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure_exports(
    module: str, db: Path, blobs: Path, sizes: list[int], unit: str
) -> dict[str, Any]:
    """Per size, ``module.export_child(db, blobs, size, mode)`` in two fresh processes: one
    timed with its RSS, one traced; ``unit`` names what the size counts."""
    out: dict[str, Any] = {}
    for size in sizes:
        figures: dict[str, Any] = {}
        with under_load(figures):
            figures.update(in_child(module, "export_child", str(db), str(blobs), size, "rss"))
            figures.update(
                in_child(module, "export_child", str(db), str(blobs), size, "tracemalloc")
            )
        figures[unit] = size
        out[str(size)] = figures
    return out


def export_text(figures: dict[str, Any]) -> str:
    """One export's figures in a table cell."""
    return (
        f"{figures['seconds']} s, peak RSS (VmHWM) {figures['vm_hwm_kib'] / 1024:.0f} MiB, "
        f"resident before/after {figures['rss_current_before_export_kib'] / 1024:.0f}/"
        f"{figures['rss_current_after_export_kib'] / 1024:.0f} MiB, ru_maxrss "
        f"{figures['ru_maxrss_after_export_kib'] / 1024:.0f} MiB, tracemalloc peak "
        f"{figures['tracemalloc_peak_bytes'] / 2**20:.1f} MiB, "
        f"{sum(figures['records'].values()):,} records, "
        f"{figures['blob_bytes'] / 2**20:.0f} MiB"
    )


def print_table(title: str, columns: list[str], rows: Iterator[tuple[str, ...]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency
        for row in rows:
            print(" | ".join(row))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)
