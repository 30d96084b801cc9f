"""The product's Schedules on a bare namespace of the dev server (the time-skipping server has
none): created where missing, updated where they differ (an operator's pause kept), left alone
otherwise, and named by a worker's check; and the hourly anchoring they start."""

from __future__ import annotations

import uuid
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.testing import WorkflowEnvironment

from dsr import ledger, schedules
from dsr.schedules import SCHEDULES, Change
from dsr.settings import Settings
from tests.conftest import Harness, save_history
from workflows.anchor import LedgerAnchorWorkflow

SETTINGS = Settings(task_queue="dsr-orchestrator")
BY_ID = {entry.schedule_id: entry for entry in SCHEDULES}


async def bare_namespace(env: WorkflowEnvironment) -> Client:
    namespace = f"bare-{uuid.uuid4().hex[:8]}"
    await env.client.workflow_service.register_namespace(RegisterNamespaceRequest(
        namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)))
    config = env.client.config()
    config["namespace"] = namespace
    return Client(**config)


async def test_schedules_are_created_updated_and_then_left_alone(
        dev_env: WorkflowEnvironment) -> None:
    client = await bare_namespace(dev_env)
    missing = await schedules.problems(client, SETTINGS)
    assert missing == [
        "Schedule dsr-confirmation-purge is missing: nothing will purge proof, the register "
        "and packages past retention",
        "Schedule dsr-retention-sweep is missing: nothing will sweep the connectors' data past "
        "retention",
        "Schedule dsr-ledger-anchor is missing: nothing will anchor the audit ledger's head "
        "outside the database"]
    # The purge as the embedded stack created it before: no policy (a year's catch-up).
    await client.create_schedule("dsr-confirmation-purge", Schedule(
        action=ScheduleActionStartWorkflow("ConfirmationPurge", id="dsr-confirmation-purge-run",
                                           task_queue=SETTINGS.task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))])))

    first = {entry.schedule_id: change for entry, change in
             await schedules.ensure(client, SETTINGS)}
    assert first == {"dsr-confirmation-purge": Change.UPDATED,
                     "dsr-retention-sweep": Change.CREATED, "dsr-ledger-anchor": Change.CREATED}
    assert await schedules.problems(client, SETTINGS) == []
    for schedule_id, entry in BY_ID.items():
        described = (await client.get_schedule_handle(schedule_id).describe()).schedule
        action = described.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.id, action.task_queue) == (
            entry.workflow, entry.run_id, SETTINGS.task_queue)
        assert [i.every for i in described.spec.intervals] == [entry.every]
        assert described.policy.catchup_window == entry.every
    assert BY_ID["dsr-ledger-anchor"].every == timedelta(hours=1)

    def every_two_days(current: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = current.description.schedule
        schedule.spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=2))])
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle("dsr-retention-sweep").update(every_two_days)
    await client.get_schedule_handle("dsr-ledger-anchor").pause(note="the operator's")
    assert await schedules.problems(client, SETTINGS) == [
        "Schedule dsr-retention-sweep runs on another specification, not every 1 day"]
    again = [change for _, change in await schedules.ensure(client, SETTINGS)]
    assert again == [Change.UNCHANGED, Change.UPDATED, Change.UNCHANGED]
    anchor = await client.get_schedule_handle("dsr-ledger-anchor").describe()
    assert anchor.schedule.state.paused, "a pause is the operator's to lift"
    sweep = await client.get_schedule_handle("dsr-retention-sweep").describe()
    assert [i.every for i in sweep.schedule.spec.intervals] == [timedelta(days=1)]
    assert [c for _, c in await schedules.ensure(client, SETTINGS)] == [Change.UNCHANGED] * 3


async def test_the_anchoring_run_writes_the_ledgers_head(harness: Harness) -> None:
    h = harness
    await (await h.submit(h.request())).result()  # something in the ledger
    handle = await h.client.start_workflow(
        LedgerAnchorWorkflow.run, id=f"anchor-{uuid.uuid4().hex[:8]}",
        task_queue=h.settings.task_queue)
    head = await handle.result()
    await save_history(handle, "ledger_anchored")
    anchors = ledger.read_anchors(ledger.anchors_path(h.settings))
    assert anchors[-1] == head and head.seq > 0
    result = ledger.verify(h.engine, ledger.ledger_key(h.settings.secret),
                           ledger.anchors_path(h.settings))
    assert result.ok, result


def test_every_schedule_starts_a_workflow_the_orchestrator_serves() -> None:
    from worker import WORKFLOWS

    served = {getattr(w, "__temporal_workflow_definition").name for w in WORKFLOWS}
    assert {entry.workflow for entry in SCHEDULES} <= served
