"""Calendar periods of the retention rules and their arithmetic, to the day: a record is kept
through the last day of its period and may go the next day."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, TypeVar

from pydantic import Field, model_validator

from dsr.models import StrictModel

D = TypeVar("D", date, datetime)


class Period(StrictModel):
    """A calendar period: ``{months: N}`` or ``{years: N}``."""

    months: Annotated[int, Field(ge=1, le=1200)] | None = None
    years: Annotated[int, Field(ge=1, le=100)] | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> Period:
        if (self.months is None) == (self.years is None):
            raise ValueError("give exactly one of months or years, for example {months: 6}")
        return self

    @property
    def in_months(self) -> int:
        return self.months if self.months is not None else 12 * (self.years or 0)

    def __str__(self) -> str:
        return f"{self.years} years" if self.years else f"{self.months} months"


def erasable_before(as_of: datetime, period: Period) -> datetime:
    """The start (UTC) of the first day whose records ``period`` still keeps on ``as_of``'s
    day. A record dated ``d`` is kept through the day ``d + period`` and may go the next day:
    an invoice of 2019-12-31 kept 7 years goes on 2027-01-01, one of 2020-02-29 on
    2027-03-01 (its last day is 2027-02-28), and on 2026-08-31 six months keep records from
    2026-03-01 (2026-02-28 + 6 months ended on 2026-08-28)."""
    today = utc(as_of).date()
    first = _shift_months(today, -period.in_months)
    while _shift_months(first, period.in_months) < today:  # a month-end day was clamped
        first += timedelta(days=1)
    return datetime.combine(first, time.min, tzinfo=UTC)


def subtract_period(moment: datetime, period: Period) -> datetime:
    """``moment`` minus whole calendar months; a day past the month's end becomes its last
    day (2026-08-31 minus 6 months is 2026-02-28)."""
    return _shift_months(moment, -period.in_months)


def add_period(moment: datetime, period: Period) -> datetime:
    """``moment`` plus whole calendar months, with the same last-day-of-month rule."""
    return _shift_months(moment, period.in_months)


def _shift_months(moment: D, months: int) -> D:
    year, month_index = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    last_day = calendar.monthrange(year, month_index + 1)[1]
    return moment.replace(year=year, month=month_index + 1, day=min(moment.day, last_day))


def longer(period: Period, other: Period) -> bool:
    return period.in_months > other.in_months


def utc(moment: datetime) -> datetime:
    """Connectors and workflows speak UTC; a naive time is taken to be UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
