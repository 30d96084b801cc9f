"""The fan-out to the affiliates' connectors: discovery, execution of each right, and the
officer's decision when a connector keeps failing, without holding up the others."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from dsr import connector_contract as p
    from dsr import rights
    from dsr import search_attributes as sa
    from dsr.connector_registry import ConnectorEntry, DataRole
    from dsr.emails import ProductOutcome
    from dsr.models import RightsRequest
    from dsr.retention import ErasurePlan
    from dsr.status import Status
    from workflows.models import (
        ConnectorDecision,
        ConnectorResolution,
        ConnectorState,
        ConnectorStatus,
        UpdateResult,
    )


from workflows import calls
from workflows.base import RequestState

CONNECTOR_CALL = timedelta(minutes=10)
MISSING_BACKOFF_CAP = timedelta(minutes=30)
NEEDS_OFFICER = frozenset(
    {ConnectorStatus.FAILED, ConnectorStatus.MISSING, ConnectorStatus.AWAITING_CONFIRMATION}
)


class ConnectorFanOut(RequestState):
    async def _discover(self) -> list[p.Discovery]:
        self._begin("discover")
        connectors = self._applicable_connectors()
        for entry in connectors:
            self._connectors[entry.name] = ConnectorState(connector=entry.name)
        found = await asyncio.gather(
            *(
                self._call_connector(entry, p.Operation.DISCOVER, self._scope(entry), p.Discovery)
                for entry in connectors
            )
        )
        discoveries = [d for d in found if isinstance(d, p.Discovery)]
        for discovery in discoveries:
            self._connectors[discovery.connector].status = ConnectorStatus.DONE
            self._held[discovery.connector] = discovery.records
        holding = [d.connector for d in discoveries if d.records]
        affiliates = sorted({self._entry_or_fail(n).affiliate for n in holding})
        self._upsert(sa.AFFILIATES.value_set(affiliates))
        self._done("discover", f"{len(holding)} of {len(connectors)} connectors hold data")
        await self._milestone(
            "discover",
            "discover",
            affiliates=affiliates,
            detail={d.connector: d.records for d in discoveries},
        )
        self._check_stopped()
        return discoveries

    def _applicable_connectors(self) -> list[ConnectorEntry]:
        """A customer's instruction reaches its end users' data only; anyone else's request
        reaches the group's own data."""
        role = DataRole.END_USER if self._req.customer_scope else DataRole.GROUP
        types = {identity.type for identity in self._req.identities}
        return [
            entry
            for entry in self._pol.connectors
            if entry.role is role
            and p.Operation.DISCOVER in entry.operations
            and types & set(entry.identity_types)
        ]

    def _scope(self, entry: ConnectorEntry) -> p.Scope:
        return connector_scope(self._req, entry, self._now())

    async def _execute(self, discoveries: list[p.Discovery], plan: ErasurePlan | None) -> None:
        self._begin("execute")
        await self._checkpoint()
        self._executing = True
        holding = [d for d in discoveries if d.records]
        await asyncio.gather(
            *(self._execute_connector(self._entry_or_fail(d.connector), plan) for d in holding),
            *self._recipient_instructions(),
        )
        self._done("execute", f"{len(holding)} connectors")
        await self._milestone(
            "execute", "execute", detail={n: s.status.value for n, s in self._connectors.items()}
        )
        self._check_stopped()

    def _recipient_instructions(self) -> list[Coroutine[Any, Any, None]]:
        """Instructions by email to recipients without an API (``workflows/instructions.py``)."""
        return []

    async def _execute_connector(self, entry: ConnectorEntry, plan: ErasurePlan | None) -> None:
        state = self._connectors[entry.name]
        results = self._results.setdefault(entry.name, [])
        for operation in self._operations(entry):
            if self._stopping:
                state.status = ConnectorStatus.NOT_STARTED
                return
            payload, result_type = self._operation_input(entry, operation, plan)
            result = await self._call_connector(entry, operation, payload, result_type)
            if result is None:
                return
            results.append(result)
            for category, count in _counts(result).items():
                state.records[f"{rights.VERBS[operation]} {category}"] = count
            if isinstance(result, p.EraseResult):
                for category, count in result.retained.items():
                    state.records[f"retained {category}"] = count
        state.status = ConnectorStatus.DONE

    def _operations(self, entry: ConnectorEntry) -> list[p.Operation]:
        return [op for op in rights.operations(self._req.rights) if entry.supports(op)]

    def _operation_input(
        self, entry: ConnectorEntry, operation: p.Operation, plan: ErasurePlan | None
    ) -> tuple[Any, type]:
        scope = self._scope(entry)
        if operation is p.Operation.ACCESS:
            return p.AccessInput(scope=scope), p.AccessResult
        if operation is p.Operation.ERASE:
            rules = plan.rules.get(entry.name, []) if plan else []
            return p.EraseInput(scope=scope, rules=rules), p.EraseResult
        if operation is p.Operation.RECTIFY:
            return p.RectifyInput(scope=scope, corrections=self._req.corrections), p.RectifyResult
        return p.FlagInput(scope=scope), p.FlagResult

    async def _call_connector(
        self, entry: ConnectorEntry, operation: p.Operation, payload: Any, result_type: type
    ) -> Any:
        """Call a connector; when it keeps failing, show it to the officer and wait for a
        decision (retry, done by hand, skipped) without holding up the other connectors."""
        state = self._connectors[entry.name]
        absences = 0
        while True:
            state.status = ConnectorStatus.RUNNING
            try:
                result = await self._connector_call(entry, operation, payload, result_type)
                if absences:
                    self._refresh_attention()  # the worker is back
                return result
            except calls.ResultRefused as refused:
                state.status = ConnectorStatus.FAILED
                state.error = f"{operation.value} failed: {refused.why}"
                retry_after = None
            except ActivityError as error:
                if _worker_missing(error):
                    # Temporal never retries a schedule-to-start timeout: call again later.
                    state.status = ConnectorStatus.MISSING
                    state.error = f"{operation.value}: no {entry.name} worker picked it up"
                    retry_after = self._missing_backoff(absences)
                    absences += 1
                else:
                    state.status = ConnectorStatus.FAILED
                    state.error = f"{operation.value} failed: {_failure_type(error)}"
                    retry_after = None
                    workflow.metric_meter().create_counter(
                        "dsr_connector_failures", "connector calls failed after their retries"
                    ).add(1, {"connector": entry.name})
            decision = await self._await_decision(entry, retry_after, notify=absences <= 1)
            if decision is None and retry_after is not None and not self._stopping:
                continue
            if decision is None or decision.resolution is not ConnectorResolution.RETRY:
                return None

    async def _connector_call(
        self, entry: ConnectorEntry, operation: p.Operation, payload: Any, result_type: type
    ) -> Any:
        """One call, its retries and its refused results; an export outside this request's
        own area is refused too (the package step would refuse it, failing the request)."""
        name = p.activity_name(entry.name, operation)
        result = await calls.activity(
            name,
            payload,
            task_queue=entry.task_queue,
            result_type=result_type,
            schedule_to_start_timeout=timedelta(seconds=self._pol.connector_start_timeout_seconds),
            start_to_close_timeout=CONNECTOR_CALL,
            heartbeat_timeout=timedelta(seconds=self._pol.connector_heartbeat_seconds),
            retry_policy=self._connector_retry(),
            summary=f"{entry.name} {operation.value}",
            refusals=self._pol.connector_max_attempts,
            backoff=timedelta(seconds=self._pol.connector_retry_seconds),
        )
        if isinstance(result, p.AccessResult) and not p.in_export_area(
                result.blob_ref, self._req.request_id):
            raise calls.ResultRefused(name, "its export lies outside this request's area")
        return result

    def _missing_backoff(self, absences: int) -> timedelta:
        seconds = self._pol.connector_missing_retry_seconds * 2**absences
        return timedelta(seconds=min(seconds, MISSING_BACKOFF_CAP.total_seconds()))

    def _connector_retry(self) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self._pol.connector_retry_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=30),
            maximum_attempts=self._pol.connector_max_attempts,
        )

    async def _await_decision(
        self, entry: ConnectorEntry, retry_after: timedelta | None = None, notify: bool = True
    ) -> ConnectorDecision | None:
        """The officer's decision; None when stopped, or when ``retry_after`` passes first."""
        self._decisions.pop(entry.name, None)
        self._refresh_attention()
        if notify:
            await self._notice(
                "officer_connector_failed",
                connector=entry.name,
                error=self._connectors[entry.name].error or "",
                key=f"officer_connector_failed.{entry.name}",
            )
        decided = partial(self._decided, entry.name)
        if retry_after is None:
            await workflow.wait_condition(decided)
        else:
            try:
                await workflow.wait_condition(
                    decided, timeout=retry_after, timeout_summary=f"{entry.name} worker back?"
                )
            except TimeoutError:
                return None
        state = self._connectors[entry.name]
        decision = self._decisions.get(entry.name)
        if decision is None:
            state.status = ConnectorStatus.NOT_STARTED
        elif decision.resolution is ConnectorResolution.DONE_BY_HAND:
            state.status = ConnectorStatus.DONE_BY_HAND
        elif decision.resolution is ConnectorResolution.SKIPPED:
            state.status = ConnectorStatus.SKIPPED
        if decision is not None:
            state.resolution_reason = decision.reason
            await self._milestone(
                f"connector-{entry.name}-{decision.resolution.value}",
                "execute",
                actor=decision.actor,
                detail={
                    "connector": entry.name,
                    "resolution": decision.resolution.value,
                    "reason": decision.reason,
                },
            )
        self._refresh_attention()
        return decision

    def _decided(self, connector: str) -> bool:
        return connector in self._decisions or self._stopping

    def _refresh_attention(self) -> None:
        failing = sorted(n for n, s in self._connectors.items() if s.status in NEEDS_OFFICER)
        self._upsert(sa.CONNECTORS_ATTENTION.value_set(failing))
        if failing:
            self._set_status(Status.AWAITING_OFFICER)
        elif self._status is Status.AWAITING_OFFICER:
            self._set_status(Status.IN_PROGRESS)

    def _outcomes(self) -> list[ProductOutcome]:
        outcomes = []
        for name, state in self._connectors.items():
            entry = self._entry_or_fail(name)
            if state.status is ConnectorStatus.DONE and self._held.get(name):
                outcomes += [
                    ProductOutcome(
                        connector=name,
                        products=entry.products,
                        action=rights.VERBS[_operation_of(result)],
                        records=_counts(result),
                    )
                    for result in self._results.get(name, [])
                ]
            else:
                outcomes.append(
                    ProductOutcome(
                        connector=name,
                        products=entry.products,
                        action=_action_for(state),
                        note=state.resolution_reason,
                    )
                )
        return outcomes

    @workflow.update(name="resolve_connector")
    async def resolve_connector(self, decision: ConnectorDecision) -> UpdateResult:
        decision = self._acting("resolve_connector", decision)
        self._decisions[decision.connector] = decision
        return UpdateResult(message=f"{decision.connector}: {decision.resolution.value}")

    @resolve_connector.validator
    def _validate_resolve(self, decision: ConnectorDecision) -> None:
        self._authorize("resolve_connector", decision)
        state = self._connectors.get(decision.connector)
        if state is None or state.status not in NEEDS_OFFICER:
            failing = [n for n, s in self._connectors.items() if s.status in NEEDS_OFFICER]
            raise ValueError(
                f"connector {decision.connector} is not waiting for an officer; "
                f"failing connectors: {', '.join(failing) or 'none'}"
            )


def connector_scope(request: RightsRequest, entry: ConnectorEntry, as_of: datetime) -> p.Scope:
    """What a connector is asked about: the identities it can look up and, for end-user data,
    the customer whose records alone it may touch."""
    identities = [i for i in request.identities if i.type in entry.identity_types]
    customer = request.customer_scope if entry.role is DataRole.END_USER else None
    return p.Scope(
        request_id=request.request_id,
        identities=identities,
        customer_account=customer,
        as_of=as_of,
    )


def _counts(result: Any) -> dict[str, int]:
    if isinstance(result, p.AccessResult):
        return result.records
    if isinstance(result, p.EraseResult):
        return result.erased
    if isinstance(result, p.RectifyResult):
        return result.updated
    if isinstance(result, p.FlagResult):
        return {"records": result.records}
    return {}


def _operation_of(result: Any) -> p.Operation:
    if isinstance(result, p.AccessResult):
        return p.Operation.ACCESS
    if isinstance(result, p.EraseResult):
        return p.Operation.ERASE
    if isinstance(result, p.RectifyResult):
        return p.Operation.RECTIFY
    return result.operation  # type: ignore[no-any-return]


def _action_for(state: ConnectorState) -> str:
    return {
        ConnectorStatus.DONE_BY_HAND: "done by hand",
        ConnectorStatus.SKIPPED: "skipped",
        ConnectorStatus.DONE: "nothing held",
        ConnectorStatus.CONFIRMED: "instructed",
    }.get(state.status, "not completed")


def _worker_missing(error: ActivityError) -> bool:
    """No worker picked the call up in time: the connector's worker is down or absent."""
    cause = error.cause
    return isinstance(cause, ActivityTimeout) and cause.type is TimeoutType.SCHEDULE_TO_START


def _failure_type(error: ActivityError) -> str:
    """The failure's type only: a connector's message may quote personal data."""
    cause = error.cause
    kind = getattr(cause, "type", None) or type(cause).__name__
    return str(kind)
