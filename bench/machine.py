"""What a benchmark ran on: saved beside its figures."""

from __future__ import annotations

import os
import platform
import sqlite3
from typing import Any


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "nproc_available": len(os.sched_getaffinity(0)),
        "cpu_model": _first("/proc/cpuinfo", "model name"),
        "mem_total": _first("/proc/meminfo", "MemTotal"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": __import__("sqlalchemy").__version__,
        "temporalio": __import__("temporalio").__version__,
        "load_average_at_start": os.getloadavg(),
    }


def _first(path: str, prefix: str) -> str | None:
    """The value of the first ``prefix: value`` line of a /proc file."""
    try:
        with open(path) as file:
            for line in file:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
