"""Where the answer goes: only to a verified recipient (``dsr.recipients``). When the
request's verification vouches for no address, the request waits for an officer to confirm
the requester's (``confirm_recipient``), and the officer is told."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from dsr.models import RightsRequest
    from dsr.recipients import Recipient, contact_account, verified_recipient
    from dsr.status import Status
    from workflows.models import OfficerNote, StepStatus, UpdateResult

from workflows.base import RequestState

PATCH = "verified-recipient"
WAITING = "waiting for an officer to confirm the recipient (starter.py confirm-recipient)"


class AnswerRecipient(RequestState):
    async def _find_registered_contact(self, request: RightsRequest) -> None:
        """Once verified, and before anything is erased (erasing an account clears its
        registered address): the registered contact the answer may go to, if any."""
        self._recipient_rule = workflow.patched(PATCH)
        account = contact_account(request, self._targets)
        if self._recipient_rule and account is not None:
            self._recipient_contact = await self._registered_email(account)

    async def _answer_recipient(self, request: RightsRequest) -> Recipient | None:
        """The verified recipient of the answer, once there is one; None for a request begun
        before this rule (the requester's address, as it was then)."""
        if not self._recipient_rule:
            return None
        recipient = self._recipient(request)
        if recipient is None:
            await self._await_recipient()
            recipient = self._recipient(request)
            assert recipient is not None
        self._answer_to = recipient.email
        self._set_step("answer", StepStatus.RUNNING, f"to {recipient.basis.value}")
        return recipient

    def _recipient(self, request: RightsRequest) -> Recipient | None:
        confirmed = self._recipient_confirmed is not None
        return verified_recipient(request, self._targets, self._recipient_contact, confirmed)

    async def _registered_email(self, account: str) -> str | None:
        """The account's registered address: the one its code went to, else looked up."""
        for target in self._targets:
            if target.registered_account == account and target.target_id in self._registered:
                return self._registered[target.target_id]
        contact = await self._registered_contact(account)
        return contact.get("email") or None

    async def _await_recipient(self) -> None:
        self._awaiting_recipient = True
        self._set_status(Status.AWAITING_RECIPIENT)
        self._set_step("answer", StepStatus.RUNNING, WAITING)
        await self._notice("officer_confirm_recipient", key="officer_confirm_recipient")
        await self._milestone("awaiting-recipient", "answer")
        await workflow.wait_condition(
            lambda: self._recipient_confirmed is not None or self._stopping
        )
        self._awaiting_recipient = False
        self._check_stopped()

    @workflow.update(name="confirm_recipient")
    async def confirm_recipient(self, note: OfficerNote) -> UpdateResult:
        note = self._acting("confirm_recipient", note)
        self._recipient_confirmed = note
        self._resume(Status.IN_PROGRESS)  # answered once any awaited reply is in
        await self._milestone(
            "recipient-confirmed", "answer", actor=note.actor, detail={"note": note.note}
        )
        return UpdateResult(
            message="the requester's address is confirmed; the answer is being sent"
        )

    @confirm_recipient.validator
    def _validate_confirm_recipient(self, note: OfficerNote) -> None:
        self._authorize("confirm_recipient", note)
        if not self._awaiting_recipient or self._recipient_confirmed or self._stopping:
            raise ValueError(
                f"the request is not waiting for its recipient to be confirmed ({self._status})"
            )
