"""The audit ledger on real SQLite files: the chain verifies, and a changed entry, a deleted
entry, a truncated tail and a recomputed chain (without the key, and with it) are detected."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import starter
from activities.proof import ProofActivities, PurgeInput
from dsr import ledger, notes, register
from dsr.anchors import sealed_anchor
from dsr.database import make_engine
from dsr.ledger import LedgerEntry
from dsr.models import parse_request
from dsr.register import ConfirmationRecord, Milestone
from dsr.sealedblobs import sealed_blob_store
from dsr.serverkeys import ServerKeys
from dsr.settings import Settings

SECRET = b"ledger-test-key-3d8f1a6c9e2b7f4a0c5e8d1b"
KEY = ledger.ledger_key(SECRET)
KEYS = register.RegisterKeys.from_secret(SECRET)
EMAIL = "ada.lovelace@example.com"
PHONE = "+447700900123"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, hmac_key=SECRET.decode())


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return make_engine(settings.app_database_url)


def _db(settings: Settings) -> sqlite3.Connection:
    return sqlite3.connect(settings.data_dir / "dsr.db", isolation_level=None)


def _anchors(settings: Settings) -> Path:
    return ledger.anchors_path(settings)


def _request(request_id: str) -> Any:
    return parse_request(
        {
            "request_id": request_id,
            "rights": ["erasure"],
            "identities": [{"type": "email", "value": EMAIL}, {"type": "phone", "value": PHONE}],
            "jurisdiction": "EU",
            "channel": "email",
            "requester": {"kind": "subject", "email": EMAIL},
            "received_at": T0.isoformat(),
        }
    )


def _fill(engine: Engine, request_id: str = "R-1") -> None:
    """Eight entries: a request received, six of its milestones, and a hold with no request."""
    register.record_intake(engine, _request(request_id), ServerKeys(SECRET), T0)
    steps = [
        ("received", "received", {}),
        ("acknowledged", "acknowledge", {}),
        ("verified", "verify", {"method": "code"}),
        ("deadline", "deadline", {"due": "2026-04-01"}),
        ("extended", "extend", {"reason": "complex request", "months": 2}),
        ("connector-cdp", "connector", {"connector": "cdp", "outcome": "erased", "records": 4}),
    ]
    for minutes, (key, step, detail) in enumerate(steps):
        register.record_milestone(
            engine,
            Milestone(
                request_id=request_id,
                key=key,
                step=step,
                at=T0 + timedelta(minutes=minutes),
                detail=detail,
                status="in_progress",
            ),
            KEYS,
        )
    with Session(engine) as session, session.begin():
        ledger.append(
            session,
            "hold_placed",
            "officer:olga",
            T0 + timedelta(hours=1),
            None,
            {"hold_id": "H-7", "reason": "litigation"},
            KEY,
        )


def _verify(engine: Engine, settings: Settings, key: bytes = KEY) -> ledger.VerifyResult:
    return ledger.verify(engine, key, _anchors(settings))


def _rechain(db: sqlite3.Connection, key: bytes) -> None:
    """What someone with database access does to hide an edit: recompute every mac and the
    head from the stored rows."""
    prev = ledger.GENESIS
    rows = db.execute("SELECT seq, at, request_id, kind, actor, detail FROM ledger ORDER BY seq")
    for seq, at, request_id, kind, actor, detail in rows.fetchall():
        when = datetime.fromisoformat(at).replace(tzinfo=UTC)
        mac = ledger.compute_mac(key, prev, seq, when, request_id, kind, actor, json.loads(detail))
        db.execute("UPDATE ledger SET prev_mac = ?, mac = ? WHERE seq = ?", (prev, mac, seq))
        prev = mac
    last = db.execute("SELECT max(seq) FROM ledger").fetchone()[0]
    db.execute("UPDATE ledger_head SET seq = ?, mac = ? WHERE id = 1", (last, prev))


# Intact ------------------------------------------------------------------------------------


def test_an_untouched_ledger_verifies_and_chains_every_entry(
    engine: Engine, settings: Settings
) -> None:
    _fill(engine)
    head = ledger.anchor(engine, KEY, _anchors(settings))
    result = _verify(engine, settings)
    assert result.ok, result
    assert (result.entries, result.last_seq, result.last_anchor_seq) == (8, 8, 8)
    assert result.describe() == "ledger intact: 8 entries, last anchor seq 8"
    with Session(engine) as session:
        entries = list(session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq)))
    assert [entry.seq for entry in entries] == list(range(1, 9))
    assert entries[0].prev_mac == ledger.GENESIS
    assert (entries[0].kind, entries[0].actor, entries[0].request_id) == (
        "received",
        "intake",
        "R-1",
    )
    assert entries[0].detail == {
        "rights": ["erasure"],
        "jurisdiction": "EU",
        "channel": "email",
        "requester_kind": "subject",
    }
    assert all(b.prev_mac == a.mac for a, b in itertools.pairwise(entries))
    assert head.seq == 8 and head.mac == entries[-1].mac
    assert entries[-1].request_id is None and entries[-1].kind == "hold_placed"
    assert entries[5].detail["detail"] == {
        "reason": notes.note_hash(KEYS.note_keys, "complex request"),  # a note: a keyed hash
        "months": 2,
    }


def test_an_empty_ledger_verifies(engine: Engine, settings: Settings) -> None:
    ledger.anchor(engine, KEY, _anchors(settings))
    result = _verify(engine, settings)
    assert result.ok and result.entries == 0 and result.last_anchor_seq == 0


def test_a_retried_milestone_appends_once(engine: Engine) -> None:
    register.record_intake(engine, _request("R-2"), ServerKeys(SECRET), T0)
    milestone = Milestone(request_id="R-2", key="acknowledged", step="acknowledge", at=T0)
    for _ in range(3):
        register.record_milestone(engine, milestone, KEYS)
    register.record_intake(engine, _request("R-2"), ServerKeys(SECRET), T0)
    with Session(engine) as session:
        kinds = [entry.kind for entry in session.scalars(select(LedgerEntry))]
    assert kinds == ["received", "milestone"]


def test_the_ledger_holds_no_personal_data(engine: Engine, settings: Settings) -> None:
    _fill(engine, "R-3")
    with _db(settings) as db:
        stored = json.dumps(db.execute("SELECT * FROM ledger").fetchall())
    assert "R-3" in stored
    for private in (EMAIL, PHONE, "ada", "lovelace", "7700900123"):
        assert private.lower() not in stored.lower()


def test_concurrent_appenders_never_fork_the_chain(engine: Engine, settings: Settings) -> None:
    errors: list[BaseException] = []

    def appender(worker: int) -> None:
        try:
            for n in range(10):
                with Session(engine) as session, session.begin():
                    ledger.append(
                        session, "milestone", f"worker-{worker}", T0, f"R-{worker}", {"n": n}, KEY
                    )
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=appender, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = _verify(engine, settings)
    assert result.ok and result.entries == 40, result


def test_a_purge_is_recorded_with_counts_and_anchors_the_head(
    engine: Engine, settings: Settings
) -> None:
    _fill(engine, "R-4")
    with Session(engine) as session, session.begin():
        session.add(
            ConfirmationRecord(
                request_id="R-4",
                message_id="<m@dsr>",
                kind="answer",
                sent_at=T0,
                retain_until=T0 + timedelta(days=1),
                message=f"To: {EMAIL}".encode(),
            )
        )
    purged = ProofActivities(engine, settings, sealed_blob_store(settings)).purge_confirmations(
        PurgeInput(as_of=T0 + timedelta(days=2))
    )
    assert purged.purged == 1
    with Session(engine) as session:
        entries = list(
            session.scalars(
                select(LedgerEntry).where(LedgerEntry.kind == "purge").order_by(LedgerEntry.seq)
            )
        )
    assert [(entry.request_id, entry.actor) for entry in entries] == [
        ("R-4", "confirmation-purge-schedule"),
        (None, "confirmation-purge-schedule"),
    ]
    assert entries[1].detail == {"purged": "confirmations", "count": 1}
    anchors = ledger.read_anchors(_anchors(settings))
    assert [anchor.seq for anchor in anchors] == [entries[1].seq]
    assert _verify(engine, settings).ok


# Tampering ---------------------------------------------------------------------------------


def test_a_changed_entry_is_detected_at_its_seq(engine: Engine, settings: Settings) -> None:
    _fill(engine)
    with _db(settings) as db:
        db.execute("""UPDATE ledger SET detail = json_set(detail, '$.detail.reason', 'none')
                      WHERE seq = 5""")
    result = _verify(engine, settings)
    assert not result.ok and result.broken_seq == 5
    assert "changed" in (result.problem or "")


def test_a_changed_actor_or_time_is_detected(engine: Engine, settings: Settings) -> None:
    _fill(engine)
    with _db(settings) as db:
        db.execute("UPDATE ledger SET actor = 'someone-else' WHERE seq = 2")
    assert _verify(engine, settings).broken_seq == 2
    with _db(settings) as db:
        db.execute("UPDATE ledger SET actor = 'orchestrator' WHERE seq = 2")
        db.execute("UPDATE ledger SET at = '2026-03-01 08:00:00.000000' WHERE seq = 3")
    assert _verify(engine, settings).broken_seq == 3


def test_a_deleted_middle_entry_is_detected(engine: Engine, settings: Settings) -> None:
    _fill(engine)
    with _db(settings) as db:
        db.execute("DELETE FROM ledger WHERE seq = 4")
    result = _verify(engine, settings)
    assert not result.ok and result.broken_seq == 4
    assert "missing" in (result.problem or "")


def test_a_deleted_entry_with_renumbered_successors_is_detected(
    engine: Engine, settings: Settings
) -> None:
    _fill(engine)
    with _db(settings) as db:
        db.execute("DELETE FROM ledger WHERE seq = 4")
        for seq in range(5, 9):
            db.execute("UPDATE ledger SET seq = ? WHERE seq = ?", (seq - 1, seq))
    result = _verify(engine, settings)
    assert not result.ok and result.broken_seq == 4


def test_a_truncated_tail_after_an_anchor_is_detected(engine: Engine, settings: Settings) -> None:
    _fill(engine)
    ledger.anchor(engine, KEY, _anchors(settings))
    with _db(settings) as db:
        db.execute("DELETE FROM ledger WHERE seq >= 6")
        db.execute("UPDATE ledger_head SET seq = 5, mac = (SELECT mac FROM ledger WHERE seq = 5)")
    result = _verify(engine, settings)
    assert not result.ok and result.broken_seq == 6
    assert "truncated" in (result.problem or "")


def test_a_truncated_tail_is_detected_by_the_head_even_before_an_anchor(
    engine: Engine, settings: Settings
) -> None:
    _fill(engine)
    with _db(settings) as db:
        db.execute("DELETE FROM ledger WHERE seq >= 6")
    result = _verify(engine, settings)
    assert not result.ok and result.broken_seq == 6 and "truncated" in (result.problem or "")


def test_a_chain_recomputed_without_the_key_is_detected(engine: Engine, settings: Settings) -> None:
    _fill(engine)
    with _db(settings) as db:
        db.execute(
            "UPDATE ledger SET detail = json_set(detail, '$.detail.months', 0) WHERE seq = 5"
        )
        _rechain(db, ledger.ledger_key(b"a guess at the key"))
    result = _verify(engine, settings)
    assert not result.ok and result.broken_seq == 1 and "changed" in (result.problem or "")


def test_a_chain_rewritten_with_the_key_is_caught_by_the_anchor(
    engine: Engine, settings: Settings
) -> None:
    _fill(engine)
    ledger.anchor(engine, KEY, _anchors(settings))
    register.record_milestone(
        engine,
        Milestone(request_id="R-1", key="answered", step="answer", at=T0 + timedelta(days=1)),
        KEYS,
    )
    with _db(settings) as db:  # an insider with the key: every mac and the head are right
        db.execute(
            "UPDATE ledger SET detail = json_set(detail, '$.detail.months', 0) WHERE seq = 5"
        )
        _rechain(db, KEY)
    assert _verify(engine, settings, key=ledger.ledger_key(b"other")).broken_seq == 1
    result = _verify(engine, settings)
    assert not result.ok and result.broken_seq == 8
    assert "rewritten" in (result.problem or "") and "anchor" in (result.problem or "")


def test_a_rewrite_after_the_last_anchor_is_not_blamed_on_earlier_anchors(
    engine: Engine, settings: Settings
) -> None:
    _fill(engine)
    with Session(engine) as session:
        third = session.get(LedgerEntry, 3)
        assert third is not None
    _anchors(settings).write_text(
        sealed_anchor(KEY, seq=3, mac=third.mac, at=T0).model_dump_json() + "\n"
    )
    ledger.anchor(engine, KEY, _anchors(settings))
    with _db(settings) as db:
        db.execute("UPDATE ledger SET actor = 'x' WHERE seq = 6")
        _rechain(db, KEY)
    result = _verify(engine, settings)
    assert result.broken_seq == 8 and "from seq 4 to 8" in (result.problem or "")


# The CLI -----------------------------------------------------------------------------------


def _cli(settings: Settings, *args: str) -> Any:
    env = {
        "DSR_DATA_DIR": str(settings.data_dir),
        "DSR_HMAC_KEY": SECRET.decode(),
        "DSR_SETTINGS_FILE": str(settings.data_dir / "absent.env"),
        "DSR_DATABASE_URL": "",
    }
    return CliRunner().invoke(starter.app, ["ledger", *args], env=env)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DSR_DATABASE_URL", "DSR_BLOB_URL"):
        monkeypatch.delenv(name, raising=False)


def test_cli_anchor_then_verify(engine: Engine, settings: Settings, clean_env: None) -> None:
    """The operator anchors from the CLI; officers verify through the officer service
    (``tests/test_officer_service.py``), which runs this same check."""
    _fill(engine)
    with structlog.testing.capture_logs() as logs:
        anchored = _cli(settings, "anchor", "--json")
    assert anchored.exit_code == 0, anchored.output
    head = json.loads(anchored.output)
    assert head["seq"] == 8
    assert [(log["event"], log["seq"], log["mac"]) for log in logs] == [
        ("ledger anchored", 8, head["mac"])
    ]
    anchors = ledger.anchors_path(settings)
    intact = ledger.verify(engine, KEY, anchors)
    assert intact.describe() == "ledger intact: 8 entries, last anchor seq 8"
    with _db(settings) as db:
        db.execute("DELETE FROM ledger WHERE seq = 3")
    broken = ledger.verify(engine, KEY, anchors)
    assert broken.describe().startswith("ledger broken at entry 3")
    assert broken.model_dump(mode="json") | {"problem": None, "last_anchor_at": None} == {
        "ok": False,
        "entries": 7,
        "last_seq": 2,
        "anchors": 1,
        "last_anchor_seq": 8,
        "broken_seq": 3,
        "problem": None,
        "last_anchor_at": None, "missing_range": None, "gaps": [],
        "problems": ["entry 3 is missing (deleted)"],
    }
