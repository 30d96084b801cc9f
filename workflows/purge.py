"""The recurring purge of proof past its retention, started by a Temporal Schedule."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows import calls

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.proof import PURGE_CONFIRMATIONS, PurgeInput, PurgeResult


@workflow.defn(name="ConfirmationPurge")
class ConfirmationPurgeWorkflow:
    @workflow.run
    async def run(self) -> PurgeResult:
        return await calls.activity(
            PURGE_CONFIRMATIONS,
            PurgeInput(as_of=workflow.now()),
            start_to_close_timeout=timedelta(minutes=5),
        )
