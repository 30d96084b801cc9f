"""The register report: figures computed from a real SQLite application database, worked out by
hand below; its CSV, its PNG chart, and the ``report`` command as an officer runs it."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import starter
from dsr.assertions import Role
from dsr.database import make_engine
from dsr.register import RequestRecord
from dsr.report import Month, compute_report, load_records, render_chart, render_csv
from dsr.settings import Settings
from dsr.signers import officer_signer
from services.mail_server import free_port
from tests.conftest import officer_service_thread, write_officer_files

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECRET_ACCOUNT = "ACCT-SECRET-4711"
SECRET_HASH = "hash-of-zora-quill"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def row(
    request_id: str,
    rights: list[str],
    jurisdiction: str,
    status: str,
    received: str,
    due: str | None = None,
    closed: str | None = None,
    outcome: str | None = None,
    extended: bool = False,
    overdue: bool = False,
    received_at: datetime | None = None,
) -> RequestRecord:
    return RequestRecord(
        request_id=request_id,
        rights=rights,
        jurisdiction=jurisdiction,
        channel="email",
        requester_kind="subject",
        customer_account=SECRET_ACCOUNT,
        language="en",
        subject_hashes=[SECRET_HASH],
        status=status,
        received_at=received_at or at(received),
        due_at=at(due) if due else None,
        extended=extended,
        overdue=overdue,
        affiliates=[],
        policy_version="2026.1",
        outcome=outcome,
        closed_at=at(closed) if closed else None,
        updated_at=at(closed or received),
    )


# The register. Range under test: 2026-01-01 to 2026-03-31.
#
# answered   received          closed               days    due                  month    timely
# A1         01-05 09:00       01-15 09:00          10.0    02-05 09:00          2026-01  on time
# A2         01-20 00:00       02-01 12:00          12.5    02-20 00:00          2026-02  on time
# A3         01-31 23:00       03-20 23:00          48.0    03-16 23:00          2026-03  late
# A4         02-01 00:00       03-03 00:00          30.0    05-01 00:00 (ext.)   2026-03  on time
# A5         02-10 00:00       03-01 00:00          19.0    03-01 00:00 (equal)  2026-03  on time
# A6         02-27 12:00       03-27 12:00:01       28.00001 03-27 12:00        2026-03  late (1 s)
# A7         01-02 00:00       01-31 23:59:59       29.99999 01-30 00:00        2026-01  late
# A8         03-30 00:00       05-02 00:00          33.0    04-29 00:00          2026-05  late
#
# Days sorted: 10, 12.5, 19, 28.00001, 29.99999, 30, 33, 48: the median is the mean of the two
# middle ones, (28 d + 1 s + 30 d - 1 s) / 2 = 29.0; the worst 48.0.
# By month: 2026-01 1 on time 1 late; 02 1/0; 03 2/2; 04 none (shown as 0/0); 05 0/1.
def in_range() -> list[RequestRecord]:
    return [
        row(
            "A1",
            ["access"],
            "EU",
            "answered",
            "2026-01-05T09:00",
            "2026-02-05T09:00",
            "2026-01-15T09:00",
            "answered",
        ),
        row(
            "A2",
            ["access", "portability"],
            "DE",
            "answered",
            "2026-01-20T00:00",
            "2026-02-20T00:00",
            "2026-02-01T12:00",
            "answered",
        ),
        row(
            "A3",
            ["erasure"],
            "US-CA",
            "answered",
            "2026-01-31T23:00",
            "2026-03-16T23:00",
            "2026-03-20T23:00",
            "answered",
            overdue=True,
        ),
        row(
            "A4",
            ["erasure"],
            "UK",
            "answered",
            "2026-02-01T00:00",
            "2026-05-01T00:00",
            "2026-03-03T00:00",
            "answered",
            extended=True,
        ),
        row(
            "A5",
            ["opt_out_sale_sharing"],
            "US-CA",
            "answered",
            "2026-02-10T00:00",
            "2026-03-01T00:00",
            "2026-03-01T00:00",
            "answered",
        ),
        row(
            "A6",
            ["access"],
            "EU",
            "answered",
            "2026-02-27T12:00",
            "2026-03-27T12:00",
            "2026-03-27T12:00:01",
            "answered",
        ),
        row(
            "A7",
            ["rectification"],
            "EU",
            "answered",
            "2026-01-02T00:00",
            "2026-01-30T00:00",
            "2026-01-31T23:59:59",
            "answered",
            overdue=True,
        ),
        row(
            "A8",
            ["access"],
            "BR",
            "answered",
            "2026-03-30T00:00",
            "2026-04-29T00:00",
            "2026-05-02T00:00",
            "answered",
        ),
        row(
            "D1",
            ["erasure"],
            "EU",
            "denied",
            "2026-03-02T00:00",
            "2026-04-02T00:00",
            "2026-03-05T00:00",
            "denial",
        ),
        row(
            "D2",
            ["access"],
            "US-CA",
            "denied",
            "2026-01-03T00:00",
            "2026-03-19T00:00",
            "2026-03-10T00:00",
            "denial",
            extended=True,
        ),
        row(
            "C1",
            ["erasure", "objection"],
            "DE",
            "cancelled",
            "2026-03-10T00:00",
            "2026-04-10T00:00",
            "2026-03-11T00:00",
            "cancelled",
        ),
        row("O1", ["access"], "UK", "in_progress", "2026-03-25T00:00", "2026-04-25T00:00"),
        row(
            "O2",
            ["portability"],
            "EU",
            "awaiting_officer",
            "2026-01-10T00:00",
            "2026-02-10T00:00",
            extended=True,
            overdue=True,
        ),
        row(
            "U1",
            ["access"],
            "SG",
            "unverified",
            "2026-03-31T23:59:59",
            None,
            "2026-04-03T00:00",
            "unverified",
        ),
    ]


# Just outside: a second before the first day; the first moment after the last day; and a
# request received on the last day in New York, which is already the next day in UTC.
def out_of_range() -> list[RequestRecord]:
    return [
        row(
            "X1",
            ["restriction"],
            "CO",
            "answered",
            "2025-12-31T23:59:59",
            "2026-01-30T00:00",
            "2026-01-10T00:00",
            "answered",
            extended=True,
            overdue=True,
        ),
        row(
            "X2",
            ["restriction"],
            "CO",
            "denied",
            "2026-04-01T00:00",
            "2026-05-01T00:00",
            "2026-04-02T00:00",
            "denial",
        ),
        row(
            "X3",
            ["restriction"],
            "CO",
            "answered",
            "",
            "2026-05-01T00:00",
            "2026-06-10T00:00",
            "answered",
            received_at=datetime(2026, 3, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
        ),
    ]


EXPECTED: dict[str, Any] = {
    "from": "2026-01-01",
    "to": "2026-03-31",
    "totals": {
        "received": 14,
        "answered": 8,
        "answered_on_time": 4,
        "answered_late": 4,
        "answered_without_due_date": 0,
        "denied": 2,
        "cancelled": 1,
        "unverified": 1,
        "open": 2,
        "extended": 3,
        "overdue": 3,
    },
    "days_to_answer": {"median": 29.0, "worst": 48.0},
    # A2 counts under access and portability, C1 under erasure and objection: 16 for 14.
    "by_right": {
        "access": 7,
        "erasure": 4,
        "objection": 1,
        "opt_out_sale_sharing": 1,
        "portability": 2,
        "rectification": 1,
    },
    "by_jurisdiction": {"BR": 1, "DE": 2, "EU": 5, "SG": 1, "UK": 2, "US-CA": 3},
    "by_status": {
        "answered": 8,
        "awaiting_officer": 1,
        "cancelled": 1,
        "denied": 2,
        "in_progress": 1,
        "unverified": 1,
    },
    "by_outcome": {"(open)": 2, "answered": 8, "cancelled": 1, "denial": 2, "unverified": 1},
    "answered_by_month": {
        "2026-01": {"on_time": 1, "late": 1},
        "2026-02": {"on_time": 1, "late": 0},
        "2026-03": {"on_time": 2, "late": 2},
        "2026-04": {"on_time": 0, "late": 0},
        "2026-05": {"on_time": 0, "late": 1},
    },
}

START, END = date(2026, 1, 1), date(2026, 3, 31)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    path = tmp_path / "app" / "dsr.db"
    engine = make_engine(f"sqlite:///{path}")
    with Session(engine) as session, session.begin():
        session.add_all(in_range() + out_of_range())
    yield engine, path
    engine.dispose()


def test_figures_from_the_register(database: tuple[Engine, Path]) -> None:
    engine, _ = database
    records = load_records(engine, START, END)
    assert sorted(r.request_id for r in records) == sorted(r.request_id for r in in_range())
    report = compute_report(records, START, END)
    assert report.to_dict() == EXPECTED
    assert report.by_month["2026-04"] == Month(0, 0)


def test_records_outside_the_range_are_ignored_even_when_given() -> None:
    everything = compute_report(in_range() + out_of_range(), START, END)
    assert everything.to_dict() == EXPECTED
    january = compute_report(in_range() + out_of_range(), date(2026, 1, 1), date(2026, 1, 1))
    assert january.received == 0 and january.median_days_to_answer is None
    assert january.by_month == {}
    # A single day: A7 received 2026-01-02, answered late after 29.99999 days.
    one = compute_report(in_range(), date(2026, 1, 2), date(2026, 1, 2)).to_dict()
    assert one["totals"]["received"] == 1 and one["totals"]["answered_late"] == 1
    assert one["days_to_answer"] == {"median": 30.0, "worst": 30.0}
    assert one["answered_by_month"] == {"2026-01": {"on_time": 0, "late": 1}}


def test_csv_is_section_key_value_rows() -> None:
    text = render_csv(compute_report(in_range(), START, END))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["section", "key", "value"]
    assert rows[1:3] == [["range", "from", "2026-01-01"], ["range", "to", "2026-03-31"]]
    got = {(section, key): value for section, key, value in rows[1:]}
    assert len(got) == len(rows) - 1  # no duplicate (section, key)
    assert got[("totals", "received")] == "14"
    assert got[("totals", "answered_late")] == "4"
    assert got[("totals", "extended")] == "3"
    assert got[("days_to_answer", "median")] == "29.0"
    assert got[("days_to_answer", "worst")] == "48.0"
    assert got[("by_right", "access")] == "7"
    assert got[("by_jurisdiction", "US-CA")] == "3"
    assert got[("by_outcome", "denial")] == "2"
    assert got[("answered_on_time_by_month", "2026-03")] == "2"
    assert got[("answered_late_by_month", "2026-05")] == "1"
    assert got[("answered_on_time_by_month", "2026-04")] == "0"
    sections = {section for section, _ in got}
    assert sections == {
        "range",
        "totals",
        "days_to_answer",
        "by_right",
        "by_jurisdiction",
        "by_status",
        "by_outcome",
        "answered_on_time_by_month",
        "answered_late_by_month",
    }
    assert len(rows) == 1 + 2 + 11 + 2 + 6 + 6 + 6 + 5 + 2 * 5


def test_empty_report_renders() -> None:
    report = compute_report([], START, END)
    rows = list(csv.reader(io.StringIO(render_csv(report))))
    assert ["days_to_answer", "median", "-"] in rows
    assert render_chart(report).startswith(PNG_MAGIC)


def test_chart_is_a_png() -> None:
    from PIL import Image

    png = render_chart(compute_report(in_range(), START, END))
    assert png.startswith(PNG_MAGIC) and len(png) > 5000
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] >= 600 and image.size[1] >= 400


# The command ----------------------------------------------------------------------------------


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, database: tuple[Engine, Path],
           tmp_path: Path) -> Iterator[CliRunner]:
    """An auditor's CLI (their own folder, no secret, nothing inherited) and the officer
    service reading the test database."""
    for name in list(os.environ):
        if name.startswith("DSR_"):
            monkeypatch.delenv(name)
    _, path = database
    port = free_port()
    served = Settings(data_dir=path.parent, hmac_key="report-test-key-1c9f4a7e2b6d8f3a5e0c7b9d",
                      officer_service_port=port, officer_service_url=f"http://127.0.0.1:{port}",
                      temporal_address="127.0.0.1:9")  # nothing listens there
    home = tmp_path / "auditor"
    monkeypatch.setenv("DSR_DATA_DIR", str(home))
    monkeypatch.setenv("DSR_SETTINGS_FILE", str(home / "absent.env"))
    monkeypatch.setenv("DSR_OFFICER_SERVICE_URL", served.officer_service_url)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    with officer_service_thread(served):
        write_officer_files(officer_signer(served, "audit.kim", [Role.AUDITOR]), home)
        yield CliRunner()


def test_report_command_writes_table_csv_and_chart(runner: CliRunner, tmp_path: Path) -> None:
    csv_file, chart_file = tmp_path / "report.csv", tmp_path / "chart.png"
    result = runner.invoke(
        starter.app,
        [
            "report",
            "--from",
            "2026-01-01",
            "--to",
            "2026-03-31",
            "--csv",
            str(csv_file),
            "--chart",
            str(chart_file),
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Requests received 2026-01-01 to 2026-03-31" in out
    for line in (
        "received",
        "answered late",
        "median days to answer",
        "opt_out_sale_sharing",
        "US-CA",
        "2026-05",
    ):
        assert line in out
    assert f"wrote csv to {csv_file}" in out and f"wrote chart to {chart_file}" in out
    assert csv_file.read_bytes().decode("utf-8") == render_csv(
        compute_report(in_range(), START, END)
    )
    assert "totals,received,14" in csv_file.read_text(encoding="utf-8")
    png = chart_file.read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5000
    for private in (SECRET_ACCOUNT, SECRET_HASH, "A1", "X1"):
        assert private not in out + csv_file.read_text(encoding="utf-8")


def test_report_command_json(runner: CliRunner) -> None:
    result = runner.invoke(
        starter.app, ["report", "--from", "2026-01-01", "--to", "2026-03-31", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == EXPECTED


def test_to_defaults_to_today(runner: CliRunner) -> None:
    today = datetime.now(UTC).date().isoformat()
    default = runner.invoke(starter.app, ["report", "--from", "2025-01-01", "--json"])
    explicit = runner.invoke(
        starter.app, ["report", "--from", "2025-01-01", "--to", today, "--json"]
    )
    assert default.exit_code == explicit.exit_code == 0, default.output
    assert json.loads(default.stdout)["to"] == today
    assert json.loads(default.stdout) == json.loads(explicit.stdout)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--from", "2026-03-01", "--to", "2026-02-28"], "--from 2026-03-01 is after --to"),
        (["--from", "2026-13-01", "--to", "2026-12-31"], "--from takes a date as YYYY-MM-DD"),
        (["--from", "2026-01-01", "--to", "31/03/2026"], "--to takes a date as YYYY-MM-DD"),
        (["--from", "yesterday"], "--from takes a date as YYYY-MM-DD"),
    ],
)
def test_bad_dates_exit_2_and_write_nothing(
    runner: CliRunner, tmp_path: Path, args: list[str], names: str
) -> None:
    csv_file, chart_file = tmp_path / "report.csv", tmp_path / "chart.png"
    result = runner.invoke(
        starter.app, ["report", *args, "--csv", str(csv_file), "--chart", str(chart_file)]
    )
    assert result.exit_code == 2, result.output
    assert names in " ".join(result.stderr.split())
    assert result.stdout == ""
    assert not csv_file.exists() and not chart_file.exists()


def test_bad_output_paths_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    chart_file = tmp_path / "chart.png"
    missing = runner.invoke(
        starter.app,
        [
            "report",
            "--from",
            "2026-01-01",
            "--csv",
            str(tmp_path / "absent" / "r.csv"),
            "--chart",
            str(chart_file),
        ],
    )
    assert missing.exit_code == 2
    assert "--csv: the folder" in " ".join(missing.stderr.split())
    assert not chart_file.exists()
    same = runner.invoke(
        starter.app,
        ["report", "--from", "2026-01-01", "--csv", str(chart_file), "--chart", str(chart_file)],
    )
    assert same.exit_code == 2 and "--csv and --chart name the same file" in same.stderr
    assert not chart_file.exists()
    absent = runner.invoke(starter.app, ["report", "--to", "2026-01-01"])
    assert absent.exit_code == 2 and "--from" in absent.output
