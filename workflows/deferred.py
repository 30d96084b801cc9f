"""The durable promise behind "kept until": one workflow per request whose erasure had to
leave something behind, erasing it when the duty ends or the legal hold is released.

Each run waits for the earliest date a retained part may go, or for a ``recheck`` signal,
which releasing a hold sends (`hold release`, or `hold recheck` after an outage); parts kept
"until released" wait for that signal alone. It then discovers those parts again and runs the
hold check anew: what is free now is erased, what a rule or another hold still keeps stays,
and it continues as new with what remains, so its history stays small across years.

Only records that existed when the request was executed are erased (``erase_before``): data
the person created later was not part of the request.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows import calls

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.legal_hold import CHECK_HOLDS, HoldCheck
    from activities.interfaces.mail import SEND_NOTICE, Notice
    from activities.interfaces.policy import SNAPSHOT_POLICY, PolicyQuery
    from activities.interfaces.register import RECORD_MILESTONE
    from dsr import connector_contract as p
    from dsr import search_attributes as sa
    from dsr.connector_registry import ConnectorEntry
    from dsr.models import RightsRequest
    from dsr.register import Milestone
    from dsr.retention import RetainedPart
    from workflows.connectors import connector_scope

WORKFLOW_NAME = "DeferredErasure"
CALL = timedelta(minutes=10)
QUICK = timedelta(seconds=30)
PATIENT = RetryPolicy(maximum_interval=timedelta(hours=1))  # a worker may be down for days


class DeferredInput(BaseModel):
    request: RightsRequest
    parts: list[RetainedPart]
    erase_before: datetime
    round: int = 1
    # Where the answer went (a verified recipient); None: the requester's address, as for
    # erasures answered before the rule.
    recipient: str | None = Field(default=None, repr=False)


class Recheck(BaseModel):
    """Asks a deferred erasure to look again: sent by the product's own clients only."""

    reason: str = "a hold was released"


class DeferredOutcome(BaseModel):
    request_id: str
    erased: dict[str, dict[str, int]]  # connector -> category -> records, in the last round
    remaining: list[RetainedPart]


def workflow_id(request_id: str) -> str:
    return f"dsr-deferred-{request_id}"


@workflow.defn(name=WORKFLOW_NAME)
class DeferredErasureWorkflow:
    def __init__(self) -> None:
        self._recheck = False
        self._parts: list[RetainedPart] = []

    @workflow.signal(name="recheck")
    def recheck(self, ask: Recheck | None = None) -> None:
        """A hold was released: look again now. A recheck without the product's payload
        (anyone reaching the server can send a Signal with none) is dropped."""
        if ask is None and workflow.patched("recheck-needs-payload"):
            workflow.logger.warning("recheck without a payload dropped")
            return
        self._recheck = True

    @workflow.query(name="parts")
    def parts(self) -> list[RetainedPart]:
        return self._parts

    @workflow.run
    async def run(self, start: DeferredInput) -> DeferredOutcome:
        self._parts = start.parts
        due = next_check(start.parts)
        self._show(start.parts, due)
        await self._wait_until(due)
        erased, remaining = await self._erase_what_is_free(start)
        if erased or not remaining:  # the last round is recorded even if it found nothing
            await self._record(start, erased, remaining)
        if remaining:
            workflow.continue_as_new(
                start.model_copy(update={"parts": remaining, "round": start.round + 1})
            )
        return DeferredOutcome(request_id=start.request.request_id, erased=erased, remaining=[])

    async def _wait_until(self, due: datetime | None) -> None:
        if due is None:
            await workflow.wait_condition(lambda: self._recheck)
            return
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._recheck,
                timeout=max(due - workflow.now(), timedelta(seconds=1)),
                timeout_summary="retention ends or recheck",
            )

    async def _erase_what_is_free(
        self, start: DeferredInput
    ) -> tuple[dict[str, dict[str, int]], list[RetainedPart]]:
        policy = await calls.activity(
            SNAPSHOT_POLICY, PolicyQuery(as_of=workflow.now()), start_to_close_timeout=QUICK
        )
        wanted = {(part.connector, part.category) for part in start.parts}
        entries = [e for e in policy.connectors if e.name in {c for c, _ in wanted}]
        found = await asyncio.gather(*(self._discover(start.request, e) for e in entries))
        discoveries = [_only(d, wanted) for d in found]
        plan = await calls.activity(
            CHECK_HOLDS,
            HoldCheck(
                request_id=start.request.request_id, discoveries=discoveries,
                as_of=workflow.now(), identities=start.request.identities,
            ),
            start_to_close_timeout=QUICK,
        )
        results = await asyncio.gather(
            *(
                self._erase(start, entry, plan.rules[entry.name])
                for entry in entries
                if plan.rules.get(entry.name)
            )
        )
        erased = {r.connector: r.erased for r in results if any(r.erased.values())}
        remaining = [part for part in plan.retained if (part.connector, part.category) in wanted]
        return erased, remaining

    async def _discover(self, request: RightsRequest, entry: ConnectorEntry) -> p.Discovery:
        return await calls.activity(
            p.activity_name(entry.name, p.Operation.DISCOVER),
            connector_scope(request, entry, workflow.now()),
            task_queue=entry.task_queue,
            result_type=p.Discovery,
            start_to_close_timeout=CALL,
            retry_policy=PATIENT,
        )

    async def _erase(
        self, start: DeferredInput, entry: ConnectorEntry, rules: list[p.EraseRule]
    ) -> p.EraseResult:
        capped = [
            rule.model_copy(
                update={"before": min(rule.before or start.erase_before, start.erase_before)}
            )
            for rule in rules
        ]
        call = p.EraseInput(
            scope=connector_scope(start.request, entry, workflow.now()), rules=capped
        )
        return await calls.activity(
            p.activity_name(entry.name, p.Operation.ERASE),
            call,
            task_queue=entry.task_queue,
            result_type=p.EraseResult,
            start_to_close_timeout=CALL,
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=PATIENT,
        )

    async def _record(
        self,
        start: DeferredInput,
        erased: dict[str, dict[str, int]],
        remaining: list[RetainedPart],
    ) -> None:
        request = start.request
        await calls.activity(
            RECORD_MILESTONE,
            Milestone(
                request_id=request.request_id,
                key=f"deferred-erasure-{start.round}",
                step="deferred_erasure",
                at=workflow.now(),
                detail={"erased": erased, "still_kept": len(remaining)},
            ),
            start_to_close_timeout=QUICK,
        )
        if not erased or not request.notify_deferred_erasure:
            return
        lines = [
            f"{connector}: {', '.join(sorted(categories))}"
            for connector, categories in sorted(erased.items())
        ]
        notice = Notice(
            request_id=request.request_id,
            template="deferred_erasure",
            language=request.language,
            to=start.recipient or request.requester.email,
            message_id=f"<deferred-erasure-{start.round}.{request.request_id}@dsr>",
            context={
                "erased_on": workflow.now().date().isoformat(),
                "erased": lines,
                "remaining": bool(remaining),
            },
        )
        await calls.activity(SEND_NOTICE, notice, start_to_close_timeout=QUICK)

    def _show(self, parts: list[RetainedPart], due: datetime | None) -> None:
        """What the Web UI shows: when it next looks, which products, which rules or holds."""
        workflow.upsert_search_attributes(
            [
                sa.STATUS.value_set("awaiting_erasure"),
                sa.ERASE_AT.value_set(due) if due else sa.ERASE_AT.value_unset(),
                sa.PRODUCT.value_set(",".join(sorted({part.connector for part in parts}))),
                sa.HOLD_REASON.value_set(",".join(sorted({part.rule_id for part in parts}))),
            ]
        )


def next_check(parts: list[RetainedPart]) -> datetime | None:
    """The start (UTC) of the day after the earliest ``until``; None when every part is kept
    until a hold is released."""
    return min((_day_after(part.until) for part in parts if part.until is not None), default=None)


def _day_after(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def _only(discovery: p.Discovery, wanted: set[tuple[str, str]]) -> p.Discovery:
    holdings = [h for h in discovery.holdings if (discovery.connector, h.category) in wanted]
    return discovery.model_copy(update={"holdings": holdings})
