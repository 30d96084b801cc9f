"""Legal deadlines for rights requests, computed from the per-jurisdiction policy file.

Pure functions: no clock and no I/O beyond reading the policy YAML. All dates are calendar
dates in the jurisdiction's own time zone; ``due_at`` is the end of the due day, in UTC.
"""

from __future__ import annotations

import calendar
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dsr.models import Jurisdiction, Right, StrictModel
from dsr.provenance import Provenance

DEFAULT_POLICY_PATH = Path(__file__).parent / "policy" / "deadlines.yaml"

Months = Annotated[int, Field(ge=1, le=36)]
Days = Annotated[int, Field(ge=1, le=1100)]
BusinessDays = Annotated[int, Field(ge=1, le=780)]
Text = Annotated[str, Field(min_length=1, max_length=300)]


class PolicyError(Exception):
    """The deadline policy file is missing, unreadable or invalid."""


class Unit(StrEnum):
    MONTHS = "months"
    DAYS = "days"
    BUSINESS_DAYS = "business_days"


_UNIT_WORDS = {Unit.MONTHS: "month", Unit.DAYS: "day", Unit.BUSINESS_DAYS: "business day"}


def _given_units(model: BaseModel) -> list[Unit]:
    return [unit for unit in Unit if getattr(model, unit.value) is not None]


# --- policy file model ---------------------------------------------------------------------


class Period(StrictModel):
    """A length of time: exactly one of months, days (calendar) or business_days."""

    months: Months | None = None
    days: Days | None = None
    business_days: BusinessDays | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> Self:
        if len(_given_units(self)) != 1:
            raise ValueError("give exactly one of months, days, business_days")
        return self

    @property
    def unit(self) -> Unit:
        return _given_units(self)[0]

    @property
    def amount(self) -> int:
        value: int = getattr(self, self.unit.value)
        return value

    def describe(self) -> str:
        word = _UNIT_WORDS[self.unit]
        return f"{self.amount} {word}{'' if self.amount == 1 else 's'}"


class Extension(StrictModel):
    """An extension: a period, or ``up_to_group_cap`` where the law sets no fixed length."""

    months: Months | None = None
    days: Days | None = None
    business_days: BusinessDays | None = None
    up_to_group_cap: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = len(_given_units(self)) + int(self.up_to_group_cap)
        if kinds != 1:
            raise ValueError(
                "give exactly one of months, days, business_days or up_to_group_cap: true"
            )
        return self

    @property
    def period(self) -> Period | None:
        """The fixed length, or None where only the group cap limits the extension."""
        if self.up_to_group_cap:
            return None
        unit = _given_units(self)[0]
        return _period(unit, getattr(self, unit.value))


class LawPeriod(Period):
    """The law's first period for a right, with its extension (None: no extension)."""

    extension: Extension | None = None
    basis: Text | None = None


class RightPeriods(StrictModel):
    default: LawPeriod
    rights: dict[Right, LawPeriod] = Field(default_factory=dict)

    def for_right(self, right: Right) -> LawPeriod:
        return self.rights.get(right, self.default)


class HolidayCalendar(StrictModel):
    """Public holidays from the ``holidays`` package, plus the policy's extra closures."""

    country: Annotated[str, Field(min_length=2, max_length=3)]
    subdivision: str | None = None
    extra_closures: tuple[date, ...] = ()
    # Days the law of the place closes every year that the package omits, as "MM-DD".
    annual_closures: tuple[Annotated[str, Field(pattern=r"^(0[1-9]|1[0-2])-[0-3][0-9]$")], ...] = ()
    # Package holidays (English names) that the law does not count, e.g. "Good Friday" in NL.
    not_counted: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _known(self) -> Self:
        try:
            holidays.country_holidays(self.country, subdiv=self.subdivision, years=2000)
        except NotImplementedError as exc:
            raise ValueError(f"not a country/subdivision of the holidays package: {exc}") from exc
        return self


class GroupRules(Provenance):
    promise: Period
    cap: Period


class JurisdictionPolicy(Provenance):
    time_zone: str
    holiday_calendar: HolidayCalendar
    rolls_over: bool
    clock_stops_for_clarification: bool = False
    acknowledge_within: Period | None = None
    basis: Text
    periods: RightPeriods

    @field_validator("time_zone")
    @classmethod
    def _iana(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("not an IANA time zone such as Europe/Amsterdam") from exc
        return value


class DeadlinePolicy(StrictModel):
    version: Text
    group: GroupRules
    jurisdictions: dict[Jurisdiction, JurisdictionPolicy]

    @field_validator("version", mode="before")
    @classmethod
    def _date_as_text(cls, value: Any) -> Any:
        # An unquoted YAML date (version: 2026-11-29) is read as a date.
        return value.isoformat() if isinstance(value, date) else value

    @field_validator("jurisdictions")
    @classmethod
    def _every_jurisdiction(
        cls, value: dict[Jurisdiction, JurisdictionPolicy]
    ) -> dict[Jurisdiction, JurisdictionPolicy]:
        missing = [j.value for j in Jurisdiction if j not in value]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} (every jurisdiction needs rules)")
        return value


# --- loading -------------------------------------------------------------------------------


def load_deadline_policy(path: Path | None = None) -> DeadlinePolicy:
    """Load and validate the policy file (default: dsr/policy/deadlines.yaml).

    Cached per path and modification time, so an edited file is read again.
    """
    resolved = Path(path or DEFAULT_POLICY_PATH).resolve()
    try:
        stamp = resolved.stat().st_mtime_ns
    except OSError as exc:
        raise PolicyError(f"{resolved}: cannot read the deadline policy: {exc.strerror}") from exc
    return _load(resolved, stamp)


@lru_cache(maxsize=16)
def _load(path: Path, _stamp: int) -> DeadlinePolicy:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the deadline policy: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: (top level): expected a mapping of policy fields")
    try:
        return DeadlinePolicy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_describe_errors(path, exc)) from exc


def _describe_errors(path: Path, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return f"{path}: invalid deadline policy: " + "; ".join(problems)


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


def _period(unit: Unit, amount: int) -> Period:
    return Period.model_validate({unit.value: amount})


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
        return count_period(received_on, _period(law.unit, law.amount + extension.amount), cal)
    return count_period(count_period(received_on, law, cal), extension, cal)


# --- query and result ----------------------------------------------------------------------


class DeadlineQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    jurisdiction: Jurisdiction
    rights: Annotated[list[Right], Field(min_length=1)]
    received_at: datetime
    paused_days: Annotated[int, Field(ge=0, le=3650)] = 0

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
    received_on = query.received_at.astimezone(ZoneInfo(rules.time_zone)).date()
    paused = query.paused_days if rules.clock_stops_for_clarification else 0
    outcomes = [_right_outcome(r, received_on, rules, policy.group) for r in query.rights]

    binding = min(outcomes, key=lambda outcome: outcome.target)
    target_on = binding.target + timedelta(days=paused)
    due_on = _roll(target_on, rules)
    due_at = end_of_day(due_on, rules.time_zone)

    limit_on, limit_reason = _request_extension_limit(outcomes)
    if limit_on is not None:
        limit_on = _roll(limit_on + timedelta(days=paused), rules)
    if rules.is_draft:  # an unconfirmed rule never makes a deadline later than the promise
        promise_on = count_period(received_on, policy.group.promise, cal)
        cap_on = count_period(received_on, policy.group.cap, cal)
        target_on, due_on = min(target_on, promise_on), min(due_on, promise_on)
        limit_on = min(limit_on, cap_on) if limit_on is not None else None
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
    )


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
