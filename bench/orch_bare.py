"""The bare baseline: a Temporal workflow that makes the same remote activity calls as a real
request, in the same shape, with activities that do nothing, served by its own worker process.

The shape is read from a real request's history: the activities (and child workflows) each
workflow task scheduled, batch by batch, on which task queue. The bare workflow runs each
batch in parallel, in order, on its own task queues (``bench-<queue>``), with the default
data converter (no payload encryption) and async no-op activities.

    python bench/orch_bare.py worker ADDRESS NAMESPACE QUEUE [QUEUE ...]
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

BARE_WORKFLOW = "BareRequest"
CHILD = "child"  # a batch entry that starts a child workflow rather than an activity
LOCAL = "local"  # a batch entry that runs a local activity, before the batch's remote calls
LOCAL_MARKER = "core_local_activity"
QUEUE_PREFIX = "bench-"
CALL = timedelta(seconds=60)
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))


def bare_queue(queue: str) -> str:
    return QUEUE_PREFIX + queue


def shape_of(events: list[HistoryEvent]) -> list[list[str]]:
    """Per workflow task that did something: ``local`` for each local activity it ran, then
    the task queue of each activity it scheduled (``child`` for a child workflow)."""
    batches: list[list[str]] = [[]]
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            batches.append([])
        elif _is_local_activity(event):
            batches[-1].append(LOCAL)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            batches[-1].append(event.activity_task_scheduled_event_attributes.task_queue.name)
        elif event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            batches[-1].append(CHILD)
    return [batch for batch in batches if batch]


def activity_names(events: list[HistoryEvent]) -> list[str]:
    """The activities called, in order; a local activity's name ends in `` (local)``."""
    names = []
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names.append(event.activity_task_scheduled_event_attributes.activity_type.name)
        elif _is_local_activity(event):
            data = event.marker_recorded_event_attributes.details["data"].payloads[0].data
            names.append(f"{json.loads(data)['activity_type']} (local)")
    return names


def _is_local_activity(event: HistoryEvent) -> bool:
    return (
        event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == LOCAL_MARKER
    )


@activity.defn(name="noop")
async def noop(argument: str) -> str:
    return argument


@workflow.defn(name="BareChild")
class BareChild:
    """Stands for the deferred erasure a real erasure leaves behind: it waits for months."""

    @workflow.run
    async def run(self) -> None:
        await asyncio.sleep(timedelta(days=180).total_seconds())


@workflow.defn(name=BARE_WORKFLOW)
class BareRequest:
    @workflow.run
    async def run(self, shape: list[list[str]]) -> int:
        calls = 0
        for batch in shape:
            for _ in range(batch.count(LOCAL)):
                await workflow.execute_local_activity(
                    noop, "x", start_to_close_timeout=CALL, retry_policy=RETRY
                )
            remote = [queue for queue in batch if queue != LOCAL]
            await asyncio.gather(*(self._call(queue, n) for n, queue in enumerate(remote)))
            calls += sum(queue != CHILD for queue in batch)
        return calls

    async def _call(self, queue: str, n: int) -> None:
        if queue == CHILD:
            await workflow.start_child_workflow(
                BareChild.run,
                id=f"{workflow.info().workflow_id}-child-{n}",
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
            return
        await workflow.execute_activity(
            noop,
            "x",
            task_queue=bare_queue(queue),
            start_to_close_timeout=CALL,
            retry_policy=RETRY,
        )


async def serve(address: str, namespace: str, queues: list[str]) -> None:
    """One worker per queue in this process, like the embedded stack's ``worker.py --all``;
    the workflows on the first queue."""
    client = await Client.connect(address, namespace=namespace)
    workers = [
        Worker(
            client,
            task_queue=bare_queue(queue),
            activities=[noop],
            workflows=[BareRequest, BareChild] if n == 0 else [],
        )
        for n, queue in enumerate(queues)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(*(worker.__aenter__() for worker in workers))
    print("ready", flush=True)
    await stop.wait()
    await asyncio.gather(*(worker.__aexit__(None, None, None) for worker in workers))


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[0] != "worker":
        raise SystemExit(__doc__)
    asyncio.run(serve(argv[1], argv[2], argv[3:]))


if __name__ == "__main__":
    main(sys.argv[1:])
