"""The embedded stack as the officer starts it: services, workers and the product's Schedules
(confirmation purge, retention sweep, ledger anchoring)."""

from __future__ import annotations

import sys
from pathlib import Path

from dsr import schedules
from dsr.settings import Settings
from dsr.temporal import connect
from services import stack

WORKER = Path(__file__).resolve().parent.parent / "worker.py"


def worker_command() -> list[str]:
    return [sys.executable, str(WORKER), "--all"]


async def start(settings: Settings) -> stack.StackStatus:
    status = stack.up(settings, worker_command())
    print(status.describe())
    client = await connect(settings)
    for entry, change in await schedules.ensure(client, settings):
        print(f"Schedule {entry.schedule_id}: {change}")
    return status
