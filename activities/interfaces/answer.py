"""The answer to the person, and the proof that it was sent (``activities/answer.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from activities.interfaces import ActivityInterface
from dsr.emails import ProductOutcome
from dsr.models import RightsRequest
from dsr.retention import RetainedPart


class AnswerInput(BaseModel):
    """``kind`` is the template: answer, denial, unverified or cancelled."""

    request: RightsRequest
    kind: str = "answer"
    answered_at: datetime
    outcomes: list[ProductOutcome] = Field(default_factory=list)
    retained: list[RetainedPart] = Field(default_factory=list)
    exported: dict[str, list[str]] = Field(default_factory=dict)
    package_ref: str | None = None  # the package exists: the email links to its download page
    reason: str | None = None
    referred_to: list[str] = Field(default_factory=list)
    # The verified recipient (dsr.recipients) of an answer; None: the requester's address
    # (closing notices, and answers of requests begun before the rule).
    recipient: str | None = Field(default=None, repr=False)


class AnswerSent(BaseModel):
    message_id: str
    sent_at: datetime
    retain_until: datetime
    already_sent: bool = False


SEND_ANSWER = ActivityInterface[AnswerInput, AnswerSent](
    name="answer.send", input=AnswerInput, output=AnswerSent
)
