"""The register report for a date range: what a regulator, or a CCPA metrics disclosure, asks for.

Requests received in ``[from, to]`` (dates, inclusive, UTC) counted by right (a request with two
rights counts under each), jurisdiction, status and outcome; how many were answered, how long
that took (median and worst, in days), how many were extended, flagged overdue, denied or
cancelled; and per month of closing, how many answers went out on time (closed at or before the
due time) or late. Counts only: no request ids, no identities.

``compute_report`` is pure; the officer service computes it (``read_report``) and the CLI
(``cli.report``) presents it with ``render_table``, ``render_csv`` and ``render_chart``.
matplotlib and SQLAlchemy are imported only when used, so the rest of the CLI stays fast.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, model_validator
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dsr.register import RequestRecord
from dsr.status import CLOSED, Status

OPEN = "(open)"


class RegisterRow(Protocol):
    """The columns of ``dsr.database.RequestRecord`` the report reads."""

    rights: list[str]
    jurisdiction: str
    status: str
    received_at: datetime
    due_at: datetime | None
    extended: bool
    overdue: bool
    outcome: str | None
    closed_at: datetime | None


class ReportRange(BaseModel):
    """Requests received from ``start`` to ``end``, both days whole (UTC)."""

    model_config = {"extra": "forbid"}
    start: date
    end: date

    @model_validator(mode="after")
    def _in_order(self) -> ReportRange:
        if self.start > self.end:
            raise ValueError(f"--from {self.start.isoformat()} is after --to "
                             f"{self.end.isoformat()}; give a --from on or before --to")
        return self


@dataclass
class Month:
    on_time: int = 0
    late: int = 0


@dataclass
class Report:
    start: date
    end: date
    received: int = 0
    answered: int = 0
    answered_on_time: int = 0
    answered_late: int = 0
    answered_without_due_date: int = 0
    denied: int = 0
    cancelled: int = 0
    unverified: int = 0
    open: int = 0
    extended: int = 0
    overdue: int = 0
    median_days_to_answer: float | None = None
    worst_days_to_answer: float | None = None
    by_right: dict[str, int] = field(default_factory=dict)
    by_jurisdiction: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    by_month: dict[str, Month] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        return {
            "received": self.received,
            "answered": self.answered,
            "answered_on_time": self.answered_on_time,
            "answered_late": self.answered_late,
            "answered_without_due_date": self.answered_without_due_date,
            "denied": self.denied,
            "cancelled": self.cancelled,
            "unverified": self.unverified,
            "open": self.open,
            "extended": self.extended,
            "overdue": self.overdue,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """The report ``to_dict`` gave (as the officer service sends it)."""
        report = cls(start=date.fromisoformat(data["from"]), end=date.fromisoformat(data["to"]),
                     **data["totals"])
        report.median_days_to_answer = data["days_to_answer"]["median"]
        report.worst_days_to_answer = data["days_to_answer"]["worst"]
        report.by_right, report.by_jurisdiction = data["by_right"], data["by_jurisdiction"]
        report.by_status, report.by_outcome = data["by_status"], data["by_outcome"]
        report.by_month = {month: Month(**counts)
                           for month, counts in data["answered_by_month"].items()}
        return report

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "totals": self.totals(),
            "days_to_answer": {
                "median": self.median_days_to_answer,
                "worst": self.worst_days_to_answer,
            },
            "by_right": self.by_right,
            "by_jurisdiction": self.by_jurisdiction,
            "by_status": self.by_status,
            "by_outcome": self.by_outcome,
            "answered_by_month": {
                month: {"on_time": m.on_time, "late": m.late} for month, m in self.by_month.items()
            },
        }


# Computing ------------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def range_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """``[start 00:00 UTC, the day after end 00:00 UTC)``: both dates whole, inclusive."""
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


def days_between(earlier: datetime, later: datetime) -> float:
    return (_utc(later) - _utc(earlier)).total_seconds() / 86400


def _months(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` ('YYYY-MM'), so a month with none shows as 0."""
    year, month = int(first[:4]), int(first[5:])
    months = []
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def compute_report(records: Iterable[RegisterRow], start: date, end: date) -> Report:
    """The figures for requests received from ``start`` to ``end`` (inclusive, UTC); other
    records are ignored. Days to answer run from receipt to closing, for answered requests."""
    low, high = range_bounds(start, end)
    report = Report(start=start, end=end)
    rights: Counter[str] = Counter()
    jurisdictions: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    months: dict[str, Month] = {}
    durations: list[float] = []
    for record in records:
        if not low <= _utc(record.received_at) < high:
            continue
        report.received += 1
        rights.update(set(record.rights))
        jurisdictions[record.jurisdiction] += 1
        statuses[record.status] += 1
        outcomes[(record.outcome or record.status) if record.status in CLOSED else OPEN] += 1
        report.extended += bool(record.extended)
        report.overdue += bool(record.overdue)
        report.denied += record.status == Status.DENIED
        report.cancelled += record.status == Status.CANCELLED
        report.unverified += record.status == Status.UNVERIFIED
        report.open += record.status not in CLOSED
        if record.status != Status.ANSWERED or record.closed_at is None:
            continue
        report.answered += 1
        durations.append(days_between(record.received_at, record.closed_at))
        if record.due_at is None:
            report.answered_without_due_date += 1
            continue
        month = months.setdefault(f"{_utc(record.closed_at):%Y-%m}", Month())
        if _utc(record.closed_at) <= _utc(record.due_at):
            month.on_time += 1
            report.answered_on_time += 1
        else:
            month.late += 1
            report.answered_late += 1
    if durations:
        report.median_days_to_answer = round(statistics.median(durations), 1)
        report.worst_days_to_answer = round(max(durations), 1)
    report.by_right = dict(sorted(rights.items()))
    report.by_jurisdiction = dict(sorted(jurisdictions.items()))
    report.by_status = dict(sorted(statuses.items()))
    report.by_outcome = dict(sorted(outcomes.items()))
    if months:
        keys = sorted(months)
        report.by_month = {m: months.get(m, Month()) for m in _months(keys[0], keys[-1])}
    return report


def load_records(engine: Engine, start: date, end: date) -> list[RequestRecord]:
    """The register's requests received in the range."""

    low, high = range_bounds(start, end)
    query = select(RequestRecord).where(
        RequestRecord.received_at >= low, RequestRecord.received_at < high
    )
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query).all())


# Rendering ------------------------------------------------------------------------------------


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_table(report: Report, console: Console) -> None:
    console.print(
        f"[bold]Requests received {report.start.isoformat()} to {report.end.isoformat()}"
        "[/bold] (UTC, inclusive)",
        highlight=False,
    )
    summary = Table("figure", "value", title="Summary")
    for key, value in report.totals().items():
        summary.add_row(key.replace("_", " "), str(value))
    summary.add_row("median days to answer", _days(report.median_days_to_answer))
    summary.add_row("worst days to answer", _days(report.worst_days_to_answer))
    console.print(summary)
    for title, counts in (
        ("By right", report.by_right),
        ("By jurisdiction", report.by_jurisdiction),
        ("By status", report.by_status),
        ("By outcome", report.by_outcome),
    ):
        table = Table(title.removeprefix("By ").lower(), "requests", title=title)
        for key, count in counts.items():
            table.add_row(escape(key), str(count))
        console.print(table)
    monthly = Table("month closed", "on time", "late", title="Answered on time / late")
    for month, m in report.by_month.items():
        monthly.add_row(month, str(m.on_time), str(m.late))
    console.print(monthly)


def render_csv(report: Report) -> str:
    """One ``section,key,value`` row per figure: a spreadsheet opens it as it is."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["section", "key", "value"])
    writer.writerow(["range", "from", report.start.isoformat()])
    writer.writerow(["range", "to", report.end.isoformat()])
    for key, value in report.totals().items():
        writer.writerow(["totals", key, value])
    writer.writerow(["days_to_answer", "median", _days(report.median_days_to_answer)])
    writer.writerow(["days_to_answer", "worst", _days(report.worst_days_to_answer)])
    for section, counts in (
        ("by_right", report.by_right),
        ("by_jurisdiction", report.by_jurisdiction),
        ("by_status", report.by_status),
        ("by_outcome", report.by_outcome),
    ):
        for key, count in counts.items():
            writer.writerow([section, key, count])
    for month, m in report.by_month.items():
        writer.writerow(["answered_on_time_by_month", month, m.on_time])
        writer.writerow(["answered_late_by_month", month, m.late])
    return buffer.getvalue()


def render_chart(report: Report) -> bytes:
    """A PNG: answered requests per month of closing, on time and late stacked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(max(6.0, 0.6 * len(report.by_month) + 2), 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    months = list(report.by_month)
    on_time = [m.on_time for m in report.by_month.values()]
    late = [m.late for m in report.by_month.values()]
    positions = list(range(len(months)))
    axes.bar(positions, on_time, color="#2e7d32", label="on time")
    axes.bar(positions, late, bottom=on_time, color="#c62828", label="late")
    axes.set_xticks(positions, months, rotation=45, ha="right")
    axes.set_ylabel("requests answered")
    axes.set_xlabel("month answered (UTC)")
    axes.set_title(
        "Answered on time vs late, by month\n"
        f"requests received {report.start.isoformat()} to {report.end.isoformat()}",
        fontsize=11,
    )
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if months:
        axes.legend()
    else:
        axes.text(
            0.5, 0.5, "no answered requests", ha="center", va="center", transform=axes.transAxes
        )
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
