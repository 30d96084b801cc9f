"""Recipients without an API (approved sub-processors): the instruction goes by email, an
officer records the recipient's confirmation, and is reminded while it is awaited. Also how
recipients learn of a rectification, erasure or restriction (GDPR Art. 19)."""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import timedelta
from functools import partial
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from dsr.connector_registry import ConnectorEntry, DataRole
    from workflows.models import (
        ConnectorResolution,
        ConnectorState,
        ConnectorStatus,
        InstructionConfirmation,
        UpdateResult,
    )

from workflows.connectors import ConnectorFanOut


class Instructions(ConnectorFanOut):
    def _recipient_instructions(self) -> list[Coroutine[Any, Any, None]]:
        return [self._instruct(entry) for entry in self._instructed_recipients()]

    def _instructed_recipients(self) -> list[ConnectorEntry]:
        role = DataRole.END_USER if self._req.customer_scope else DataRole.GROUP
        types = {identity.type for identity in self._req.identities}
        return [
            entry
            for entry in self._pol.connectors
            if entry.instruct_by_email is not None
            and entry.role is role
            and types & set(entry.identity_types)
            and self._operations(entry)
        ]

    async def _instruct(self, entry: ConnectorEntry) -> None:
        assert entry.instruct_by_email is not None
        state = ConnectorState(connector=entry.name, status=ConnectorStatus.AWAITING_CONFIRMATION)
        self._connectors[entry.name] = state
        self._refresh_attention()
        operations = [operation.value for operation in self._operations(entry)]
        request = self._req
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
