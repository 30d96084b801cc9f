"""A report about a child's data (privacy statement, section 10) inside the rights-request
workflow: the erasure review it starts, its internal target, and the officer's reminders.

A child request (``RightsRequest.is_child``) considers erasure among its rights. Where the
requester asked for erasure it is handled as any erasure (verified first). Where the report
asked for something else, the erasure is added and waits, after verification, discovery and
the legal-hold check, for an approver's review (``review_child_erasure``): erase, or keep (the
erasure is dropped; what was asked goes on). Nobody's data is erased on an unverified claim.

The legal deadline stays the one of the rights asked; the review's target (``children.yaml``)
is never later. The officer is emailed on the first day, then every few days until the review
is done or its target day has passed. Requests begun before ``child-erasure-review`` ignore
``is_child``, as they did.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.children import PLAN_CHILD_REVIEW, ChildReviewQuery
    from dsr import search_attributes as sa
    from dsr.children import ChildReviewPlan
    from dsr.deadlines import Deadline
    from dsr.models import Right, RightsRequest
    from dsr.retention import ErasurePlan
    from dsr.status import CLOSED, Status
    from workflows.models import ChildErasureDecision, ChildMarker, Step, UpdateResult


from workflows.base import RequestState

PATCH = "child-erasure-review"
STEP = "child_review"
ASKED, ADDED = "asked", "added"


class ChildErasureReview(RequestState):
    def __init__(self) -> None:
        super().__init__()
        self._child = False  # a child request begun after the patch
        self._child_plan: ChildReviewPlan | None = None
        self._child_erasure = ""  # ASKED or ADDED
        self._child_decision: ChildErasureDecision | None = None
        self._child_reminders: asyncio.Task[None] | None = None

    def _decide_child_review(self, request: RightsRequest) -> None:
        """Before the first await, with the other patches."""
        self._child = request.is_child and workflow.patched(PATCH)

    async def _open_child_review(self, request: RightsRequest,
                                 deadline: Deadline) -> RightsRequest:
        """Take the review's plan, add erasure where it was not asked, tell the officer.
        Returns the request the workflow acts on from here (with that erasure)."""
        if not self._child:
            return request
        self._asked_rights = list(request.rights)  # the legal deadline stays theirs
        self._add_step()
        self._begin(STEP)
        self._child_plan = await self._quick(
            PLAN_CHILD_REVIEW, ChildReviewQuery(deadline=deadline, opened_at=self._now()))
        if Right.ERASURE in request.rights:
            self._child_erasure = ASKED
            self._done(STEP, f"erasure asked; target {self._child_plan.target_on.isoformat()}")
        else:
            self._child_erasure = ADDED
            request = self._set_rights(request, [*request.rights, Right.ERASURE])
        await self._milestone("child-review", STEP, detail={
            "erasure": self._child_erasure,
            "target_on": self._child_plan.target_on.isoformat(),
            "target_status": self._child_plan.target_status,
            "policy_version": self._child_plan.policy_version})
        await self._remind_child_review(0)
        self._child_reminders = asyncio.create_task(self._child_reminder_loop())
        return request

    async def _child_review_gate(
        self, request: RightsRequest, plan: ErasurePlan | None
    ) -> tuple[RightsRequest, ErasurePlan | None]:
        """An added erasure waits for the approver's review; kept, it is dropped (the request
        as asked, and no erasure plan)."""
        if self._child_erasure != ADDED:
            return request, plan
        if self._child_decision is None:
            self._set_status(Status.AWAITING_CHILD_REVIEW)
            await workflow.wait_condition(
                lambda: self._child_decision is not None or self._stopping)
            self._check_stopped()
            self._resume(Status.IN_PROGRESS)
        assert self._child_decision is not None
        if self._child_decision.erase:
            return request, plan
        return self._set_rights(request, self._asked_rights), None

    def _set_rights(self, request: RightsRequest, rights: list[Right]) -> RightsRequest:
        self._request = request.model_copy(update={"rights": rights})
        self._upsert(sa.RIGHTS.value_set([right.value for right in rights]))
        return self._request

    def _add_step(self) -> None:
        """The review's step, shown after the acknowledgement."""
        steps = list(self._steps.items())
        at = [name for name, _ in steps].index("acknowledge") + 1
        self._steps = dict([*steps[:at], (STEP, Step(name=STEP)), *steps[at:]])

    def _child_review_settled(self) -> bool:
        return (self._status in CLOSED or self._executing
                or self._child_decision is not None)

    async def _child_reminder_loop(self) -> None:
        """The plan's reminders after the first, until the review is settled."""
        plan = self._child_plan
        assert plan is not None
        for number, reminder in enumerate(plan.reminders[1:], start=1):
            try:
                await workflow.wait_condition(
                    self._child_review_settled,
                    timeout=max(reminder.at - self._now(), timedelta(seconds=1)),
                    timeout_summary="child review reminder")
                return
            except TimeoutError:
                await self._remind_child_review(number)

    async def _remind_child_review(self, number: int) -> None:
        plan = self._child_plan
        assert plan is not None
        await self._notice(
            "officer_child_review",
            key=f"child_review.{number}",
            target_on=plan.target_on.isoformat(),
            target_status=plan.target_status,
            days_left=plan.reminders[number].days_left,
            due_on=self._dl.due_on.isoformat(),
            erasure=self._child_erasure,
            under_age=plan.under_age,
        )

    def _child_marker(self) -> ChildMarker | None:
        plan, decision = self._child_plan, self._child_decision
        if plan is None:
            return None
        return ChildMarker(
            erasure=self._child_erasure,
            decision=None if decision is None else ("erase" if decision.erase else "keep"),
            target_on=plan.target_on,
            target_status=plan.target_status,
            target_source=plan.target_source,
        )

    def _shown_target(self) -> date | None:
        """The officers' target: the deadline's own, or the review's where earlier."""
        if self._deadline is None:
            return None
        if self._child_plan is None:
            return self._deadline.target_on
        return min(self._deadline.target_on, self._child_plan.target_on)

    @workflow.update(name="review_child_erasure")
    async def review_child_erasure(self, decision: ChildErasureDecision) -> UpdateResult:
        decision = self._acting("review_child_erasure", decision)
        self._child_decision = decision
        verdict = "erase" if decision.erase else "keep"
        self._done(STEP, "erase: the child's data is erased" if decision.erase
                   else "keep: the erasure the report added is dropped")
        await self._milestone("child-review-decided", STEP, actor=decision.actor,
                              detail={"decision": verdict, "note": decision.note})
        if decision.erase:
            return UpdateResult(message="erasure confirmed: it runs once the request is "
                                        "verified and its data found")
        return UpdateResult(message="erasure dropped: the rights asked go on")

    @review_child_erasure.validator
    def _validate_review_child_erasure(self, decision: ChildErasureDecision) -> None:
        self._authorize("review_child_erasure", decision)
        self._require_open()
        if self._child_erasure != ADDED:
            raise ValueError("no child erasure review awaits a decision on this request")
        if self._child_decision is not None:
            raise ValueError("the child erasure review has already been decided")
        if self._executing:
            raise ValueError("execution has already begun")
