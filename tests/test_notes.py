"""Officers' notes on real SQLite files: sealed in the register under their own key, bound to
their row and field, only a keyed hash in the audit ledger (which still verifies), shown
opened (or as unreadable), and gone with the register row at the end of the proof period."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from activities.proof import ProofActivities, PurgeInput
from dsr import ledger, notes, purposes, register
from dsr.database import make_engine
from dsr.models import parse_request
from dsr.register import Milestone, MilestoneRecord, RegisterKeys
from dsr.sealedblobs import sealed_blob_store
from dsr.serverkeys import ServerKeys
from dsr.settings import Settings

SECRET = b"notes-test-key-6a4f2c9e1d7b3f8a5c0e2d9b"
KEYS = RegisterKeys.from_secret(SECRET)
EMAIL = "mary.somerville@example.com"
NOTE = f"called back on {EMAIL}, passport checked"
REASON = f"withdrawn by phone; confirmation to {EMAIL}"
CLOSED = datetime(2019, 5, 6, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DSR_DATABASE_URL", "DSR_BLOB_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, hmac_key=SECRET.decode(), database_url=None)


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return make_engine(settings.app_database_url)


def _request(request_id: str, received_at: datetime = CLOSED) -> Any:
    return parse_request({
        "request_id": request_id, "rights": ["erasure"],
        "identities": [{"type": "email", "value": EMAIL}], "jurisdiction": "EU",
        "channel": "email", "requester": {"kind": "subject", "email": EMAIL},
        "received_at": (received_at - timedelta(days=3)).isoformat(),
    })


def _officer_steps(engine: Engine, request_id: str, at: datetime = CLOSED) -> None:
    """A request verified by hand with a note, then cancelled with a reason."""
    register.record_intake(engine, _request(request_id, at), ServerKeys(SECRET), at)
    for minutes, (key, step, detail, closed) in enumerate([
        ("verified-by-hand", "verify", {"note": NOTE}, False),
        ("cancelled", "cancel", {"reason": REASON}, True),
    ]):
        register.record_milestone(engine, Milestone(
            request_id=request_id, key=key, step=step, actor="Ada", detail=detail,
            at=at + timedelta(minutes=minutes), status="cancelled" if closed else None,
            closed=closed), KEYS)


def _tables(settings: Settings, *tables: str) -> str:
    """The rows of ``tables`` (every table if none) as anyone reading the file sees them."""
    with sqlite3.connect(settings.data_dir / "dsr.db") as db:
        names = tables or tuple(row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"))
        return "\n".join(repr(db.execute(f'SELECT * FROM "{name}"').fetchall())
                         for name in names).lower()


def _shown(engine: Engine, request_id: str) -> dict[str, dict[str, Any]]:
    _, milestones = register.get_request(engine, request_id)
    return {m.key: register.readable_detail(m, KEYS.note_keys) for m in milestones}


def _verified(settings: Settings) -> str:
    """What ``ledger verify`` says (the officer service runs this same check)."""
    return ledger.verify(make_engine(settings.app_database_url), ledger.ledger_key(SECRET),
                         ledger.anchors_path(settings)).describe()


def test_notes_are_sealed_in_the_register_hashed_in_the_ledger_and_shown_opened(
    engine: Engine, settings: Settings
) -> None:
    _officer_steps(engine, "R-N1")
    stored = _tables(settings, "milestones", "ledger")
    for private in (NOTE, REASON, EMAIL, "passport", "somerville", "withdrawn"):
        assert private.lower() not in stored
    shown = _shown(engine, "R-N1")
    assert shown["verified-by-hand"] == {"note": NOTE}
    assert shown["cancelled"] == {"reason": REASON}
    with Session(engine) as session:
        details = {e.detail["key"]: e.detail["detail"] for e in session.scalars(
            select(ledger.LedgerEntry).where(ledger.LedgerEntry.kind == "milestone"))}
    assert details["cancelled"] == {"reason": notes.note_hash(KEYS.note_keys, REASON)}
    assert details["verified-by-hand"]["note"]["key_id"] == KEYS.note_keys.match_id
    assert _verified(settings).startswith("ledger intact")


def test_equal_notes_have_equal_hashes_under_the_same_key_only() -> None:
    other = notes.NoteKeys.from_secret(b"another secret")
    assert notes.note_hash(KEYS.note_keys, NOTE) == notes.note_hash(KEYS.note_keys, NOTE)
    assert notes.note_hash(KEYS.note_keys, NOTE) != notes.note_hash(KEYS.note_keys, REASON)
    assert notes.note_hash(other, NOTE)["hmac"] != notes.note_hash(KEYS.note_keys, NOTE)["hmac"]
    sealed = [notes.seal(KEYS.note_keys, "R", "k", "note", NOTE) for _ in range(2)]
    assert sealed[0]["sealed"] != sealed[1]["sealed"], "a fresh nonce each time"


def test_a_sealed_note_moved_elsewhere_does_not_open(engine: Engine, settings: Settings) -> None:
    _officer_steps(engine, "R-N2")
    _officer_steps(engine, "R-N3")
    with sqlite3.connect(settings.data_dir / "dsr.db") as db:
        sealed = db.execute("SELECT detail FROM milestones WHERE request_id = 'R-N2' "
                            "AND key = 'cancelled'").fetchone()[0]
        moved = json.dumps({"note": json.loads(sealed)["reason"]})
        db.execute("UPDATE milestones SET detail = ? WHERE request_id = 'R-N3' "
                   "AND key = 'cancelled'", (sealed,))  # another request's row
        db.execute("UPDATE milestones SET detail = ? WHERE request_id = 'R-N2' "
                   "AND key = 'verified-by-hand'", (sealed,))  # another milestone's row
        db.execute("UPDATE milestones SET detail = ? WHERE request_id = 'R-N3' "
                   "AND key = 'verified-by-hand'", (moved,))  # another field
    assert _shown(engine, "R-N3") == {"verified-by-hand": {"note": notes.UNREADABLE},
                                      "cancelled": {"reason": notes.UNREADABLE}}
    assert _shown(engine, "R-N2") == {"verified-by-hand": {"reason": notes.UNREADABLE},
                                      "cancelled": {"reason": REASON}}


def test_a_note_that_does_not_open_is_shown_unreadable_and_older_notes_as_they_are(
    engine: Engine,
) -> None:
    _officer_steps(engine, "R-N4")
    _, milestones = register.get_request(engine, "R-N4")
    assert register.readable_detail(milestones[1], notes.NoteKeys.from_secret(b"x")) == {
        "reason": notes.UNREADABLE}, "under another secret"
    broken = [{"sealed": "not base64!"}, {"sealed": 7}, {"sealed": ""}, {"key_id": "k"}]
    for value in broken:
        assert notes.opened_detail(KEYS.note_keys, "R-N4", "cancelled", {"reason": value}) == {
            "reason": notes.UNREADABLE}
    with Session(engine) as session, session.begin():  # as recorded before notes were sealed
        session.add(MilestoneRecord(request_id="R-N4", key="extended", step="extend",
                                    at=CLOSED, actor="Bea",
                                    detail={"reason": "complex request", "months": 2}))
    assert _shown(engine, "R-N4")["extended"] == {"reason": "complex request", "months": 2}


def test_the_purge_of_the_register_takes_the_notes_with_it(
    engine: Engine, settings: Settings
) -> None:
    _officer_steps(engine, "R-OLD")
    _officer_steps(engine, "R-NEW", at=datetime(2026, 1, 5, tzinfo=UTC))
    with sqlite3.connect(settings.data_dir / "dsr.db") as db:
        sealed = [json.loads(detail) for (detail,) in db.execute(
            "SELECT detail FROM milestones WHERE request_id = 'R-OLD'")]
    ciphertexts = [next(iter(detail.values()))["sealed"] for detail in sealed]
    result = ProofActivities(engine, settings, sealed_blob_store(settings)).purge_confirmations(
        PurgeInput(as_of=datetime(2026, 6, 1, tzinfo=UTC)))
    assert result.register_request_ids == ["R-OLD"]
    everything = _tables(settings)
    for left in (*ciphertexts, NOTE, REASON, EMAIL):
        assert left.lower() not in everything
    assert _shown(engine, "R-NEW")["cancelled"] == {"reason": REASON}, "the newer one stays"
    assert _verified(settings).startswith("ledger intact")


def test_each_purpose_has_a_key_of_its_own() -> None:
    keys = {purpose: purposes.purpose_key(SECRET, purpose) for purpose in purposes.PURPOSES}
    assert len(set(keys.values())) == len(keys) and all(len(k) == 32 for k in keys.values())
    assert purposes.purpose_key(SECRET, purposes.OFFICER_NOTES) == keys[purposes.OFFICER_NOTES]
    assert purposes.purpose_key(b"other", purposes.OFFICER_NOTES) != keys[purposes.OFFICER_NOTES]
    with pytest.raises(ValueError, match="unknown key purpose"):
        purposes.purpose_key(SECRET, "anything")
    shown = repr(KEYS) + repr(KEYS.note_keys)
    assert all(key.hex() not in shown and repr(key) not in shown for key in keys.values())


def test_a_note_in_a_text_column_opens_in_its_own_row_and_column_only() -> None:
    stored = notes.sealed_text(KEYS.note_keys, "legal_holds", "HOLD-1", "reason", REASON)
    assert stored.startswith(notes.SEALED_TEXT_START) and EMAIL not in stored
    assert notes.opened_text(KEYS.note_keys, "legal_holds", "HOLD-1", "reason", stored) == REASON
    for where in (("legal_holds", "HOLD-2", "reason"), ("legal_holds", "HOLD-1", "note"),
                  ("milestones", "HOLD-1", "reason")):
        assert notes.opened_text(KEYS.note_keys, *where, stored) == notes.UNREADABLE
    other = notes.NoteKeys.from_secret(b"another secret")
    assert notes.opened_text(other, "legal_holds", "HOLD-1", "reason", stored) == notes.UNREADABLE
    as_milestone = json.loads(stored)  # the same place, spelt as a milestone's, does not open
    assert notes.unseal(KEYS.note_keys, "legal_holds", "HOLD-1", "reason", as_milestone) == (
        notes.UNREADABLE)
    for broken in (stored[:30], stored.replace("key_id", "kid")[:-3], '{"sealed":7}'):
        assert notes.opened_text(KEYS.note_keys, "t", "r", "c", broken) == notes.UNREADABLE
    for older in ("case 12", '{"case": 12}', ""):  # written readable, before sealing
        assert notes.opened_text(KEYS.note_keys, "t", "r", "c", older) == older
