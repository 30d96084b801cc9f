"""Legal deadlines for rights requests, computed from the per-jurisdiction policy file.

Pure functions: no clock and no I/O beyond reading the policy YAML. All dates are calendar
dates in the jurisdiction's own time zone; ``due_at`` is the end of the due day, in UTC.
"""

from __future__ import annotations

import calendar
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo

import holidays
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

from dsr.deadline_policy import (
    DeadlinePolicy,
    GroupRules,
    HolidayCalendar,
    JurisdictionPolicy,
    LawPeriod,
    Period,
    Unit,
    period_of,
)
from dsr.models import Jurisdiction, Right

# --- calendar arithmetic -------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """The same calendar date ``months`` later; where it does not exist, that month's last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def end_of_day(day: date, tz: str) -> datetime:
    """The last instant of ``day`` (23:59:59.999999 local time in ``tz``), as an aware UTC time."""
    # fold=1: where 23:59 happens twice (a fall-back at midnight), take the later instant.
    local = datetime.combine(day, time.max, tzinfo=ZoneInfo(tz)).replace(fold=1)
    return local.astimezone(UTC)


@lru_cache(maxsize=512)
def _public_holidays(calendar: HolidayCalendar, year: int) -> frozenset[date]:
    found = holidays.country_holidays(
        calendar.country, subdiv=calendar.subdivision, years=year, language="en_US"
    )
    counted = {day for day, name in found.items() if name not in calendar.not_counted}
    # date(), not fromisoformat: a year before 1000 has no 4-digit ISO form; a "02-29"
    # closure exists only in leap years.
    annual = set()
    for month_day in calendar.annual_closures:
        month, day = (int(part) for part in month_day.split("-"))
        with suppress(ValueError):
            annual.add(date(year, month, day))
    return frozenset(counted | annual | set(calendar.extra_closures))


def is_working_day(day: date, holiday_calendar: HolidayCalendar) -> bool:
    """Monday to Friday, not a public holiday and not a closure the policy names."""
    return day.weekday() < 5 and day not in _public_holidays(holiday_calendar, day.year)


def add_business_days(day: date, count: int, holiday_calendar: HolidayCalendar) -> date:
    """The ``count``-th working day, counting from the day after ``day``."""
    current = day
    while count > 0:
        current += timedelta(days=1)
        if is_working_day(current, holiday_calendar):
            count -= 1
    return current


def next_working_day(day: date, holiday_calendar: HolidayCalendar) -> date:
    """``day`` itself if it is a working day, else the next working day."""
    while not is_working_day(day, holiday_calendar):
        day += timedelta(days=1)
    return day


def count_period(start: date, period: Period, holiday_calendar: HolidayCalendar) -> date:
    """The end of ``period`` running from ``start`` (the receipt date)."""
    if period.unit is Unit.MONTHS:
        return add_months(start, period.amount)
    if period.unit is Unit.DAYS:
        return start + timedelta(days=period.amount)
    return add_business_days(start, period.amount, holiday_calendar)


def _law_extended_end(
    received_on: date, law: LawPeriod, extension: Period, cal: HolidayCalendar
) -> date:
    """End of the law's extended period: same unit counts as one total from receipt."""
    if extension.unit is law.unit:
        return count_period(received_on, period_of(law.unit, law.amount + extension.amount), cal)
    return count_period(count_period(received_on, law, cal), extension, cal)


# --- query and result ----------------------------------------------------------------------


class DeadlineQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    jurisdiction: Jurisdiction
    rights: Annotated[list[Right], Field(min_length=1)]
    received_at: datetime
    paused_days: Annotated[int, Field(ge=0, le=3650)] = 0
    # When identity was confirmed: where the law starts the period then (UK Art. 12A).
    verified_at: datetime | None = None

    @field_validator("received_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("needs a time zone, for example 2026-11-29T10:00:00+00:00")
        return value


class Deadline(BaseModel):
    model_config = ConfigDict(frozen=True)

    policy_version: str
    jurisdiction: Jurisdiction
    received_on: date
    target_on: date
    due_on: date
    due_at: datetime
    extension_limit_on: date | None
    extension_notice_by: datetime | None
    clock_stops_for_clarification: bool
    acknowledge_by_on: date | None
    basis: str
    # The period starts once identity is confirmed (UK Art. 12A): counted again on verification.
    starts_at_verification: bool = False
    # The jurisdiction's rules are a draft Legal has not confirmed: the deadline is no later
    # than the group's promise, and officers see "rules unconfirmed".
    rules_unconfirmed: bool = False


@dataclass(frozen=True)
class _RightOutcome:
    """One right's target and extension limit, with the words naming what binds."""

    right: Right
    target: date
    target_reason: str
    extension_limit: date | None
    extension_reason: str


def _right_outcome(
    right: Right, received_on: date, rules: JurisdictionPolicy, group: GroupRules
) -> _RightOutcome:
    cal = rules.holiday_calendar
    law = rules.periods.for_right(right)
    law_name = f"{law.basis or rules.basis}, {law.describe()} ({right.value})"
    law_target = count_period(received_on, law, cal)
    promise = count_period(received_on, group.promise, cal)
    if law_target < promise:
        target, reason = law_target, f"law: {law_name}"
    elif law_target == promise:
        target, reason = law_target, f"law ({law_name}) and group promise"
    else:
        target, reason = promise, f"group promise, {group.promise.describe()} (law: {law_name})"
    limit, ext_reason = _extension_limit(right, received_on, law, cal, group)
    return _RightOutcome(right, target, reason, limit, ext_reason)


def _extension_limit(
    right: Right, received_on: date, law: LawPeriod, cal: HolidayCalendar, group: GroupRules
) -> tuple[date | None, str]:
    if law.extension is None:
        return None, f"none ({right.value} has no extension in law)"
    cap = count_period(received_on, group.cap, cal)
    cap_reason = f"group cap, {group.cap.describe()} from receipt"
    extension = law.extension.period
    if extension is None:
        return cap, f"{cap_reason} (law: no fixed length)"
    law_end = _law_extended_end(received_on, law, extension, cal)
    if law_end < cap:
        return law_end, f"law, +{extension.describe()} ({right.value})"
    return cap, f"{cap_reason} (law: +{extension.describe()})"


def compute_deadline(query: DeadlineQuery, policy: DeadlinePolicy) -> Deadline:
    """The deadline for a request: the stricter rule binds, across every right requested."""
    rules = policy.jurisdictions[query.jurisdiction]
    cal = rules.holiday_calendar
    zone = ZoneInfo(rules.time_zone)
    received_on = query.received_at.astimezone(zone).date()
    starts_on = received_on
    if rules.period_starts_at_verification and query.verified_at is not None:
        starts_on = max(received_on, query.verified_at.astimezone(zone).date())
    paused = query.paused_days if rules.clock_stops_for_clarification else 0
    outcomes = [_right_outcome(r, starts_on, rules, policy.group) for r in query.rights]

    binding = min(outcomes, key=lambda outcome: outcome.target)
    target_on = binding.target + timedelta(days=paused)
    due_on = _roll(target_on, rules)
    due_at = end_of_day(due_on, rules.time_zone)

    limit_on, limit_reason = _request_extension_limit(outcomes)
    if limit_on is not None:
        limit_on = _roll(limit_on + timedelta(days=paused), rules)
    if rules.is_draft:
        target_on, due_on, limit_on = _within_promise(
            received_on, policy.group, cal, (target_on, due_on, limit_on))
        due_at = end_of_day(due_on, rules.time_zone)

    acknowledge_by_on = None
    if rules.acknowledge_within is not None:
        acknowledge_by_on = count_period(received_on, rules.acknowledge_within, cal)

    return Deadline(
        policy_version=policy.version,
        jurisdiction=query.jurisdiction,
        received_on=received_on,
        target_on=target_on,
        due_on=due_on,
        due_at=due_at,
        extension_limit_on=limit_on,
        extension_notice_by=due_at if limit_on is not None else None,
        clock_stops_for_clarification=rules.clock_stops_for_clarification,
        acknowledge_by_on=acknowledge_by_on,
        basis=_basis(binding, limit_reason, paused, rolled=due_on != target_on)
        + ("; rules unconfirmed: no later than the group promise" if rules.is_draft else ""),
        rules_unconfirmed=rules.is_draft,
        starts_at_verification=rules.period_starts_at_verification,
    )


def _within_promise(received_on: date, group: GroupRules, cal: HolidayCalendar,
                    dates: tuple[date, date, date | None]) -> tuple[date, date, date | None]:
    """Target, due date and extension limit as an unconfirmed rule may set them: never later
    than the group's promise (the first two) or its cap (the limit), counted from receipt."""
    target_on, due_on, limit_on = dates
    promise_on = count_period(received_on, group.promise, cal)
    cap_on = count_period(received_on, group.cap, cal)
    return (min(target_on, promise_on), min(due_on, promise_on),
            min(limit_on, cap_on) if limit_on is not None else None)


def _roll(day: date, rules: JurisdictionPolicy) -> date:
    return next_working_day(day, rules.holiday_calendar) if rules.rolls_over else day


def _request_extension_limit(outcomes: list[_RightOutcome]) -> tuple[date | None, str]:
    """None if any right has no extension; else the earliest limit across rights."""
    for outcome in outcomes:
        if outcome.extension_limit is None:
            return None, outcome.extension_reason
    binding = min(outcomes, key=lambda outcome: outcome.extension_limit or date.max)
    return binding.extension_limit, binding.extension_reason


def _basis(binding: _RightOutcome, limit_reason: str, paused: int, *, rolled: bool) -> str:
    parts = [f"due: {binding.target_reason}"]
    if paused:
        parts.append(f"clock stopped {paused} day{'' if paused == 1 else 's'}")
    if rolled:
        parts.append("rolled over to the next working day")
    parts.append(f"extension: {limit_reason}")
    return "; ".join(parts)
