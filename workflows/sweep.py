"""The daily retention sweep, started by a Temporal Schedule: every connector anonymises what
has outlived its retention, with no request involved, and the counts go into the ledger.

One sweep per day: its ``as_of`` is the start of the day (UTC) and its ``sweep_id`` names the
day, so a retried or repeated run of the same day sends the same rules under the same id and
each connector answers ``already_done`` instead of sweeping twice. A connector whose worker
is down or that fails is reported, not fatal for the others; the next day's sweep reaches
what it missed (a sweep takes everything dated before its cutoffs).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout

from workflows import calls

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.sweep import (
        PLAN_SWEEP,
        RECORD_SWEEP,
        ConnectorSweep,
        RecordSweep,
        SweepPlan,
        SweepPlanQuery,
        SweepReport,
    )
    from dsr.connector_contract import Operation, SweepInput, SweepResult, activity_name

WORKFLOW_NAME = "RetentionSweep"
QUICK = timedelta(minutes=1)
SWEEP_CALL = timedelta(hours=2)  # a large store; the heartbeat notices a dead worker sooner


class SweepRequest(BaseModel):
    """Optional: the day to sweep as of (not in the future) and the sweep id. A Schedule
    passes nothing: today, and an id naming today."""

    as_of: datetime | None = None
    sweep_id: str | None = None


def sweep_id_for(as_of: datetime) -> str:
    return f"retention-sweep-{as_of.date().isoformat()}"


@workflow.defn(name=WORKFLOW_NAME)
class RetentionSweepWorkflow:
    @workflow.run
    async def run(self, request: SweepRequest | None = None) -> SweepReport:
        request = request or SweepRequest()
        now = workflow.now()
        as_of = request.as_of or datetime.combine(now.astimezone(UTC).date(), time.min, UTC)
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)  # the product speaks UTC
        if as_of > now:
            raise ApplicationError(
                "a sweep cannot run as of a time still to come (it would cut duties short)",
                type="SweepInFuture",
                non_retryable=True,
            )
        sweep_id = request.sweep_id or sweep_id_for(as_of)
        plan = await calls.activity(
            PLAN_SWEEP, SweepPlanQuery(as_of=as_of), start_to_close_timeout=QUICK
        )
        report = SweepReport(sweep_id=sweep_id, as_of=as_of, policy_version=plan.policy_version)
        swept = [part for part in plan.connectors if part.rules]
        report.not_swept = sorted(part.connector for part in plan.connectors if not part.rules)
        report.held = {part.connector: part.held for part in plan.connectors if part.held}
        outcomes = await asyncio.gather(*(self._sweep(plan, part, sweep_id) for part in swept))
        for part, outcome in zip(swept, outcomes, strict=True):
            if isinstance(outcome, str):
                report.failed[part.connector] = outcome
                continue
            report.anonymised[part.connector] = outcome.anonymised
            if outcome.already_done:
                report.already_done.append(part.connector)
        await calls.activity(
            RECORD_SWEEP,
            RecordSweep(report=report, at=workflow.now()),
            start_to_close_timeout=QUICK,
        )
        return report

    async def _sweep(
        self, plan: SweepPlan, part: ConnectorSweep, sweep_id: str
    ) -> SweepResult | str:
        """The connector's result, or why it has none (the failure's type, never its
        message: a connector's message may quote personal data)."""
        try:
            result: SweepResult = await calls.activity(
                activity_name(part.connector, Operation.SWEEP),
                SweepInput(sweep_id=sweep_id, as_of=plan.as_of, rules=part.rules),
                task_queue=part.task_queue,
                result_type=SweepResult,
                schedule_to_start_timeout=timedelta(seconds=plan.start_timeout_seconds),
                start_to_close_timeout=SWEEP_CALL,
                heartbeat_timeout=timedelta(seconds=plan.heartbeat_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=plan.retry_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=1),
                    maximum_attempts=plan.max_attempts,
                ),
                summary=f"{part.connector} sweep",
                refusals=plan.max_attempts,
            )
        except calls.ResultRefused:
            return "failed: its result was not the product's"
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, ActivityTimeout):
                if cause.type is TimeoutType.SCHEDULE_TO_START:
                    return "worker unavailable: no worker picked the sweep up"
                return f"timed out ({cause.type.name.lower() if cause.type else 'unknown'})"
            kind = getattr(cause, "type", None) or type(cause).__name__
            return f"failed: {kind}"
        return result
