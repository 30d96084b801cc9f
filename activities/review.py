"""Whether an answer may go out as it is: one that states a draft text or an unconfirmed fact
(a rule, wording or fact Legal has not confirmed, ``dsr/provenance.py``) is held for an
approver's review first; what Legal has not filled in but the answer may state (recipients
available on request) is told to the officer without holding it."""

from __future__ import annotations

from temporalio import activity

from activities.interfaces.answer import AnswerInput
from activities.interfaces.review import REVIEW_ANSWER, AnswerReview
from dsr.access_facts import load_access_policies, officer_notes, review_reasons
from dsr.catalogue import load_authorities
from dsr.emails import Action
from dsr.models import Right
from dsr.retention import RetentionPolicy, load_retention_policy
from dsr.settings import Settings

STATES_COMPLAINT = {"answer", "denial", "unverified"}  # the kinds naming where to complain


class ReviewActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name=REVIEW_ANSWER.name)
    def review(self, answer: AnswerInput) -> AnswerReview:
        if answer.kind not in STATES_COMPLAINT:
            return AnswerReview()
        request = answer.request
        access = answer.kind == "answer" and Right.ACCESS in request.rights
        folder = self._settings.policy_dir
        authorities = load_authorities(folder / "authorities.yaml")
        reasons = authorities.drafts_used(request.jurisdiction, access) + _retention_drafts(
            answer, load_retention_policy(folder / "retention.yaml"))
        if not access or not answer.exported:
            return AnswerReview(reasons=reasons)
        policies = load_access_policies(folder)
        return AnswerReview(
            reasons=reasons + review_reasons(policies, answer.exported, request.jurisdiction),
            notes=officer_notes(policies, answer.exported))


def _retention_drafts(answer: AnswerInput, policy: RetentionPolicy) -> list[str]:
    """Data said to be kept under a draft rule; a draft text on what an erasure leaves."""
    kept = [f"draft retention rule: {part.rule_id} ({', '.join(part.countries_ended or [])})"
            for part in answer.retained if part.draft_rule]
    left = [outcome.connector for outcome in answer.outcomes
            if outcome.action is Action.ERASED
            and (text := policy.after_erasure.get(outcome.connector)) and text.is_draft]
    return kept + [f"draft text: after erasure ({connector})" for connector in left]
