"""What the deadline tests share: the shipped rules as they are (drafts) and as Legal confirms
them, as module-scoped fixtures, and a shorthand to compute a deadline."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from dsr.deadline_policy import DeadlinePolicy, load_deadline_policy
from dsr.deadlines import Deadline, DeadlineQuery, compute_deadline
from dsr.models import Jurisdiction, Right
from dsr.provenance import RuleStatus

J = Jurisdiction
R = Right


def confirmed(policy: DeadlinePolicy) -> DeadlinePolicy:
    """The shipped rules as they bind once Legal has confirmed every jurisdiction's."""
    by_legal = {"status": RuleStatus.CONFIRMED, "confirmed_by": "legal-1",
                "confirmed_on": date(2026, 12, 7)}
    return policy.model_copy(update={"jurisdictions": {
        name: rules.model_copy(update=by_legal) for name, rules in policy.jurisdictions.items()
    }})


@pytest.fixture(scope="module")
def policy() -> DeadlinePolicy:
    return confirmed(load_deadline_policy())


@pytest.fixture(scope="module")
def shipped() -> DeadlinePolicy:
    return load_deadline_policy()


def tz(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


def compute(
    policy: DeadlinePolicy,
    jurisdiction: Jurisdiction,
    rights: list[Right],
    received_at: datetime,
    paused_days: int = 0,
) -> Deadline:
    query = DeadlineQuery(
        jurisdiction=jurisdiction,
        rights=rights,
        received_at=received_at,
        paused_days=paused_days,
    )
    return compute_deadline(query, policy)
