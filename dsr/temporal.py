"""Connecting to Temporal with the product's data converter, and the purge Schedule."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.contrib.pydantic import pydantic_data_converter

from dsr.settings import Settings

SCHEDULE_ID = "dsr-confirmation-purge"
PURGE_WORKFLOW = "ConfirmationPurge"
PURGE_EVERY = timedelta(days=1)


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


def purge_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            PURGE_WORKFLOW, id="dsr-confirmation-purge-run",
            task_queue=settings.task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=PURGE_EVERY)]),
    )


async def ensure_purge_schedule(client: Client, settings: Settings) -> bool:
    """Create the daily purge Schedule; True if created, False if it already existed."""
    try:
        await client.create_schedule(SCHEDULE_ID, purge_schedule(settings))
    except ScheduleAlreadyRunningError:
        return False
    return True
