"""The embedded stack as the officer starts it: services, workers and the daily Schedules
(confirmation purge, retention sweep)."""

from __future__ import annotations

import sys
from pathlib import Path

from dsr import stack
from dsr.settings import Settings
from dsr.temporal import connect, ensure_purge_schedule, ensure_sweep_schedule

WORKER = Path(__file__).resolve().parent.parent / "worker.py"


def worker_command() -> list[str]:
    return [sys.executable, str(WORKER), "--all"]


async def start(settings: Settings) -> stack.StackStatus:
    status = stack.up(settings, worker_command())
    print(status.describe())
    client = await connect(settings)
    created = await ensure_purge_schedule(client, settings)
    print("confirmation purge schedule:", "created" if created else "already present")
    created = await ensure_sweep_schedule(client, settings)
    print("retention sweep schedule:", "created" if created else "already present")
    return status
