"""The audit ledger across a change of server secret: the first entry under the new ledger key
is a ``key_changed`` entry naming its id, and ``ledger verify`` checks each segment under its
own key (the old one from ``DSR_HMAC_KEY_PREVIOUS``), anchors made under either included.
Without the old secret the old segment is named as made under a secret no longer held; a
changed entry in either segment, or a forged key change, is still caught."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dsr import ledger
from dsr.database import make_engine
from dsr.settings import Settings

OLD = "first-server-key-0b7e3d9a5c1f8e2b6d4a"
NEW = "second-server-key-8c2f6a1e9d3b7f5c0a4e"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def settings(folder: Path, current: str, *previous: str) -> Settings:
    return Settings(data_dir=folder, hmac_key=current, hmac_key_previous=list(previous))


def append(engine: Engine, current: Settings, count: int, start: datetime) -> None:
    key = ledger.ledger_key(current.secret)
    for n in range(count):
        with Session(engine) as session, session.begin():
            ledger.append(session, "milestone", "intake", start + timedelta(minutes=n),
                          f"R-{n}", {"step": "intake"}, key)


def verify(engine: Engine, current: Settings) -> ledger.VerifyResult:
    return ledger.verify_configured(engine, current, now=T0 + timedelta(hours=2))


def kinds(folder: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(folder / "dsr.db") as db:
        return list(db.execute("SELECT seq, kind FROM ledger ORDER BY seq"))


def chain_across_a_change(folder: Path) -> tuple[Engine, Settings]:
    before, after = settings(folder, OLD), settings(folder, NEW, OLD)
    engine = make_engine(before.app_database_url)
    append(engine, before, 3, T0)
    ledger.anchor(engine, ledger.ledger_key(before.secret), ledger.anchor_store(before),
                  T0 + timedelta(minutes=5))
    append(engine, after, 2, T0 + timedelta(minutes=10))
    ledger.anchor(engine, ledger.ledger_key(after.secret), ledger.anchor_store(after),
                  T0 + timedelta(minutes=15))
    return engine, after


def test_the_new_key_begins_a_segment_and_each_is_verified_under_its_own(
        tmp_path: Path) -> None:
    engine, after = chain_across_a_change(tmp_path)
    assert [kind for _, kind in kinds(tmp_path)] == [
        "milestone", "milestone", "milestone", "key_changed", "milestone", "milestone"]
    with sqlite3.connect(tmp_path / "dsr.db") as db:
        detail = db.execute("SELECT detail FROM ledger WHERE kind = 'key_changed'").fetchone()
    assert ledger.ledger_key_id(ledger.ledger_key(NEW.encode())) in detail[0]
    result = verify(engine, after)
    assert result.ok and result.entries == 6, result
    append(engine, after, 1, T0 + timedelta(minutes=20))
    assert [kind for _, kind in kinds(tmp_path)].count("key_changed") == 1, "once only"


def test_without_the_old_secret_the_old_segment_is_named(tmp_path: Path) -> None:
    engine, _ = chain_across_a_change(tmp_path)
    result = verify(engine, settings(tmp_path, NEW))
    assert not result.ok and result.broken_seq == 1
    assert "made under a server secret no longer held" in (result.problem or "")


def test_a_changed_entry_in_either_segment_is_caught(tmp_path: Path) -> None:
    engine, after = chain_across_a_change(tmp_path)
    for seq in (2, 5):
        with sqlite3.connect(tmp_path / "dsr.db") as db:
            db.execute("UPDATE ledger SET actor = 'someone else' WHERE seq = ?", (seq,))
        result = verify(engine, after)
        assert not result.ok and result.broken_seq == min(seq, 2), (seq, result)


def test_a_forged_key_change_is_caught(tmp_path: Path) -> None:
    engine, after = chain_across_a_change(tmp_path)
    with sqlite3.connect(tmp_path / "dsr.db") as db:  # point the change at the old key
        old_id = ledger.ledger_key_id(ledger.ledger_key(OLD.encode()))
        db.execute("UPDATE ledger SET detail = ? WHERE kind = 'key_changed'",
                   (f'{{"key_id": "{old_id}"}}',))
    result = verify(engine, after)
    assert not result.ok and result.broken_seq == 4, result


def test_a_chain_made_before_the_keys_by_purpose_verifies_and_goes_on_under_the_new_key(
        tmp_path: Path) -> None:
    current = settings(tmp_path, NEW)
    engine = make_engine(current.app_database_url)
    earlier = ledger._key_before_hkdf(current.secret)  # as the release before derived it
    with Session(engine) as session, session.begin():
        ledger.append(session, "milestone", "intake", T0, "R-0", {"step": "intake"}, earlier)
    append(engine, current, 1, T0 + timedelta(minutes=1))
    assert [kind for _, kind in kinds(tmp_path)] == ["milestone", "key_changed", "milestone"]
    assert verify(engine, current).ok
