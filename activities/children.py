"""The child erasure review's plan, read from the policy at the start of a child request and
kept in its history: a lawyer editing ``children.yaml`` later changes new requests only."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from temporalio import activity

from dsr.children import ChildReviewPlan, load_child_policy, review_plan
from dsr.deadline_policy import load_deadline_policy
from dsr.deadlines import Deadline
from dsr.settings import Settings


class ChildReviewQuery(BaseModel):
    deadline: Deadline
    opened_at: datetime  # the review's first reminder


class ChildActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name="children.review_plan")
    def plan(self, query: ChildReviewQuery) -> ChildReviewPlan:
        folder = self._settings.policy_dir
        deadlines = load_deadline_policy(folder / "deadlines.yaml")
        time_zone = deadlines.jurisdictions[query.deadline.jurisdiction].time_zone
        return review_plan(load_child_policy(folder / "children.yaml"), query.deadline,
                           time_zone, query.opened_at)
