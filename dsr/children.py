"""Children (privacy statement, section 10): the policy a report about a child's data follows,
its erasure review's internal target, and whether a mail subject is such a report.

A child request (``RightsRequest.is_child``) gets erasure among the rights it considers, with
an internal target of its own (``dsr/policy/children.yaml``) that never makes the legal
deadline later. No personal data here: dates, counts and words only.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from dsr.deadlines import Deadline, end_of_day
from dsr.models import Language, StrictModel
from dsr.provenance import Provenance
from dsr.retention import read_policy_file

CHILDREN_FILE = Path(__file__).parent / "policy" / "children.yaml"


class AgeLimit(Provenance):
    under: Annotated[int, Field(ge=1, le=21)]


class ReviewTarget(Provenance):
    days: Annotated[int, Field(ge=1, le=31)]


class Reminders(Provenance):
    every_days: Annotated[int, Field(ge=1, le=31)]


class ReportSubjects(Provenance):
    words: dict[Language, Annotated[list[Annotated[str, Field(min_length=1)]],
                                    Field(min_length=1)]]


class ChildPolicy(StrictModel):
    version: Annotated[str, Field(min_length=1)]
    age_limit: AgeLimit
    erasure_promise: Provenance  # the statement's "as soon as possible"
    review_target: ReviewTarget
    reminders: Reminders
    report_subjects: ReportSubjects


class ChildReminder(BaseModel):
    at: datetime
    days_left: int  # whole days from that day to the target day, in the jurisdiction


class ChildReviewPlan(BaseModel):
    """What a child request's workflow keeps in its history: the review's target (the earlier
    of the policy's and the legal deadline's own target), its status and source, and when
    the officer is reminded (the first at once)."""

    policy_version: str
    under_age: int
    target_on: date
    target_status: str
    target_source: str
    reminders: list[ChildReminder]


def load_child_policy(path: Path | None = None) -> ChildPolicy:
    return read_policy_file(path or CHILDREN_FILE, ChildPolicy)


def review_plan(policy: ChildPolicy, deadline: Deadline, time_zone: str,
                opened_at: datetime) -> ChildReviewPlan:
    """The review's target: ``review_target.days`` after receipt, never after the deadline's
    own target (the legal deadline is not changed by it); a reminder at ``opened_at``, then
    every ``reminders.every_days`` until the end of the target day."""
    own = deadline.received_on + timedelta(days=policy.review_target.days)
    target_on = min(own, deadline.target_on)
    return ChildReviewPlan(
        policy_version=policy.version,
        under_age=policy.age_limit.under,
        target_on=target_on,
        target_status=policy.review_target.status.value,
        target_source=policy.review_target.source,
        reminders=reminders(opened_at, target_on, time_zone, policy.reminders.every_days),
    )


def reminders(opened_at: datetime, target_on: date, time_zone: str,
              every_days: int) -> list[ChildReminder]:
    """The officer's reminders: at ``opened_at`` (even past the target), then every
    ``every_days`` while the target day has not ended."""
    zone, last = ZoneInfo(time_zone), end_of_day(target_on, time_zone)
    moments = [opened_at]
    while (following := moments[-1] + timedelta(days=every_days)) <= last:
        moments.append(following)
    return [ChildReminder(at=at, days_left=(target_on - at.astimezone(zone).date()).days)
            for at in moments]


def is_child_report(subject: str, policy: ChildPolicy | None = None) -> bool:
    """Whether a mail subject reports a child's data (the privacy mailbox's hook): one of the
    policy's words, as a whole word in English or anywhere in Chinese."""
    words = (policy or load_child_policy()).report_subjects.words
    folded = subject.casefold()
    latin = [re.escape(w.casefold()) for w in words.get(Language.EN, [])]
    if latin and re.search(rf"(?<!\w)(?:{'|'.join(latin)})(?!\w)", folded):
        return True
    return any(word in subject for word in words.get(Language.ZH, []))
