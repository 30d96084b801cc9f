"""Identity verification inside the workflow: who must prove what, the one-time codes, the
lock after too many wrong codes, and the officer's manual verification."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.policy import RequestPolicy
    from activities.interfaces.verification import (
        CHECK_CODE,
        ISSUE_CODES,
        CodeCheck,
        CodeIssue,
        CodeRecipient,
    )
    from dsr.models import RightsRequest
    from dsr.status import CLOSED, Status
    from dsr.verification import Method, Target, plan_verification
    from workflows.models import (
        CodeResult,
        CodeSubmission,
        OfficerAction,
        OfficerNote,
        UpdateResult,
    )


from workflows.base import RequestState


class IdentityVerification(RequestState):
    async def _verify(self, request: RightsRequest, policy: RequestPolicy) -> bool:
        self._begin("verify")
        self._targets = plan_verification(request, self._now(), policy.panel_reauth_minutes)
        if not self._targets:
            self._done("verify", "not needed for these rights")
            return True
        await self._resolve_registered_contacts()
        await self._issue_codes(request, policy)
        self._set_status(Status.AWAITING_VERIFICATION)
        while not self._all_verified():
            self._check_stopped()
            remaining = self._verify_by() - self._now()
            if remaining <= timedelta(0):
                self._fail("verify", "not verified in time")
                return False
            round_ = self._code_round
            try:
                await workflow.wait_condition(
                    partial(self._verification_moved, round_),
                    timeout=remaining,
                    timeout_summary="verification expiry",
                )
            except TimeoutError:
                continue
        self._done("verify", ", ".join(t.how or t.method.value for t in self._targets))
        await self._milestone(
            "verify", "verify", detail={t.target_id: t.how or "" for t in self._targets}
        )
        self._set_status(Status.IN_PROGRESS)
        return True

    async def _resolve_registered_contacts(self) -> None:
        """A customer's code goes to the address registered on its account."""
        for target in self._targets:
            if target.registered_account is None or target.verified:
                continue
            contact = await self._registered_contact(target.registered_account)
            if not contact.get("email"):
                target.method = Method.MANUAL
                target.registered_account = None
            else:
                target.how = f"code to registered contact of {target.registered_account}"
                self._registered[target.target_id] = contact["email"]

    async def _issue_codes(self, request: RightsRequest, policy: RequestPolicy) -> None:
        recipients = [
            CodeRecipient(target_id=t.target_id, email=self._code_address(request, t))
            for t in self._targets
            if t.method is Method.CODE and not t.verified
        ]
        if not recipients:
            return
        self._code_round += 1
        issue = CodeIssue(
            request_id=request.request_id,
            round=self._code_round,
            language=request.language,
            valid_hours=policy.code_validity_hours,
            as_of=self._now(),
            recipients=recipients,
        )
        self._codes = await self._activity(ISSUE_CODES, issue)
        self._wrong_codes = 0
        self._locked = False

    def _code_address(self, request: RightsRequest, target: Target) -> str:
        if target.identity_index is not None:
            return request.identities[target.identity_index].value
        return self._registered[target.target_id]

    def _verification_moved(self, round_: int) -> bool:
        return self._all_verified() or self._stopping or self._code_round != round_

    def _all_verified(self) -> bool:
        return all(target.verified for target in self._targets)

    def _verify_by(self) -> datetime:
        pending = [t for t in self._targets if not t.verified]
        if self._codes and any(t.method is Method.CODE for t in pending):
            return max(code.expires_at for code in self._codes)
        return self._dl.due_at

    @workflow.update(name="submit_code")
    async def submit_code(self, submission: CodeSubmission) -> CodeResult:
        round_ = self._code_round
        async with self._lock:
            # The email can arrive before the workflow has recorded the codes it sent.
            await workflow.wait_condition(lambda: bool(self._codes))
            # Updates queue here: one admitted before the lock, or before a new code was
            # issued, is refused without its code being compared.
            refusal = self._code_refusal() or self._stale_round(round_)
            if refusal is not None:
                raise ApplicationError(refusal, type="CodeRefused", non_retryable=True)
            matched = await self._check_code(submission)
            if matched is not None:
                target = self._target(matched)
                target.verified = True
                target.verified_by = Method.CODE
                target.how = target.how or "one-time code by email"
            else:
                await self._wrong_code()
            left = self._pol.code_max_attempts - self._wrong_codes
            return CodeResult(
                accepted=matched is not None,
                locked=self._locked,
                remaining_targets=sum(not t.verified for t in self._targets),
                attempts_left=max(left, 0),
            )

    async def _check_code(self, submission: CodeSubmission) -> str | None:
        """The target whose pending code this is, or None: one code compared."""
        pending = [
            c
            for c in self._codes
            if not self._target(c.target_id).verified and c.expires_at > self._now()
        ]
        return await self._activity(
            CHECK_CODE,
            CodeCheck(request_id=self._req.request_id, code=submission.code, candidates=pending),
        )

    @submit_code.validator
    def _validate_code(self, submission: CodeSubmission) -> None:
        if not submission.code.isdigit() or len(submission.code) != 6:
            raise ValueError("the code is 6 digits, as in the verification email")
        refusal = self._code_refusal()
        if refusal is not None:
            raise ValueError(refusal)

    def _code_refusal(self) -> str | None:
        """Why no code may be compared now, or None."""
        awaiting = any(t.method is Method.CODE and not t.verified for t in self._targets)
        if not awaiting or self._status in CLOSED or self._stopping:
            return f"the request is not waiting for a code (status: {self._status})"
        if self._locked:
            return (
                "verification is locked after too many wrong codes; "
                "an officer can issue a new code (starter.py new-code)"
            )
        return None

    def _stale_round(self, round_: int) -> str | None:
        """A new code was issued after this one was submitted (round 0: none had been yet)."""
        if round_ in (0, self._code_round):
            return None
        return "a new code was sent after this one was submitted: use the newest email's code"

    async def _wrong_code(self) -> None:
        self._wrong_codes += 1
        if self._wrong_codes >= self._pol.code_max_attempts and not self._locked:
            self._locked = True
            self._set_status(Status.VERIFICATION_LOCKED)
            await self._notice(
                "officer_locked", key=f"locked.{self._code_round}", attempts=self._wrong_codes
            )
            await self._milestone(
                f"locked-{self._code_round}", "verify", detail={"wrong_codes": self._wrong_codes}
            )

    @workflow.update(name="new_code")
    async def new_code(self, action: OfficerAction) -> UpdateResult:
        action = self._acting("new_code", action)
        async with self._lock:
            await self._issue_codes(self._req, self._pol)
            self._set_status(Status.AWAITING_VERIFICATION)
            await self._milestone(
                f"new-code-{self._code_round}",
                "verify",
                actor=action.actor,
                detail={"round": self._code_round},
            )
            return UpdateResult(message=f"new code sent (round {self._code_round})")

    @new_code.validator
    def _validate_new_code(self, action: OfficerAction) -> None:
        self._authorize("new_code", action)
        if not any(t.method is Method.CODE and not t.verified for t in self._targets):
            raise ValueError("no identity of this request is waiting for a code")
        if self._status not in (Status.AWAITING_VERIFICATION, Status.VERIFICATION_LOCKED):
            raise ValueError(f"the request is not waiting for verification ({self._status})")

    @workflow.update(name="mark_verified")
    async def mark_verified(self, note: OfficerNote) -> UpdateResult:
        note = self._acting("mark_verified", note)
        for target in self._targets:
            if not target.verified:
                target.verified = True
                target.verified_by = Method.MANUAL
                target.how = f"verified by hand by {note.actor}"
        await self._milestone(
            "verified-by-hand", "verify", actor=note.actor, detail={"note": note.note}
        )
        return UpdateResult(message="identity recorded as verified by hand")

    @mark_verified.validator
    def _validate_mark_verified(self, note: OfficerNote) -> None:
        self._authorize("mark_verified", note)
        if self._status not in (Status.AWAITING_VERIFICATION, Status.VERIFICATION_LOCKED):
            raise ValueError(f"the request is not waiting for verification ({self._status})")
