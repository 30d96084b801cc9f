"""An answer that states a draft text (``dsr/provenance.py``: wording Legal has not confirmed)
is held for an approver's review before it is sent: the approver is told which texts, checks
them (``docs/legal.md``) and releases the answer (``release_answer``)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.answer import AnswerInput
    from activities.interfaces.review import REVIEW_ANSWER
    from dsr.status import Status
    from workflows.models import OfficerNote, StepStatus, UpdateResult

from workflows.base import RequestState

PATCH = "answer-review"
WAITING = "held for review: it states draft texts (starter.py release-answer)"


class AnswerReviewing(RequestState):
    async def _review(self, answer: AnswerInput) -> None:
        """Wait for an officer's release when the answer states a draft text."""
        if not self._reviewing:
            return
        review = await self._quick(REVIEW_ANSWER, answer)
        if review.notes:
            await self._notice("officer_answer_notes", key="officer_answer_notes",
                               notes=review.notes)
        if not review.reasons:
            return
        self._review_reasons = review.reasons
        previous = self._status
        self._set_status(Status.AWAITING_REVIEW)
        self._set_step("answer", StepStatus.RUNNING, WAITING)
        await self._notice("officer_review", key="officer_review", reasons=review.reasons)
        await self._milestone("held-for-review", "answer", detail={"reasons": review.reasons})
        closing = answer.kind != "answer"  # a denial or closing notice waits for release only
        await workflow.wait_condition(
            lambda: self._released is not None or (self._stopping and not closing)
        )
        self._review_reasons = []
        if not closing:
            self._check_stopped()
        self._resume(previous)

    @workflow.update(name="release_answer")
    async def release_answer(self, note: OfficerNote) -> UpdateResult:
        note = self._acting("release_answer", note)
        self._released = note
        await self._milestone("answer-released", "answer", actor=note.actor,
                              detail={"note": note.note})
        return UpdateResult(message="the answer is released and being sent")

    @release_answer.validator
    def _validate_release_answer(self, note: OfficerNote) -> None:
        self._authorize("release_answer", note)
        if not self._review_reasons or self._released is not None:
            raise ValueError(f"the answer is not held for review ({self._status})")
