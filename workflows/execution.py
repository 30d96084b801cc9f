"""Execution: each connector holding the person's data does what the rights ask (in the order
of ``dsr.rights``), while recipients without an API (approved sub-processors) get the
instruction by email; an officer records each such recipient's confirmation
(``confirm_instruction``), and is reminded while it is awaited. That is also how recipients
learn of a rectification, erasure or restriction (GDPR Art. 19)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.policy import RequestPolicy
    from dsr import connector_contract as p
    from dsr import rights
    from dsr.connector_registry import ConnectorEntry, DataRole
    from dsr.emails import ProductOutcome
    from dsr.models import RightsRequest
    from dsr.retention import ErasurePlan
    from workflows.models import (
        ConnectorResolution,
        ConnectorState,
        ConnectorStatus,
        InstructionConfirmation,
        UpdateResult,
    )

from workflows.connectors import ConnectorCalls, connector_scope


class Execution(ConnectorCalls):
    async def _execute(self, request: RightsRequest, policy: RequestPolicy,
                       discoveries: list[p.Discovery], plan: ErasurePlan | None) -> None:
        self._begin("execute")
        await self._checkpoint()
        self._executing = True
        holding = [d for d in discoveries if d.records]
        await asyncio.gather(
            *(self._execute_connector(request, self._entry_or_fail(d.connector), plan)
              for d in holding),
            *(self._instruct(request, entry)
              for entry in instructed_recipients(request, policy.connectors)),
        )
        self._done("execute", f"{len(holding)} connectors")
        await self._milestone(
            "execute", "execute", detail={n: s.status.value for n, s in self._connectors.items()}
        )
        self._check_stopped()

    async def _execute_connector(
        self, request: RightsRequest, entry: ConnectorEntry, plan: ErasurePlan | None
    ) -> None:
        state = self._connectors[entry.name]
        results = self._results.setdefault(entry.name, [])
        for operation in connector_operations(request, entry):
            if self._stopping:
                state.status = ConnectorStatus.NOT_STARTED
                return
            payload, result_type = self._operation_input(request, entry, operation, plan)
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

    def _operation_input(
        self, request: RightsRequest, entry: ConnectorEntry, operation: p.Operation,
        plan: ErasurePlan | None,
    ) -> tuple[Any, type]:
        scope = connector_scope(request, entry, self._now())
        if operation is p.Operation.ACCESS:
            return p.AccessInput(scope=scope), p.AccessResult
        if operation is p.Operation.ERASE:
            rules = plan.rules.get(entry.name, []) if plan else []
            return p.EraseInput(scope=scope, rules=rules), p.EraseResult
        if operation is p.Operation.RECTIFY:
            return p.RectifyInput(scope=scope, corrections=request.corrections), p.RectifyResult
        return p.FlagInput(scope=scope), p.FlagResult

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

    # --- recipients instructed by email ----------------------------------------------------

    async def _instruct(self, request: RightsRequest, entry: ConnectorEntry) -> None:
        assert entry.instruct_by_email is not None
        state = ConnectorState(connector=entry.name, status=ConnectorStatus.AWAITING_CONFIRMATION)
        self._connectors[entry.name] = state
        self._refresh_attention()
        operations = [operation.value for operation in connector_operations(request, entry)]
        await self._notice(
            "instruction",
            to=entry.instruct_by_email.email,
            key=f"instruction.{entry.name}",
            operations=operations,
            identities=[
                f"{i.type.value}: {i.value}"
                for i in request.identities
                if i.type in entry.identity_types
            ],
            customer_account=request.customer_scope,
        )
        await self._milestone(
            f"instructed-{entry.name}",
            "execute",
            detail={"connector": entry.name, "operations": operations},
        )
        await self._await_confirmation(entry)
        self._refresh_attention()

    async def _await_confirmation(self, entry: ConnectorEntry) -> None:
        assert entry.instruct_by_email is not None
        instructed_on = self._now().date().isoformat()
        every = timedelta(hours=entry.instruct_by_email.remind_after_hours)
        reminders = 0
        while not self._answered(entry.name):
            try:
                await workflow.wait_condition(
                    partial(self._answered, entry.name),
                    timeout=every,
                    timeout_summary=f"{entry.name} confirmation",
                )
            except TimeoutError:
                reminders += 1
                await self._notice(
                    "officer_instruction_reminder",
                    key=f"instruction_reminder.{entry.name}.{reminders}",
                    connector=entry.name,
                    instructed_on=instructed_on,
                )
        self._settle(entry.name)

    def _answered(self, connector: str) -> bool:
        return (
            self._connectors[connector].status is not ConnectorStatus.AWAITING_CONFIRMATION
            or connector in self._decisions
            or self._stopping
        )

    def _settle(self, connector: str) -> None:
        state = self._connectors[connector]
        decision = self._decisions.get(connector)
        if state.status is ConnectorStatus.CONFIRMED:
            return
        if decision is not None and decision.resolution is ConnectorResolution.SKIPPED:
            state.status, state.resolution_reason = ConnectorStatus.SKIPPED, decision.reason
        elif decision is not None:
            state.status, state.resolution_reason = ConnectorStatus.DONE_BY_HAND, decision.reason
        else:
            state.status = ConnectorStatus.NOT_STARTED

    @workflow.update(name="confirm_instruction")
    async def confirm_instruction(self, confirmation: InstructionConfirmation) -> UpdateResult:
        confirmation = self._acting("confirm_instruction", confirmation)
        state = self._connectors[confirmation.connector]
        state.status = ConnectorStatus.CONFIRMED
        state.resolution_reason = confirmation.note
        await self._milestone(
            f"confirmed-{confirmation.connector}",
            "execute",
            actor=confirmation.actor,
            detail={"connector": confirmation.connector, "note": confirmation.note},
        )
        return UpdateResult(message=f"{confirmation.connector}: confirmation recorded")

    @confirm_instruction.validator
    def _validate_confirm(self, confirmation: InstructionConfirmation) -> None:
        self._authorize("confirm_instruction", confirmation)
        state = self._connectors.get(confirmation.connector)
        if state is None or state.status is not ConnectorStatus.AWAITING_CONFIRMATION:
            awaiting = [
                n
                for n, s in self._connectors.items()
                if s.status is ConnectorStatus.AWAITING_CONFIRMATION
            ]
            raise ValueError(
                f"{confirmation.connector} is not awaiting a confirmation; "
                f"awaiting: {', '.join(awaiting) or 'none'}"
            )


def connector_operations(request: RightsRequest, entry: ConnectorEntry) -> list[p.Operation]:
    """What the connector does for the request's rights, in the order it does it."""
    return [op for op in rights.operations(request.rights) if entry.supports(op)]


def instructed_recipients(
    request: RightsRequest, connectors: list[ConnectorEntry]
) -> list[ConnectorEntry]:
    """The recipients without an API the request's rights reach: instructed by email."""
    role = DataRole.END_USER if request.customer_scope else DataRole.GROUP
    types = {identity.type for identity in request.identities}
    return [
        entry
        for entry in connectors
        if entry.instruct_by_email is not None
        and entry.role is role
        and types & set(entry.identity_types)
        and connector_operations(request, entry)
    ]


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
