"""The orchestrator's measurements on a running embedded stack (see bench/orchestrator.py)."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from orch_bare import BARE_WORKFLOW, CHILD, LOCAL, activity_names, bare_queue, shape_of
from orch_stack import (
    Subject,
    controller_request,
    cpu_seconds,
    panel_request,
    percentiles,
    rss_kib,
    service_pid,
    waiting_request,
)
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle

from connectors.seeds.demo import DemoFacts
from dsr.credentials import Signer
from dsr.models import Channel, RightsRequest
from dsr.rights import RIGHTS
from dsr.settings import Settings
from dsr.signers import door_signer, officer_signer
from dsr.status import Status
from dsr.temporal import connect
from services import workflow_client as officer
from workflows.models import OfficerNote, RequestOutcome, UpdateResult
from workflows.request import WORKFLOW_NAME as REQUEST_WORKFLOW

BENCH = Path(__file__).resolve().parent
BATCH = 50
IN_INTAKE = 250  # open requests: at most this many started and not yet waiting for their code
WAITING = f"WorkflowType = '{REQUEST_WORKFLOW}' AND DsrStatus = 'awaiting_verification'"
T = TypeVar("T")


def _submitting(client: Client, settings: Settings,
                request: RightsRequest) -> Callable[[], Awaitable[WorkflowHandle[Any, Any]]]:
    """Submitting ``request`` as its door would (the benchmark stands in for the doors)."""
    return partial(officer.submit, client, settings, request,
                   door=door_signer(settings, request.channel))


async def in_batches(calls: Sequence[Callable[[], Awaitable[T]]], size: int = BATCH) -> list[T]:
    """Run ``calls`` concurrently, ``size`` at a time (gathered batch by batch)."""
    out: list[T] = []
    for start in range(0, len(calls), size):
        out += await asyncio.gather(*(call() for call in calls[start : start + size]))
    return out


async def history(client: Client, workflow_id: str) -> list[HistoryEvent]:
    return [event async for event in client.get_workflow_handle(workflow_id).fetch_history_events()]


def take(pool: Iterator[Subject], n: int) -> list[Subject]:
    taken = [subject for _, subject in zip(range(n), pool, strict=False)]
    if len(taken) < n:
        raise SystemExit(f"the seeded population has too few end users for {n} erasures")
    return taken


# --- 1. overhead ---------------------------------------------------------------------------


async def run_requests(
    client: Client, settings: Settings, requests: list[RightsRequest]
) -> tuple[float, list[RequestOutcome]]:
    """Submit all (50 at a time), wait for every outcome; seconds from first submit to last."""
    started = time.perf_counter()
    handles = await in_batches([_submitting(client, settings, r) for r in requests])
    outcomes = await asyncio.gather(*(handle.result() for handle in handles))
    return time.perf_counter() - started, outcomes


async def run_bare(
    client: Client, shape: list[list[str]], queue: str, n: int, tag: str
) -> float:
    started = time.perf_counter()

    async def start(i: int) -> WorkflowHandle[Any, Any]:
        return await client.start_workflow(
            BARE_WORKFLOW, shape, id=f"bench-bare-{tag}-{i}", task_queue=bare_queue(queue)
        )

    handles = await in_batches([partial(start, i) for i in range(n)])
    await asyncio.gather(*(handle.result() for handle in handles))
    return time.perf_counter() - started


def bare_worker(settings: Settings, queues: list[str]) -> subprocess.Popen[str]:
    code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); import orch_bare; " + (
        "orch_bare.main(sys.argv[1:])"
    )
    argv = [sys.executable, "-c", code, "worker", settings.temporal_address]
    process = subprocess.Popen(
        [*argv, settings.temporal_namespace, *queues], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError("the bare worker did not start")
    return process


class CpuMeter:
    """CPU seconds each process (and its children) spent between start and stop."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before = self._now()
        self.started = time.perf_counter()

    def _now(self) -> dict[str, float]:
        # The bench client started the stack: its own time only, not its children's.
        return {
            name: cpu_seconds(pid, descendants=pid != os.getpid())
            for name, pid in self.pids.items()
        }

    def stop(self, requests: int) -> dict[str, Any]:
        wall = time.perf_counter() - self.started
        now = self._now()
        used = {name: now[name] - self.before[name] for name in self.pids}
        return {
            "wall_seconds": round(wall, 2),
            "cpu_seconds": {name: round(seconds, 2) for name, seconds in used.items()},
            "cpu_ms_per_request": {
                name: round(1000 * seconds / requests, 1) for name, seconds in used.items()
            },
            "cores_busy": round(sum(used.values()) / wall, 2),
        }


async def overhead(
    settings: Settings, pool: Iterator[Subject], n: int, rounds: int = 4
) -> dict[str, Any]:
    client = await connect(settings)
    pids = {"temporal": service_pid(settings, "temporal"), "bench client": os.getpid()}
    # One request first: warms the worker and gives the shape the bare workflow copies.
    probe = controller_request("BENCH-SHAPE", next(pool))
    _, (probe_outcome,) = await run_requests(client, settings, [probe])
    events = await history(client, officer.workflow_id(probe.request_id))
    shape = shape_of(events)
    names = activity_names(events)
    requests = [controller_request(f"BENCH-OVH-{i:05d}", s) for i, s in enumerate(take(pool, n))]
    remote = {q for batch in shape for q in batch if q not in (CHILD, LOCAL)}
    queues = sorted(remote, key=_orchestrator_first)
    worker = bare_worker(settings, queues)
    real_pids = {**pids, "worker": service_pid(settings, "worker")}
    bare_pids = {**pids, "bare worker": worker.pid}
    remote_shape = all_remote(shape, queues[0])
    real: list[tuple[float, dict[str, Any]]] = []
    bare: list[tuple[float, dict[str, Any]]] = []
    bare_remote: list[float] = []
    outcomes: list[RequestOutcome] = []
    try:
        bare_client = await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace
        )
        await run_bare(bare_client, shape, queues[0], 1, "warm")
        # Alternate rounds, so that other load on the machine falls on both alike.
        size = -(-n // rounds)
        for r, start in enumerate(range(0, n, size)):
            chunk = requests[start : start + size]
            print(f"overhead round {r + 1}/{rounds}: {len(chunk)} erasures, then as many bare "
                  "workflows of the same shape ...", flush=True)
            meter = CpuMeter(real_pids)
            seconds, done = await run_requests(client, settings, chunk)
            real.append((seconds, meter.stop(len(chunk))))
            outcomes += done
            meter = CpuMeter(bare_pids)
            seconds = await run_bare(bare_client, shape, queues[0], len(chunk), f"run{r}")
            bare.append((seconds, meter.stop(len(chunk))))
            bare_remote.append(
                await run_bare(bare_client, remote_shape, queues[0], len(chunk), f"remote{r}")
            )
        bare_events = await history(bare_client, "bench-bare-warm-0")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    figures = _overhead_figures(
        n, sum(s for s, _ in real), sum(s for s, _ in bare), names, shape, probe_outcome, outcomes
    )
    return figures | {
        "events_per_request": {"orchestrator": len(events), "bare": len(bare_events)},
        "event_types": {"orchestrator": event_counts(events), "bare": event_counts(bare_events)},
        "rounds": rounds,
        "orchestrator_cpu": _cpu_total([c for _, c in real], n),
        "bare_cpu": _cpu_total([c for _, c in bare], n),
        "rounds_seconds": {"orchestrator": [s for s, _ in real], "bare": [s for s, _ in bare]},
        "bare_all_remote": _all_remote_figures(n, sum(s for s, _ in real), sum(bare_remote)),
    } | _cpu_ratio(real, bare)


def all_remote(shape: list[list[str]], queue: str) -> list[list[str]]:
    """The shape with each local activity made a remote call on ``queue`` of its own, one
    after the other, as the orchestrator made its quick steps before ``local-quick-steps``."""
    out: list[list[str]] = []
    for batch in shape:
        out += [[queue] for entry in batch if entry == LOCAL]
        remote = [entry for entry in batch if entry != LOCAL]
        if remote:
            out.append(remote)
    return out


def _all_remote_figures(n: int, real_seconds: float, seconds: float) -> dict[str, Any]:
    return {
        "seconds": round(seconds, 2),
        "requests_per_second": round(n / seconds, 2),
        "orchestrator_ratio": round(seconds / real_seconds, 3),
    }


def _cpu_total(parts: list[dict[str, Any]], n: int) -> dict[str, Any]:
    wall = sum(p["wall_seconds"] for p in parts)
    used: dict[str, float] = {}
    for part in parts:
        for name, seconds in part["cpu_seconds"].items():
            used[name] = used.get(name, 0) + seconds
    return {
        "wall_seconds": round(wall, 2),
        "cpu_seconds": {name: round(s, 2) for name, s in used.items()},
        "cpu_ms_per_request": {name: round(1000 * s / n, 1) for name, s in used.items()},
        "cores_busy": round(sum(used.values()) / wall, 2),
    }


def _cpu_ratio(
    real: list[tuple[float, dict[str, Any]]], bare: list[tuple[float, dict[str, Any]]]
) -> dict[str, Any]:
    """CPU per request of all processes: what bounds throughput on a saturated machine."""
    real_cpu = sum(sum(c["cpu_seconds"].values()) for _, c in real)
    bare_cpu = sum(sum(c["cpu_seconds"].values()) for _, c in bare)
    return {"cpu_ratio": round(bare_cpu / real_cpu, 3)}


def event_counts(events: list[HistoryEvent]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in events:
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _orchestrator_first(queue: str) -> tuple[bool, str]:
    return (not queue.endswith("orchestrator"), queue)


def _overhead_figures(
    n: int,
    real_seconds: float,
    bare_seconds: float,
    names: list[str],
    shape: list[list[str]],
    probe: RequestOutcome,
    outcomes: list[RequestOutcome],
) -> dict[str, Any]:
    calls = len(names)
    statuses = sorted({o.status.value for o in outcomes})
    reached = [c.connector for c in probe.connectors]
    erased = [n for n in names if n.endswith(".erase")]
    return {
        "requests": n,
        "statuses": statuses,
        "connectors_reached": reached,
        "connectors_erased_in_shape_request": [n.split(".")[0] for n in erased],
        "activity_calls_per_request": calls,
        "activity_calls": names,
        "shape_batches": shape,
        "orchestrator_seconds": round(real_seconds, 2),
        "orchestrator_requests_per_second": round(n / real_seconds, 2),
        "orchestrator_activity_calls_per_second": round(n * calls / real_seconds, 1),
        "bare_seconds": round(bare_seconds, 2),
        "bare_requests_per_second": round(n / bare_seconds, 2),
        "bare_activity_calls_per_second": round(n * calls / bare_seconds, 1),
        "ratio": round(bare_seconds / real_seconds, 3),
    }


# --- 2. latency ----------------------------------------------------------------------------


async def latency(settings: Settings, pool: Iterator[Subject], n: int) -> dict[str, Any]:
    client = await connect(settings)
    to_answer: list[float] = []
    round_trip: list[float] = []
    first = None
    for i, subject in enumerate(take(pool, n + 1)):
        request = controller_request(f"BENCH-LAT-{i:05d}", subject)
        submitted = datetime.now(UTC)
        started = time.perf_counter()
        handle = await officer.submit(client, settings, request,
                                      door=door_signer(settings, request.channel))
        outcome = await handle.result()
        trip = time.perf_counter() - started
        if outcome.status is not Status.ANSWERED:
            raise RuntimeError(f"{request.request_id} ended {outcome.status}")
        assert outcome.answered_at is not None
        answered = (outcome.answered_at - submitted).total_seconds()
        if i == 0:
            first = round(answered, 3)
            continue
        to_answer.append(answered)
        round_trip.append(trip)
    return {
        "requests": n,
        "submit_to_answered_at_seconds": percentiles(to_answer),
        "submit_to_result_seconds": percentiles(round_trip),
        "first_request_seconds_excluded": first,
    }


# --- 3. open requests ----------------------------------------------------------------------


async def open_requests(settings: Settings, n: int, sample: int) -> dict[str, Any]:
    client = await connect(settings)
    requests = [waiting_request(f"BENCH-OPEN-{i:06d}", i) for i in range(n)]
    worker_pid, temporal_pid = service_pid(settings, "worker"), service_pid(settings, "temporal")
    rss_before = {"worker_kib": rss_kib(worker_pid), "temporal_kib": rss_kib(temporal_pid)}
    print(f"open: starting {n:,} requests, at most {IN_INTAKE} in intake at once ...", flush=True)
    started = time.perf_counter()
    peak_worker_kib = 0
    for first in range(0, n, BATCH):
        await _intake_below(client, first - IN_INTAKE)
        await in_batches([_submitting(client, settings, r)
                          for r in requests[first : first + BATCH]])
        peak_worker_kib = max(peak_worker_kib, rss_kib(worker_pid))
    submitted = time.perf_counter() - started
    waiting = await _wait_all_waiting(client, n)
    settled = time.perf_counter() - started
    rss = {"worker_kib": rss_kib(worker_pid), "temporal_kib": rss_kib(temporal_pid)}
    picked = random.Random(1).sample(requests, min(sample, n))
    timings = []
    for request in picked:
        began = time.perf_counter()
        status = await officer.status(client, request.request_id)
        timings.append(time.perf_counter() - began)
        if status.status is not Status.AWAITING_VERIFICATION:
            raise RuntimeError(f"{request.request_id} is {status.status}")
    return {
        "requests": n,
        "waiting": waiting,
        "submit_seconds": round(submitted, 1),
        "all_waiting_after_seconds": round(settled, 1),
        "rss_before": rss_before,
        "rss_all_waiting": rss,
        "worker_peak_rss_mib": round(max(peak_worker_kib, rss["worker_kib"]) / 1024),
        "worker_rss_mib": round(rss["worker_kib"] / 1024),
        "temporal_rss_mib": round(rss["temporal_kib"] / 1024),
        "status_query_seconds": percentiles(timings),
    }


async def _intake_below(client: Client, waiting_at_least: int) -> None:
    """Pace the starts as a bulk import would: wait until at most ``IN_INTAKE`` requests are
    still being received (a burst of thousands at once only thrashes the workflow cache)."""
    while waiting_at_least > 0 and (await client.count_workflows(WAITING)).count < waiting_at_least:
        await asyncio.sleep(0.5)


async def _wait_all_waiting(client: Client, n: int, timeout: float = 3600) -> int:
    deadline = time.monotonic() + timeout
    while True:
        count = (await client.count_workflows(WAITING)).count
        if count >= n or time.monotonic() > deadline:
            return count
        print(f"open: {count:,} of {n:,} waiting for verification", flush=True)
        await asyncio.sleep(5)


# --- 5. history ----------------------------------------------------------------------------


async def histories(
    settings: Settings, facts: DemoFacts, pool: Iterator[Subject]
) -> dict[str, Any]:
    """Events per finished request for each right: a customer's instruction (every end-user
    connector) and an account holder's panel request (the group's own connectors)."""
    client = await connect(settings)
    out: dict[str, Any] = {}
    for right in (row.right for row in RIGHTS):  # in the order a connector acts: erase last
        controller = controller_request(f"BENCH-HIST-C-{right.value}", next(pool), [right])
        panel = panel_request(
            f"BENCH-HIST-P-{right.value}",
            facts.account_holder_account_id,
            facts.account_holder_email,
            right,
        )
        out[right.value] = {
            "controller_api": await _events_of(client, settings, controller),
            "subject_panel": await _events_of(client, settings, panel),
        }
    return out


async def _events_of(client: Client, settings: Settings, request: RightsRequest) -> dict[str, Any]:
    handle = await officer.submit(client, settings, request,
                                      door=door_signer(settings, request.channel))
    by_hand = request.channel is not Channel.API and await _verify_by_hand(
        client, request, officer_signer(settings, "officer.bench"))
    outcome = await handle.result()
    events = await history(client, handle.id)
    return {
        "status": outcome.status.value,
        "events": len(events),
        "activities": sum(
            e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in events
        ),
        "connectors": [c.connector for c in outcome.connectors],
        "verified_by_hand_update": by_hand,
    }


async def _verify_by_hand(client: Client, request: RightsRequest, bench: Signer) -> bool:
    """The panel login verifies the account; the email address needs a code, or an officer's
    ``mark_verified`` Update, which is what this sends once the request waits for it."""
    while True:
        status = (await officer.status(client, request.request_id)).status
        if status is Status.AWAITING_VERIFICATION:
            note = OfficerNote(officer="bench", note="benchmark: verified by hand")
            await officer.update(
                client, request.request_id, "mark_verified", note, UpdateResult, signer=bench
            )
            return True
        if status is not Status.RECEIVED:
            return False
        await asyncio.sleep(0.05)
