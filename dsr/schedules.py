"""The product's Schedules, as data: what each starts, how often, and what happens when a run
is late or still going. ``ensure`` makes the namespace hold exactly these (creating what is
missing, updating what differs, naming each); ``problems`` is what a worker warns of at start.
``setup-cluster`` (and so the compose and Kubernetes setup jobs) and the embedded stack call
``ensure``: without it nothing purges, sweeps or anchors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from dsr.codec import ANCHOR_RUN_ID, PURGE_RUN_ID, SWEEP_RUN_ID
from dsr.settings import Settings


@dataclass(frozen=True)
class ProductSchedule:
    schedule_id: str
    workflow: str
    run_id: str  # each run's workflow id is this, "-" and the time (``dsr.codec`` binds it)
    every: timedelta
    purpose: str


SCHEDULES = (
    ProductSchedule("dsr-confirmation-purge", "ConfirmationPurge", PURGE_RUN_ID,
                    timedelta(days=1), "purge proof, the register and packages past retention"),
    ProductSchedule("dsr-retention-sweep", "RetentionSweep", SWEEP_RUN_ID, timedelta(days=1),
                    "sweep the connectors' data past retention"),
    ProductSchedule("dsr-ledger-anchor", "LedgerAnchor", ANCHOR_RUN_ID, timedelta(hours=1),
                    "anchor the audit ledger's head outside the database"),
)


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def desired(entry: ProductSchedule, settings: Settings) -> Schedule:
    """One run at a time; after an outage one catch-up run, not one per missed interval
    (each run takes everything due anyway)."""
    return Schedule(
        action=ScheduleActionStartWorkflow(entry.workflow, id=entry.run_id,
                                           task_queue=settings.task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=entry.every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=entry.every),
    )


def differences(entry: ProductSchedule, settings: Settings,
                described: ScheduleDescription) -> list[str]:
    """How the Schedule on the server differs from the product's (empty: it does not). Its
    state (paused, notes) is the operator's and is left alone."""
    schedule, found = described.schedule, []
    action = schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or (
            action.workflow, action.id, action.task_queue) != (
            entry.workflow, entry.run_id, settings.task_queue):
        found.append(f"starts {_what(action)}, not {entry.workflow} on {settings.task_queue}")
    intervals = [(i.every, i.offset or timedelta(0)) for i in schedule.spec.intervals]
    if (intervals != [(entry.every, timedelta(0))] or schedule.spec.calendars
            or schedule.spec.cron_expressions):
        found.append(f"runs on another specification, not every {_span(entry.every)}")
    policy = schedule.policy
    if (policy.overlap, policy.catchup_window) != (ScheduleOverlapPolicy.SKIP, entry.every):
        found.append("has another overlap or catch-up policy")
    return found


def _span(every: timedelta) -> str:
    hours = int(every / timedelta(hours=1))
    count, unit = (hours // 24, "day") if hours % 24 == 0 else (hours, "hour")
    return f"{count} {unit}{'s' if count != 1 else ''}"


def _what(action: object) -> str:
    if isinstance(action, ScheduleActionStartWorkflow):
        return f"{action.workflow} on {action.task_queue}"
    return type(action).__name__


async def ensure(client: Client, settings: Settings) -> list[tuple[ProductSchedule, Change]]:
    """Create each missing Schedule and update each that differs; idempotent."""
    changes = []
    for entry in SCHEDULES:
        changes.append((entry, await _ensure_one(client, settings, entry)))
    return changes


async def _ensure_one(client: Client, settings: Settings, entry: ProductSchedule) -> Change:
    wanted = desired(entry, settings)
    try:
        await client.create_schedule(entry.schedule_id, wanted)
        return Change.CREATED
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(entry.schedule_id)
    if not differences(entry, settings, await handle.describe()):
        return Change.UNCHANGED

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        wanted.state = current.description.schedule.state  # paused stays paused
        return ScheduleUpdate(schedule=wanted)

    await handle.update(update)
    return Change.UPDATED


async def problems(client: Client, settings: Settings) -> list[str]:
    """Each Schedule missing or differing, in words an operator acts on."""
    found = []
    for entry in SCHEDULES:
        try:
            described = await client.get_schedule_handle(entry.schedule_id).describe()
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            found.append(f"Schedule {entry.schedule_id} is missing: nothing will "
                         f"{entry.purpose}")
            continue
        found += [f"Schedule {entry.schedule_id} {difference}"
                  for difference in differences(entry, settings, described)]
    return found
