"""The deadline policy file (``dsr/policy/deadlines.yaml``): its model, per jurisdiction and
right, and its loading. A bad field stops the load with an error naming the field path.
``dsr.deadlines`` computes deadlines from it."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

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
        return period_of(unit, getattr(self, unit.value))


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
    period_starts_at_verification: bool = False
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


def period_of(unit: Unit, amount: int) -> Period:
    return Period.model_validate({unit.value: amount})
