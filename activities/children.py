"""The child erasure review's plan, read from the policy at the start of a child request and
kept in its history: a lawyer editing ``children.yaml`` later changes new requests only."""

from __future__ import annotations

from temporalio import activity

from activities.interfaces.children import PLAN_CHILD_REVIEW, ChildReviewQuery
from dsr.children import ChildReviewPlan, load_child_policy, review_plan
from dsr.deadline_policy import load_deadline_policy
from dsr.settings import Settings


class ChildActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name=PLAN_CHILD_REVIEW.name)
    def plan(self, query: ChildReviewQuery) -> ChildReviewPlan:
        folder = self._settings.policy_dir
        deadlines = load_deadline_policy(folder / "deadlines.yaml")
        time_zone = deadlines.jurisdictions[query.deadline.jurisdiction].time_zone
        return review_plan(load_child_policy(folder / "children.yaml"), query.deadline,
                           time_zone, query.opened_at)
