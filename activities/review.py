"""Whether an answer may go out as it is: one that states a draft text (a rule or wording Legal
has not confirmed, ``dsr/provenance.py``) is held for an officer's review first."""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import activity

from activities.answer import AnswerInput
from dsr.catalogue import load_authorities
from dsr.models import Right
from dsr.settings import Settings

STATES_COMPLAINT = {"answer", "denial", "unverified"}  # the kinds naming where to complain


class AnswerReview(BaseModel):
    """Why the answer waits for review; empty: it may be sent. Names of texts, never data."""

    reasons: list[str] = Field(default_factory=list)


class ReviewActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name="answer.review")
    def review(self, answer: AnswerInput) -> AnswerReview:
        if answer.kind not in STATES_COMPLAINT:
            return AnswerReview()
        request = answer.request
        access = answer.kind == "answer" and Right.ACCESS in request.rights
        authorities = load_authorities(self._settings.policy_dir / "authorities.yaml")
        return AnswerReview(reasons=authorities.drafts_used(request.jurisdiction, access))
