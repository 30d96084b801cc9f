"""The child erasure review's plan, read from the policy (``activities/children.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from activities.interfaces import ActivityInterface
from dsr.children import ChildReviewPlan
from dsr.deadlines import Deadline


class ChildReviewQuery(BaseModel):
    deadline: Deadline
    opened_at: datetime  # the review's first reminder


PLAN_CHILD_REVIEW = ActivityInterface[ChildReviewQuery, ChildReviewPlan](
    name="children.review_plan", input=ChildReviewQuery, output=ChildReviewPlan
)
