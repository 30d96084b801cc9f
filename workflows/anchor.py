"""The hourly anchoring of the audit ledger's head outside the database, started by a Temporal
Schedule (the daily purge anchors too)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows import calls

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.anchor import ANCHOR_LEDGER, AnchorInput
    from dsr.anchors import Anchor


@workflow.defn(name="LedgerAnchor")
class LedgerAnchorWorkflow:
    @workflow.run
    async def run(self) -> Anchor:
        return await calls.activity(
            ANCHOR_LEDGER,
            AnchorInput(as_of=workflow.now()),
            start_to_close_timeout=timedelta(minutes=1),
        )
