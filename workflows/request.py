"""One durable workflow per rights request: intake to proof, as a privacy officer tells it.

Deterministic code only: time from ``workflow.now()``, every side effect in an activity,
policy read in activities and kept in history. ``run`` takes the steps in order; the parts the
workflow is made of (its class list) live beside it, each with its own Updates.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.answer import SEND_ANSWER, AnswerInput
    from activities.interfaces.legal_hold import CHECK_HOLDS, HoldCheck
    from activities.interfaces.package import ASSEMBLE_PACKAGE, Package, PackageInput
    from activities.interfaces.policy import SNAPSHOT_POLICY, PolicyQuery, RequestPolicy
    from activities.interfaces.register import RECORD_INTAKE, Intake
    from dsr import connector_contract as p
    from dsr.deadlines import Deadline
    from dsr.models import Right, RightsRequest
    from dsr.retention import ErasurePlan
    from dsr.status import Status
    from workflows.models import (
        Denial,
        OfficerAction,
        OfficerNote,
        RequestInput,
        RequestOutcome,
        RequestStatus,
        UpdateResult,
    )


from workflows.base import RequestState, Stopped
from workflows.children import ChildErasureReview
from workflows.connectors import CONNECTOR_CALL, ConnectorCalls
from workflows.deadline import CLARIFICATION_OF_SCOPE, PERIOD_FROM_VERIFICATION, DeadlineKeeping
from workflows.deferred import DeferredErasureWorkflow, DeferredInput
from workflows.deferred import workflow_id as deferred_workflow_id
from workflows.discovery import Discovery
from workflows.execution import Execution
from workflows.recipient import AnswerRecipient
from workflows.referral import Referral
from workflows.retention_decision import PATCH as DRAFT_RETENTION_PATCH
from workflows.retention_decision import DraftRetentionDecision
from workflows.review import PATCH as REVIEW_PATCH
from workflows.review import AnswerReviewing
from workflows.verification import IdentityVerification

# The package heartbeats every few thousand records: a worker killed while packaging, or right
# after, is noticed in a minute rather than at the end of the call's ten.
PACKAGE_HEARTBEAT = timedelta(minutes=1)
WORKFLOW_NAME = "RightsRequest"


@workflow.defn(name=WORKFLOW_NAME)
class RightsRequestWorkflow(
    DeadlineKeeping,  # the deadline: computed, reminded, extended; clarifications stop it
    ChildErasureReview,  # a report about a child's data: the erasure review
    IdentityVerification,  # who must prove what: one-time codes, or an officer by hand
    AnswerRecipient,  # where the answer may go: a verified recipient
    Referral,  # an end user's request about a customer's data goes to that customer
    Discovery,  # which connectors hold the person's data
    DraftRetentionDecision,  # data only a draft retention rule would keep: keep or erase
    Execution,  # each connector acts on the rights; recipients without an API by email
    ConnectorCalls,  # how the three above call connectors, and an officer's decision
    AnswerReviewing,  # an answer stating draft texts waits for an approver
    RequestState,  # the state they share, and its plumbing
):
    @workflow.run
    async def run(self, start: RequestInput) -> RequestOutcome:
        self._request = start.request
        self._local_quick_steps = workflow.patched("local-quick-steps")
        self._assertions = workflow.patched("officer-assertions")
        # Decided before the first await, as every patch here (see _intake).
        self._reviewing = workflow.patched(REVIEW_PATCH)
        self._draft_decisions = workflow.patched(DRAFT_RETENTION_PATCH)
        self._scope_clock = workflow.patched(CLARIFICATION_OF_SCOPE)
        self._period_from_verification = workflow.patched(PERIOD_FROM_VERIFICATION)
        self._decide_child_review(start.request)
        await self._intake(start)
        await self._compute_deadline(start.request)
        watcher = asyncio.create_task(self._watch_deadline())
        policy = self._pol
        try:
            await self._acknowledge(start.request, self._dl)
            # A child's report adds erasure where it was not asked (until an approver's review).
            request = await self._open_child_review(start.request, self._dl)
            if not await self._verify(request, policy):
                return await self._close(request, Status.UNVERIFIED, "unverified")
            await self._count_from_verification(request)
            await self._find_registered_contact(request)
            await self._refer(request, policy)
            discoveries = await self._discover(request, policy)
            plan = await self._legal_hold_check(request, discoveries)
            plan = await self._decide_drafts(request, discoveries, plan)
            request, plan = await self._child_review_gate(request, plan)
            await self._await_approval(request, policy)
            await self._execute(request, policy, discoveries, plan)
            package = await self._package(request)
            await self._answer(request, plan, package)
            await self._defer_erasure(request, plan)
            return await self._finish(request, Status.ANSWERED, "answered")
        except Stopped:  # the request as it stood (an erasure a child review added included)
            if self._denial is not None:
                return await self._close(self._req, Status.DENIED, "denial", self._denial.reason)
            return await self._close(self._req, Status.CANCELLED, "cancelled",
                                     self._cancel_reason())
        finally:
            watcher.cancel()

    async def _intake(self, start: RequestInput) -> None:
        """Register the request and take its policy; a request its door says it verified is
        first checked against that door's assertion (before anything is written or sent)."""
        request = start.request
        self._begin("intake")
        # Every patch is decided before the first await, as before door-evidence: with
        # possible-duplicates asked after the policy's local activity, a query replaying an
        # answered request failed once in CI ("patch marker ... no corresponding command").
        vouched = workflow.patched("door-evidence")
        duplicates = workflow.patched("possible-duplicates")
        if vouched:
            await self._snapshot_policy()
            self._check_door(request, start.door)
        intake = Intake(request=request, submitted_by=start.submitted_by)
        if duplicates:
            registered = await self._quick(RECORD_INTAKE, intake)
            self._possible_duplicates = registered.possible_duplicate_of
        else:  # requests started before the duplicate check: the activity answered nothing
            await self._quick(RECORD_INTAKE.untyped(), intake)
        if not vouched:
            await self._snapshot_policy()
        self._done("intake", f"{len(request.rights)} rights, {request.jurisdiction.value}")

    async def _snapshot_policy(self) -> None:
        self._policy = await self._quick(SNAPSHOT_POLICY, PolicyQuery(as_of=self._now()))

    async def _acknowledge(self, request: RightsRequest, deadline: Deadline) -> None:
        self._begin("acknowledge")
        await self._notice(
            "acknowledgement",
            to_requester=True,
            rights=[r.value for r in request.rights],
            due_on=deadline.due_on.isoformat(),
            extension_until=(deadline.extension_limit_on.isoformat()
                             if deadline.extension_limit_on else None),
        )
        self._done("acknowledge")
        await self._milestone("acknowledge", "acknowledge")

    async def _legal_hold_check(
        self, request: RightsRequest, discoveries: list[p.Discovery]
    ) -> ErasurePlan | None:
        if Right.ERASURE not in request.rights:
            self._skip("legal_hold_check", "no erasure requested")
            return None
        self._begin("legal_hold_check")
        plan = await self._quick(
            CHECK_HOLDS,
            HoldCheck(request_id=request.request_id, discoveries=discoveries, as_of=self._now(),
                      identities=request.identities),
        )
        self._done("legal_hold_check", f"{len(plan.retained)} parts retained")
        await self._milestone(
            "legal_hold_check",
            "legal_hold_check",
            detail={
                "retained": [f"{r.connector}/{r.category}: {r.rule_id}" for r in plan.retained]
            },
        )
        return plan

    async def _await_approval(self, request: RightsRequest, policy: RequestPolicy) -> None:
        if not set(request.rights) & set(policy.approval_required_for) and not self._approved:
            self._skip("approval", "not required")
            return
        self._begin("approval")
        self._set_status(Status.AWAITING_APPROVAL)
        await workflow.wait_condition(lambda: self._approved or self._stopping)
        self._check_stopped()
        self._done("approval")
        self._resume(Status.IN_PROGRESS)

    async def _package(self, request: RightsRequest) -> Package | None:
        exports = [r for rs in self._results.values() for r in rs if isinstance(r, p.AccessResult)]
        if not exports:
            self._skip("package", "no access or portability requested")
            return None
        self._begin("package")
        package = await self._activity(
            ASSEMBLE_PACKAGE,
            PackageInput(
                request_id=request.request_id, language=request.language, exports=exports
            ),
            timeout=CONNECTOR_CALL,
            heartbeat=PACKAGE_HEARTBEAT,
        )
        self._done("package", f"{package.records} records")
        return package

    async def _answer(
        self, request: RightsRequest, plan: ErasurePlan | None, package: Package | None
    ) -> None:
        """Only to a verified recipient (``dsr.recipients``): it discloses or confirms."""
        self._begin("answer")
        recipient = await self._answer_recipient(request)
        exported = {
            name: sorted(r.records)
            for name, rs in self._results.items()
            for r in rs
            if isinstance(r, p.AccessResult)
        }
        answer = AnswerInput(
            request=request,
            answered_at=self._now(),
            outcomes=self._outcomes(),
            retained=plan.retained if plan else [],
            exported=exported,
            package_ref=package.blob_ref if package else None,
            referred_to=self._referrals,
            recipient=recipient.email if recipient else None,
        )
        await self._send_answer(answer, f" to {recipient.basis.value}" if recipient else "")

    async def _defer_erasure(self, request: RightsRequest, plan: ErasurePlan | None) -> None:
        """What had to be kept is erased when its duty ends or its hold is released, by a
        workflow of its own that outlives this one."""
        if plan is None or not plan.retained or not workflow.patched("deferred-erasure"):
            return
        await workflow.start_child_workflow(
            DeferredErasureWorkflow.run,
            DeferredInput(request=request, parts=plan.retained, erase_before=self._now(),
                          recipient=self._answer_to),
            id=deferred_workflow_id(request.request_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
        )

    async def _send_answer(self, answer: AnswerInput, to_whom: str = "") -> None:
        await self._review(answer)
        sent = await self._activity(SEND_ANSWER, answer)
        self._done("answer", sent.message_id + to_whom)
        self._begin("proof")
        self._done("proof", f"confirmation kept until {sent.retain_until.date().isoformat()}")

    async def _close(
        self, request: RightsRequest, status: Status, template: str, reason: str | None = None
    ) -> RequestOutcome:
        """A denial, a cancellation or an unverified closing discloses none of the data (a
        cancellation names the products already acted on), so it goes to the requester's
        address as typed, verified or not."""
        self._begin("answer")
        answer = AnswerInput(
            request=request,
            kind=template,
            answered_at=self._now(),
            outcomes=self._outcomes() if self._executing else [],
            reason=reason,
        )
        await self._send_answer(answer)
        return await self._finish(request, status, template)

    async def _finish(
        self, request: RightsRequest, status: Status, outcome: str
    ) -> RequestOutcome:
        self._outcome = outcome
        self._set_status(status)
        await self._milestone(
            "closed",
            "closed",
            status=status.value,
            outcome=outcome,
            overdue=self._overdue,
            closed=True,
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return RequestOutcome(
            request_id=request.request_id,
            status=status,
            answered_at=self._now(),
            connectors=list(self._connectors.values()),
        )

    @workflow.update(name="approve")
    async def approve(self, action: OfficerAction) -> UpdateResult:
        action = self._acting("approve", action)
        self._approved = True
        await self._milestone("approved", "approval", actor=action.actor)
        return UpdateResult(message="approved")

    @approve.validator
    def _validate_approve(self, action: OfficerAction) -> None:
        self._authorize("approve", action)
        self._require_open()
        if self._executing:
            raise ValueError("execution has already begun")

    @workflow.update(name="deny")
    async def deny(self, denial: Denial) -> UpdateResult:
        denial = self._acting("deny", denial)
        self._denial = denial
        await self._milestone(
            "denied",
            "denial",
            actor=denial.actor,
            detail={"reason": denial.reason, "manifestly_unfounded": denial.manifestly_unfounded},
        )
        return UpdateResult(message="denied; the requester is told the reasons")

    @deny.validator
    def _validate_deny(self, denial: Denial) -> None:
        self._authorize("deny", denial)
        self._require_open()
        if self._executing:
            raise ValueError("execution has already begun: cancel instead")

    @workflow.update(name="cancel")
    async def cancel(self, note: OfficerNote) -> UpdateResult:
        note = self._acting("cancel", note)
        self._cancelled = note
        await self._milestone(
            "cancelled", "cancel", actor=note.actor, detail={"reason": note.note}
        )
        return UpdateResult(message="cancelled; nothing not yet started will start")

    @cancel.validator
    def _validate_cancel(self, note: OfficerNote) -> None:
        self._authorize("cancel", note)
        self._require_open()

    @workflow.query(name="status")
    def status(self) -> RequestStatus:
        request = self._req
        return RequestStatus(
            request_id=request.request_id,
            status=self._status,
            rights=[r.value for r in request.rights],
            jurisdiction=request.jurisdiction.value,
            received_at=request.received_at,
            due_at=self._deadline.due_at if self._deadline else None,
            target_on=self._shown_target(),
            extended=self._extended,
            overdue=self._overdue,
            verification={
                t.target_id: (t.how or t.method.value) if t.verified else "pending"
                for t in self._targets
            },
            wrong_codes=self._wrong_codes,
            connectors=list(self._connectors.values()),
            steps=list(self._steps.values()),
            outcome=self._outcome,
            possible_duplicate_of=self._possible_duplicates,
            rules_unconfirmed=bool(self._deadline and self._deadline.rules_unconfirmed),
            held_for_review=self._review_reasons,
            retention_undecided=self._retention_undecided,
            child=self._child_marker(),
        )
