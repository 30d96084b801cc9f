"""Calling the affiliates' connectors: each call's retries and refused results, and the
officer's decision when a connector keeps failing or its worker is missing (retry, done by
hand, skipped: ``resolve_connector``), without holding up the other connectors. Discovery,
execution and referral call connectors through this part."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from dsr import connector_contract as p
    from dsr import search_attributes as sa
    from dsr.connector_registry import ConnectorEntry, DataRole
    from dsr.models import RightsRequest
    from dsr.status import Status
    from workflows.models import (
        ConnectorDecision,
        ConnectorResolution,
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


class ConnectorCalls(RequestState):
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


def _worker_missing(error: ActivityError) -> bool:
    """No worker picked the call up in time: the connector's worker is down or absent."""
    cause = error.cause
    return isinstance(cause, ActivityTimeout) and cause.type is TimeoutType.SCHEDULE_TO_START


def _failure_type(error: ActivityError) -> str:
    """The failure's type only: a connector's message may quote personal data."""
    cause = error.cause
    kind = getattr(cause, "type", None) or type(cause).__name__
    return str(kind)
