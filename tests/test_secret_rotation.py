"""A change of server secret: codes, download links and Web UI sessions are made under their
purpose's key, tagged with its id; after ``DSR_HMAC_KEY`` changes (the old one kept in
``DSR_HMAC_KEY_PREVIOUS`` for matching only), what the old secret made keeps working until it
expires, what is made now is under the new key, and once the old secret is dropped what it
made opens nothing. Records from before key ids (bare hashes) still match."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.orm import Session

from activities.verification import CodeCheck, IssuedCode, VerificationActivities
from dsr import notes, package_links, sessions
from dsr.database import make_engine
from dsr.hashing import keyed_hash
from dsr.purposes import CODES, DOWNLOAD_LINKS, SESSIONS
from dsr.serverkeys import ServerKeys
from dsr.settings import Settings

OLD = "first-server-key-0b7e3d9a5c1f8e2b6d4a"
NEW = "second-server-key-8c2f6a1e9d3b7f5c0a4e"
TAGGED = re.compile(r"^[0-9a-f]{12}\.[0-9a-f]{51}$")
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def settings(folder: Path, current: str, *previous: str) -> Settings:
    return Settings(data_dir=folder, hmac_key=current, hmac_key_previous=list(previous))


def test_each_purpose_has_its_own_key_named_by_an_id() -> None:
    old, new = ServerKeys(OLD.encode()), ServerKeys(NEW.encode(), [OLD.encode()])
    ids = {purpose: old.purpose(purpose, "x").current.key_id
           for purpose in (CODES, DOWNLOAD_LINKS, SESSIONS)}
    assert len(set(ids.values())) == 3, "one key per purpose"
    tagged = new.purpose(SESSIONS, "link").tag("a-token")
    assert TAGGED.fullmatch(tagged) and len(tagged) == 64
    assert tagged.split(".")[0] != ids[SESSIONS]
    assert new.purpose(SESSIONS, "link").key_of(tagged) == new.purpose(SESSIONS, "link").current
    made_before = old.purpose(SESSIONS, "link").tag("a-token")
    made_by = new.purpose(SESSIONS, "link").key_of(made_before)
    assert made_by is not None and made_by.key_id == ids[SESSIONS]
    assert new.purpose(SESSIONS, "link").matches("a-token", made_before)
    assert not ServerKeys(NEW.encode()).purpose(SESSIONS, "link").matches("a-token", made_before)
    bare = keyed_hash(OLD.encode(), "a-token", "link")
    assert new.purpose(SESSIONS, "link").matches("a-token", bare), "before key ids"


def test_a_session_opened_before_the_change_stays_open_until_the_old_secret_goes(
        tmp_path: Path) -> None:
    before = settings(tmp_path, OLD)
    engine = make_engine(before.app_database_url)
    opened = sessions.open_session(engine, before.server_keys, "officer.ada", 8, NOW)
    unopened = sessions.open_session(engine, before.server_keys, "officer.bob", 8, NOW)
    exchanged = sessions.exchange_link(engine, before.server_keys, opened.token, NOW)
    assert isinstance(exchanged, sessions.Exchanged)

    after = settings(tmp_path, NEW, OLD)
    later = NOW + timedelta(hours=1)
    assert sessions.officer_for(engine, after.server_keys, exchanged.cookie, later) == "officer.ada"
    bob = sessions.exchange_link(engine, after.server_keys, unopened.token, later)
    assert isinstance(bob, sessions.Exchanged), "a link sent before the change opens once"
    fresh = sessions.open_session(engine, after.server_keys, "officer.kim", 8, later)
    with Session(engine) as session:
        stored = {r.officer: r for r in session.query(sessions.OfficerSessionRecord)}
    new_id = after.server_keys.purpose(SESSIONS, "x").current.key_id
    assert stored["officer.kim"].link_hash.startswith(new_id + ".")
    assert stored["officer.bob"].cookie_hash is not None
    assert stored["officer.bob"].cookie_hash.startswith(new_id + "."), "the cookie is new"
    assert stored["officer.ada"].cookie_hash is not None
    assert not stored["officer.ada"].cookie_hash.startswith(new_id + ".")

    dropped = settings(tmp_path, NEW)
    assert sessions.officer_for(engine, dropped.server_keys, exchanged.cookie, later) is None
    assert sessions.officer_for(engine, dropped.server_keys, bob.cookie, later) == "officer.bob"
    assert isinstance(sessions.exchange_link(engine, dropped.server_keys, fresh.token, later),
                      sessions.Exchanged)


def test_a_session_stored_before_key_ids_still_opens(tmp_path: Path) -> None:
    current = settings(tmp_path, OLD)
    engine = make_engine(current.app_database_url)
    opened = sessions.open_session(engine, current.server_keys, "officer.ada", 8, NOW)
    with Session(engine) as session, session.begin():  # as the release before stored it
        session.execute(update(sessions.OfficerSessionRecord).values(
            link_hash=keyed_hash(OLD.encode(), opened.token, sessions.LINK_PURPOSE)))
    exchanged = sessions.exchange_link(engine, current.server_keys, opened.token, NOW)
    assert isinstance(exchanged, sessions.Exchanged)


def test_a_download_link_sent_before_the_change_opens_and_is_sent_again_the_same(
        tmp_path: Path) -> None:
    before = settings(tmp_path, OLD)
    engine = make_engine(before.app_database_url)
    link = package_links.issue(engine, before.server_keys, "REQ-1", NOW, 5)

    after = settings(tmp_path, NEW, OLD)
    found = package_links.find(engine, after.server_keys, link.token, NOW + timedelta(days=1))
    assert isinstance(found, package_links.PackageLinkRecord)
    assert package_links.issue(engine, after.server_keys, "REQ-1", NOW, 5) == link, \
        "a retried answer sends the link it sent"
    other = package_links.issue(engine, after.server_keys, "REQ-2", NOW, 5)
    with Session(engine) as session:
        record = session.get(package_links.PackageLinkRecord, "REQ-2")
        assert record is not None
        new_id = after.server_keys.purpose(DOWNLOAD_LINKS, "x").current.key_id
        assert record.token_hash.startswith(new_id + ".")

    dropped = settings(tmp_path, NEW)
    assert package_links.find(engine, dropped.server_keys, link.token, NOW) is (
        package_links.LinkRefusal.UNKNOWN)
    assert isinstance(package_links.find(engine, dropped.server_keys, other.token, NOW),
                      package_links.PackageLinkRecord)


def test_a_code_sent_before_the_change_is_accepted_until_the_old_secret_goes(
        tmp_path: Path) -> None:
    before = VerificationActivities(settings(tmp_path, OLD))
    code = before._code("REQ-1", "subject", 1)
    issued = IssuedCode(target_id="subject", code_hash=before._hash("REQ-1", "subject", code),
                        expires_at=NOW + timedelta(hours=24))
    assert TAGGED.fullmatch(issued.code_hash)
    bare = IssuedCode(target_id="agent", expires_at=NOW + timedelta(hours=24),
                      code_hash=keyed_hash(OLD.encode(), "REQ-1:agent:123456", "code-check"))

    after = VerificationActivities(settings(tmp_path, NEW, OLD))
    assert after._code("REQ-1", "subject", 1) != code, "new codes under the new key"
    check = after.check_code
    assert check(CodeCheck(request_id="REQ-1", code=code, candidates=[issued])) == "subject"
    assert check(CodeCheck(request_id="REQ-1", code="123456", candidates=[bare])) == "agent"
    assert check(CodeCheck(request_id="REQ-1", code="000000", candidates=[issued, bare])) is None
    dropped = VerificationActivities(settings(tmp_path, NEW))
    assert dropped.check_code(CodeCheck(request_id="REQ-1", code=code,
                                        candidates=[issued])) is None


def test_an_empty_previous_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="holds an empty value"):
        Settings(data_dir=tmp_path, hmac_key=NEW, hmac_key_previous=[""])


def test_an_officers_note_sealed_before_the_change_still_opens() -> None:
    sealed = notes.seal(notes.NoteKeys.from_secret(OLD.encode()), "REQ-1", "cancelled",
                        "reason", "withdrawn by phone")
    after = notes.NoteKeys.from_secret(NEW.encode(), [OLD.encode()])
    assert notes.unseal(after, "REQ-1", "cancelled", "reason", sealed) == "withdrawn by phone"
    fresh = notes.seal(after, "REQ-1", "extended", "reason", "many requests")
    assert fresh[notes.KEY_ID] == after.seal_id != sealed[notes.KEY_ID]
    dropped = notes.NoteKeys.from_secret(NEW.encode())
    assert notes.unseal(dropped, "REQ-1", "cancelled", "reason", sealed) == notes.UNREADABLE
