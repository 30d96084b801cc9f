"""After a database restore the chain is shorter than its anchors, as after a truncation: an
administrator records the entries lost (``ledger restored``, signed, through the officer
service, from a machine holding no secret), and ``ledger verify`` passes from then on while
reporting the gap every time. An auditor may not record it, and a truncation after the
restore is still caught."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from dsr import ledger, ledger_restore
from dsr.assertions import Role
from dsr.database import make_engine
from dsr.settings import Settings
from dsr.signers import officer_signer
from services.mail_server import free_port
from starter import app
from tests.conftest import officer_service_thread, write_officer_files

SECRET = "ledger-restore-test-key-2b8f4e1a7c9d3f6a0e5b"
KEY = ledger.ledger_key(SECRET.encode())
REASON = "restored the backup of 2026-12-06 after the disk failure INC-2291"


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """The officer service (no Temporal), an administrator (admin.lee) and an auditor
    (audit.kim), each logged in on their own machine."""
    port = free_port()
    settings = Settings(data_dir=tmp_path, hmac_key=SECRET, officer_service_port=port,
                        officer_service_url=f"http://127.0.0.1:{port}",
                        temporal_address="127.0.0.1:9")  # nothing listens there
    with officer_service_thread(settings):
        for officer_id, role in (("admin.lee", Role.ADMINISTRATOR), ("audit.kim", Role.AUDITOR)):
            write_officer_files(officer_signer(settings, officer_id, [role]),
                                tmp_path / officer_id)
        yield settings


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return make_engine(settings.app_database_url)


def cli(settings: Settings, officer_id: str, *args: str) -> tuple[int, str]:
    """An officer's CLI: their own folder, the officer service, no secret."""
    home = settings.data_dir / officer_id
    env = {"DSR_DATA_DIR": str(home), "DSR_SETTINGS_FILE": str(home / "absent.env"),
           "DSR_OFFICER_SERVICE_URL": settings.officer_service_url}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def append(engine: Engine, count: int, at: datetime | None = None) -> int:
    """``count`` entries; the last seq."""
    with Session(engine) as session, session.begin():
        for n in range(count):
            last = ledger.append(session, "milestone", "orchestrator", at or datetime.now(UTC),
                                 f"R-{n}", {"n": n}, KEY).seq
    return last


def restore(database: Path, backup: sqlite3.Connection) -> None:
    """The database administrator's restore: the backup, page for page, into the database."""
    with sqlite3.connect(database) as live:
        backup.backup(live)


def back_up(database: Path, folder: Path) -> sqlite3.Connection:
    backup = sqlite3.connect(folder / "backup.db")
    with sqlite3.connect(database) as live:
        live.backup(backup)
    return backup


def test_an_administrator_records_a_restore_and_verify_reports_the_gap(
        settings: Settings, engine: Engine) -> None:
    database, store = settings.data_dir / "dsr.db", ledger.anchor_store(settings)
    restored_to = append(engine, 20)
    backup = back_up(database, settings.data_dir)
    lost_to = append(engine, 17)
    lost_anchor = ledger.anchor(engine, KEY, store)  # the hourly anchor, of the lost chain
    restore(database, backup)
    lost = f"{restored_to + 1}-{lost_to}"

    code, out = cli(settings, "audit.kim", "ledger", "verify")
    assert code == 1 and out.startswith(
        f"ledger broken at entry {restored_to + 1}: entries {lost} are missing: the chain ends "
        f"at {restored_to} but an anchor of {lost_anchor.at.isoformat()} records {lost_to}")
    code, out = cli(settings, "audit.kim", "ledger", "restored", "--reason", REASON)
    assert code == 1 and "record_restore needs the role administrator" in out, out
    code, out = cli(settings, "admin.lee", "ledger", "restored", "--reason", "x")
    assert code == 2 and "reason" in out, out
    code, out = cli(settings, "admin.lee", "ledger", "restored", "--reason", REASON)
    assert (code, out.strip()) == (0, f"recorded as entry {restored_to + 1}: entries {lost} "
                                      "were lost in the restore (the chain ended at entry "
                                      f"{restored_to}); ledger verify reports this gap from "
                                      "now on")

    code, out = cli(settings, "audit.kim", "ledger", "verify")
    assert code == 0, out
    assert out.splitlines() == [
        f"ledger intact: {restored_to + 1} entries, last anchor seq none",  # none since
        f"note: entries {lost} were lost in a database restore, recorded as entry "
        f"{restored_to + 1} by admin.lee on {_entry_at(database, restored_to + 1)} (the chain "
        f"then ended at entry {restored_to}; the newest anchor lost is of "
        f"{lost_anchor.at.isoformat()})"]
    with sqlite3.connect(database) as db:
        kind, actor, detail = db.execute("SELECT kind, actor, detail FROM ledger WHERE seq = ?",
                                         (restored_to + 1,)).fetchone()
    assert (kind, actor) == ("restored_to", "admin.lee")
    assert REASON not in detail and "INC-2291" not in detail  # a keyed hash of it only
    assert json.loads(detail)["reason"]["hmac"]

    ledger.anchor(engine, KEY, store)  # it goes on: anchors, entries; the gap stays reported
    append(engine, 5)
    ledger.anchor(engine, KEY, store)
    code, out = cli(settings, "audit.kim", "ledger", "verify", "--json")
    result = ledger.VerifyResult.model_validate_json(out)
    assert code == 0 and result.ok and result.last_seq == restored_to + 6
    assert [(g.first_seq, g.last_seq, g.recorded_by) for g in result.gaps] == [
        (restored_to + 1, lost_to, "admin.lee")]


def test_a_restore_does_not_excuse_a_later_truncation_nor_is_recorded_twice(
        settings: Settings, engine: Engine) -> None:
    database, store = settings.data_dir / "dsr.db", ledger.anchor_store(settings)
    append(engine, 10)
    backup = back_up(database, settings.data_dir)
    append(engine, 5)
    ledger.anchor(engine, KEY, store)
    restore(database, backup)
    assert cli(settings, "admin.lee", "ledger", "restored", "--reason", REASON)[0] == 0
    code, out = cli(settings, "admin.lee", "ledger", "restored", "--reason", REASON)
    assert code == 1 and out.startswith("error: refused: nothing to record: every anchor "
                                        "agrees with the chain"), out

    kept = append(engine, 8)
    ledger.anchor(engine, KEY, store)
    with sqlite3.connect(database, isolation_level=None) as db:  # an attacker, after it
        db.execute("DELETE FROM ledger WHERE seq > ?", (kept - 3,))
        db.execute("UPDATE ledger_head SET seq = ?, mac = (SELECT mac FROM ledger WHERE seq = ?)",
                   (kept - 3, kept - 3))
    code, out = cli(settings, "audit.kim", "ledger", "verify", "--json")
    result = ledger.VerifyResult.model_validate_json(out)
    assert code == 1 and result.missing_range == [kept - 2, kept]
    assert len(result.gaps) == 1, "the restore is still reported"


def test_entries_written_after_the_restore_count_in_the_gap(
        settings: Settings, engine: Engine) -> None:
    """The workers ran before the restore was recorded: entries 11-13 are new, not the lost
    ones, and the gap starts at 11, not after them."""
    database, store = settings.data_dir / "dsr.db", ledger.anchor_store(settings)
    start = append(engine, 10) - 10
    ledger.anchor(engine, KEY, store)
    backup = back_up(database, settings.data_dir)
    lost_to = append(engine, 5)
    ledger.anchor(engine, KEY, store)
    restore(database, backup)
    append(engine, 3)
    ledger.anchor(engine, KEY, store)  # the new chain's, at start + 13: it agrees
    recorded = ledger_restore.record_restore(engine, KEY, store, "admin.lee", {"hmac": "x"},
                                             datetime.now(UTC))
    assert (recorded.chain_end, recorded.lost_from, recorded.lost_to) == (
        start + 13, start + 11, lost_to)
    result = ledger.verify_configured(engine, settings)
    assert result.ok, result.problems
    assert result.describe().splitlines()[1].endswith(
        f"; entries {start + 11}-{start + 13} were written after the restore, in place of lost "
        "ones")


def _entry_at(database: Path, seq: int) -> str:
    with sqlite3.connect(database) as db:
        stored = db.execute("SELECT at FROM ledger WHERE seq = ?", (seq,)).fetchone()[0]
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).isoformat()
