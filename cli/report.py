"""``starter.py report``: the register's figures for a date range, computed by the officer
service (``read_report``: any role may read them, they are counts only) and shown here as a
table, JSON, CSV or a PNG chart."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from cli.errors import fail
from cli.options import act
from dsr.report import Report, ReportRange, render_chart, render_csv, render_table
from services.officer_actions import REGISTER


def _date(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option} takes a date as YYYY-MM-DD, for example {option} 2026-01-31 "
             f"(got {text!r})", code=2)


def _output(option: str, path: Path | None) -> Path | None:
    if path is not None and not path.parent.is_dir():
        fail(f"{option}: the folder {path.parent} does not exist; create it or choose "
             "another path", code=2)
    if path is not None and path.is_dir():
        fail(f"{option}: {path} is a folder; give a file path", code=2)
    return path


def _range(from_: str, to: str | None) -> ReportRange:
    start = _date("--from", from_)
    end = _date("--to", to) if to is not None else datetime.now(UTC).date()
    try:
        return ReportRange(start=start, end=end)
    except ValidationError as error:
        fail(error.errors()[0]["msg"].removeprefix("Value error, "), code=2)


def report_command(
    from_: Annotated[str, typer.Option(
        "--from", help="First day received, YYYY-MM-DD (UTC).", show_default=False)],
    to: Annotated[str | None, typer.Option(
        "--to", help="Last day received, YYYY-MM-DD; default today.")] = None,
    csv_path: Annotated[Path | None, typer.Option(
        "--csv", help="Also write the figures as CSV to this file.")] = None,
    chart_path: Annotated[Path | None, typer.Option(
        "--chart", help="Also write a PNG chart of on time vs late per month.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Report on requests received in a date range: by right, jurisdiction and outcome, time to
    answer, extended, overdue and denied; on time vs late per month. Counts only."""
    span = _range(from_, to)
    csv_file, chart_file = _output("--csv", csv_path), _output("--chart", chart_path)
    if csv_file and chart_file and csv_file.resolve() == chart_file.resolve():
        fail("--csv and --chart name the same file; give each its own path", code=2)
    report = Report.from_dict(act("read_report", REGISTER, span))
    # Everything is rendered before anything is written: a failure leaves no half a report.
    outputs = []
    if csv_file is not None:
        outputs.append(("--csv", csv_file, render_csv(report).encode("utf-8")))
    if chart_file is not None:
        outputs.append(("--chart", chart_file, render_chart(report)))
    for option, path, content in outputs:
        try:
            path.write_bytes(content)
        except OSError as error:
            fail(f"{option}: cannot write {path}: {error.strerror or error}")
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    console = Console()
    render_table(report, console)
    for option, path, _ in outputs:
        console.print(f"wrote {option.removeprefix('--')} to {escape(str(path))}",
                      highlight=False)
