"""Whether an answer waits for an approver's review before it is sent
(``activities/review.py``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from activities.interfaces import ActivityInterface
from activities.interfaces.answer import AnswerInput


class AnswerReview(BaseModel):
    """Why the answer waits for review (empty: it may be sent), and what the officer is told
    regardless. Names of texts, recipients and categories, never data."""

    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


REVIEW_ANSWER = ActivityInterface[AnswerInput, AnswerReview](
    name="answer.review", input=AnswerInput, output=AnswerReview
)
