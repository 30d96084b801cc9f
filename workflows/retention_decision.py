"""Data only a draft retention rule would keep (``dsr/provenance.py``: a rule or country
override Legal has not confirmed) is neither kept nor erased on the draft's say: after the
legal-hold check the request waits for an approver's decision (``decide_retention``). Keep:
the draft applies to this request. Erase: the plan is made again from the confirmed rules
alone, before anything is erased. Requests begun before ``draft-retention-decision`` kept
such data, as they did."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.legal_hold import CHECK_HOLDS, HoldCheck
    from dsr import connector_contract as p
    from dsr.models import RightsRequest
    from dsr.retention import ErasurePlan, RetainedPart
    from dsr.status import Status
    from workflows.models import RetentionChoice, StepStatus, UpdateResult

from workflows.base import RequestState

PATCH = "draft-retention-decision"
WAITING = "a draft retention rule would keep data: keep or erase (starter.py retention-decision)"


class DraftRetentionDecision(RequestState):
    async def _decide_drafts(self, request: RightsRequest, discoveries: list[p.Discovery],
                             plan: ErasurePlan | None) -> ErasurePlan | None:
        drafts = [part for part in plan.retained if part.draft_rule] if plan else []
        if plan is None or not drafts or not self._draft_decisions:
            return plan
        self._retention_undecided = [_named(part) for part in drafts]
        previous = self._status
        self._set_status(Status.AWAITING_RETENTION_DECISION)
        self._set_step("legal_hold_check", StepStatus.RUNNING, WAITING)
        await self._notice("officer_retention_decision", key="officer_retention_decision",
                           parts=self._retention_undecided)
        await self._milestone("retention-undecided", "legal_hold_check",
                              detail={"parts": self._retention_undecided})
        await workflow.wait_condition(
            lambda: self._retention_choice is not None or self._stopping)
        self._check_stopped()
        self._retention_undecided = []
        self._resume(previous)
        choice = self._retention_choice
        assert choice is not None
        self._done("legal_hold_check", "draft rules " + ("applied" if choice.keep else "left out"))
        if choice.keep:
            return plan.model_copy(update={"retained": [
                part.model_copy(update={"draft_rule": False}) for part in plan.retained]})
        return await self._quick(CHECK_HOLDS, HoldCheck(
            request_id=request.request_id, discoveries=discoveries, as_of=self._now(),
            identities=request.identities, apply_drafts=False))

    @workflow.update(name="decide_retention")
    async def decide_retention(self, choice: RetentionChoice) -> UpdateResult:
        choice = self._acting("decide_retention", choice)
        self._retention_choice = choice
        await self._milestone("retention-decided", "legal_hold_check", actor=choice.actor,
                              detail={"keep": choice.keep, "note": choice.note})
        return UpdateResult(message="the draft rules are " + (
            "applied: the data is kept" if choice.keep else "left out: the data is erased "
            "as the confirmed rules allow"))

    @decide_retention.validator
    def _validate_decide_retention(self, choice: RetentionChoice) -> None:
        self._authorize("decide_retention", choice)
        if not self._retention_undecided or self._retention_choice is not None:
            raise ValueError(f"no retention decision is awaited ({self._status})")


def _named(part: RetainedPart) -> str:
    where = f" ({', '.join(part.countries_ended)})" if part.countries_ended else ""
    return f"{part.connector}/{part.category}: {part.rule_id}{where}"
