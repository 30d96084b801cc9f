"""The application database on SQLite and on PostgreSQL (a real server, a fresh database per
test: see ``app_database_url`` in conftest): the migrations create, adopt and agree with the
models; the register, the ledger (appended from several threads at once), holds, officer
sessions, package links, confirmations and the daily purge work alike on both; and a
connector's reference store runs on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from activities.proof import ProofActivities, PurgeInput
from dsr import ledger, migrations, package_links, register, sessions
from dsr.database import make_engine
from dsr.holds import HoldKind, HoldSpec, active_holds, place_hold, release_hold
from dsr.migrations import (
    INITIAL_REVISION,
    INITIAL_TABLES,
    current_revision,
    differences,
    head_revision,
)
from dsr.models import Identity, IdentityType, parse_request
from dsr.orm import Base, database_url
from dsr.register import (
    ConfirmationRecord,
    Milestone,
    MilestoneRecord,
    RequestFilter,
    RequestRecord,
    RequestSubjectRecord,
)
from dsr.sealedblobs import sealed_blob_store
from dsr.serverkeys import ServerKeys
from dsr.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"backends-test-key-9e2b7c4a1f8d3e6b5a0c7f1d"
KEY = ledger.ledger_key(SECRET)
KEYS = register.RegisterKeys.from_secret(SECRET)
SKEYS = ServerKeys(SECRET)
EMAIL = "grace.hopper@example.com"
NOTE = f"withdrawn by phone, answer to {EMAIL}"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _request(
    request_id: str, received_at: datetime = T0, rights: tuple[str, ...] = ("erasure",)
) -> Any:
    return parse_request(
        {
            "request_id": request_id,
            "rights": list(rights),
            "identities": [{"type": "email", "value": EMAIL}],
            "jurisdiction": "EU",
            "channel": "email",
            "requester": {"kind": "subject", "email": EMAIL},
            "received_at": received_at.isoformat(),
        }
    )


def _settings(tmp_path: Path, url: str) -> Settings:
    return Settings(data_dir=tmp_path, hmac_key=SECRET.decode(), database_url=url)


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _register_without_subjects(engine: Engine, request: Any) -> None:
    """As intake registered a request before ``request_subjects``: its row (with its subject
    hashes as JSON) and its ledger entry."""
    with Session(engine) as session, session.begin():
        session.add(
            RequestRecord(
                request_id=request.request_id,
                rights=[right.value for right in request.rights],
                jurisdiction=request.jurisdiction.value,
                channel=request.channel.value,
                requester_kind=request.requester.kind.value,
                language=request.language.value,
                subject_hashes=register.subject_hashes(SKEYS, request),
                status="received",
                received_at=request.received_at,
                updated_at=request.received_at,
            )
        )
        ledger.append(
            session, "received", "intake", request.received_at, request.request_id, {}, KEY
        )


# --- migrations ----------------------------------------------------------------------------


def test_an_empty_database_is_migrated_to_head_matching_the_models(app_database_url: str) -> None:
    engine = make_engine(app_database_url)

    assert _tables(engine) == set(Base.metadata.tables) | {"alembic_version"}
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        head = connection.execute(text("SELECT id, seq, mac FROM ledger_head")).all()
    assert [tuple(row) for row in head] == [(1, 0, ledger.GENESIS)]
    assert differences(engine) == []
    make_engine(app_database_url)  # again: a no-op
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT COUNT(*) FROM alembic_version")) == 1


def test_a_database_made_by_create_all_is_adopted_keeping_its_data(
    app_database_url: str,
) -> None:
    """As var/dsr.db was before the migrations: create_all's tables, no alembic_version (and,
    from an older version still, a table missing)."""
    legacy = make_engine(app_database_url, migrate=False)
    Base.metadata.create_all(
        legacy,
        tables=[Base.metadata.tables[name] for name in INITIAL_TABLES if name != "package_links"],
    )
    _register_without_subjects(legacy, _request("R-OLD"))
    assert "alembic_version" not in _tables(legacy)
    legacy.dispose()

    engine = make_engine(app_database_url)

    assert _tables(engine) == set(Base.metadata.tables) | {"alembic_version"}
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    assert differences(engine) == []
    record, _ = register.get_request(engine, "R-OLD")
    assert record.subject_hashes == register.subject_hashes(SKEYS, _request("R-OLD"))
    assert ledger.verify(engine, KEY, Path("/nonexistent/anchors")).entries == 1
    assert INITIAL_REVISION  # stamped there first, then upgraded to head
    later = T0 + timedelta(days=1)
    assert register.record_intake(engine, _request("R-NEW", later), SKEYS, later) == ["R-OLD"]


def test_requests_registered_at_the_initial_revision_are_found_as_duplicates_after_upgrade(
    app_database_url: str,
) -> None:
    """0002 backfills ``request_subjects`` from ``requests.subject_hashes``; its downgrade
    drops the table, and upgrading again backfills it anew."""
    engine = make_engine(app_database_url, migrate=False)
    migrations.upgrade(engine, INITIAL_REVISION)
    assert "request_subjects" not in _tables(engine)
    for request in (
        _request("R-40-DAYS", T0 - timedelta(days=40)),
        _request("R-10-DAYS", T0 - timedelta(days=10)),
        _request("R-3-DAYS", T0 - timedelta(days=3)),
        _request("R-ACCESS", T0 - timedelta(days=2), rights=("access",)),
    ):
        _register_without_subjects(engine, request)

    migrations.upgrade(engine)

    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        backfilled = connection.scalar(select(func.count()).select_from(RequestSubjectRecord))
    assert backfilled == 4
    assert differences(engine) == []
    assert register.record_intake(engine, _request("R-NEW"), SKEYS, T0) == [
        "R-10-DAYS",
        "R-3-DAYS",
    ]
    with engine.connect() as connection:
        command.downgrade(migrations.alembic_config(connection), INITIAL_REVISION)
        connection.commit()
    assert "request_subjects" not in _tables(engine)
    migrations.upgrade(engine)
    later = T0 + timedelta(days=1)
    assert register.record_intake(engine, _request("R-AGAIN", later), SKEYS, later) == [
        "R-10-DAYS",
        "R-3-DAYS",
        "R-NEW",
    ]


def test_processes_starting_at_once_migrate_once(app_database_url: str) -> None:
    script = "import sys; from dsr.database import make_engine; make_engine(sys.argv[1])"
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", script, app_database_url],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    errors = [
        (start.wait(timeout=120), start.stderr.read() if start.stderr else "") for start in starts
    ]

    assert [code for code, _ in errors] == [0] * 4, errors
    engine = make_engine(app_database_url)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT COUNT(*) FROM alembic_version")) == 1
        assert connection.scalar(text("SELECT COUNT(*) FROM ledger_head")) == 1


def test_the_operator_command_upgrades_and_checks(app_database_url: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dsr.migrations", *args, "--url", app_database_url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    upgraded = run("upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"database at revision {head_revision()}" in upgraded.stdout
    checked = run("check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"database: {head_revision()}" in run("current").stdout


def test_a_plain_postgresql_url_means_psycopg() -> None:
    assert make_url(database_url("postgresql://u:p@db:5432/dsr")).drivername == (
        "postgresql+psycopg"
    )
    assert database_url("postgresql://u:p@db:5432/dsr").endswith("u:p@db:5432/dsr")
    assert database_url("sqlite:///var/dsr.db") == "sqlite:///var/dsr.db"


# --- the register --------------------------------------------------------------------------


def test_the_register_records_intake_milestones_and_answers_status(app_database_url: str) -> None:
    engine = make_engine(app_database_url)
    assert register.record_intake(engine, _request("R-1"), SKEYS, T0) == []
    register.record_intake(engine, _request("R-1"), SKEYS, T0)  # a retry: recorded once
    later = T0 + timedelta(days=3)
    assert register.record_intake(engine, _request("R-2", later), SKEYS, later) == ["R-1"]
    steps: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
        ("acknowledged", "acknowledge", {}, {"status": "acknowledged"}),
        (
            "deadline",
            "deadline",
            {"due": "2026-04-02"},
            {"due_at": T0 + timedelta(days=31), "policy_version": "2026.1"},
        ),
        (
            "closed",
            "closed",
            {"erased": 3},
            {
                "status": "answered",
                "outcome": "erasure",
                "closed": True,
                "affiliates": ["sms", "cdp"],
                "overdue": False,
            },
        ),
    ]
    for minutes, (key, step, detail, changes) in enumerate(steps, start=1):
        milestone = Milestone(
            request_id="R-1",
            key=key,
            step=step,
            detail=detail,
            at=T0 + timedelta(minutes=minutes),
            **changes,
        )
        register.record_milestone(engine, milestone, KEYS)
        register.record_milestone(engine, milestone, KEYS)  # idempotent

    record, milestones = register.get_request(engine, "R-1")

    assert [m.key for m in milestones] == ["acknowledged", "deadline", "closed"]
    assert milestones[1].detail == {"due": "2026-04-02"}
    assert milestones[0].at == T0 + timedelta(minutes=1)
    assert milestones[0].at.tzinfo is not None
    assert (record.status, record.outcome, record.affiliates) == (
        "answered",
        "erasure",
        ["sms", "cdp"],
    )
    assert record.due_at == T0 + timedelta(days=31)
    assert record.closed_at == T0 + timedelta(minutes=3)
    assert record.rights == ["erasure"] and record.extended is False
    now = T0 + timedelta(days=60)
    assert [r.request_id for r in register.list_requests(engine, RequestFilter(), now)] == [
        "R-2",
        "R-1",
    ]
    assert [
        r.request_id
        for r in register.list_requests(
            engine, RequestFilter(status="answered", right="erasure", jurisdiction="EU"), now
        )
    ] == ["R-1"]
    assert register.list_requests(engine, RequestFilter(right="access"), now) == []
    with pytest.raises(LookupError):
        register.get_request(engine, "R-404")
    assert ledger.verify(engine, KEY, Path("/nonexistent/anchors")).entries == 5


# --- the ledger ----------------------------------------------------------------------------


def test_the_ledger_chain_holds_under_concurrent_appenders(app_database_url: str) -> None:
    engine = make_engine(app_database_url)
    threads, each = 8, 15
    failures: list[BaseException] = []
    start = threading.Barrier(threads)

    def appender(number: int) -> None:
        try:
            start.wait()
            for index in range(each):
                with Session(engine) as session, session.begin():
                    ledger.append(
                        session,
                        "milestone",
                        f"thread-{number}",
                        T0 + timedelta(seconds=index),
                        f"R-{number}",
                        {"index": index, "text": "naïve ✓"},
                        KEY,
                    )
        except BaseException as error:  # reported below
            failures.append(error)

    workers = [threading.Thread(target=appender, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert failures == []
    result = ledger.verify(engine, KEY, Path("/nonexistent/anchors"))
    assert result.ok, result.describe()
    assert result.entries == result.last_seq == threads * each
    with Session(engine) as session:
        seqs = list(session.scalars(select(ledger.LedgerEntry.seq).order_by("seq")))
        head = session.get(ledger.LedgerHead, 1)
        assert head is not None and head.seq == threads * each
    assert seqs == list(range(1, threads * each + 1))


# --- holds, sessions, package links --------------------------------------------------------


def test_holds_are_placed_listed_and_released(app_database_url: str) -> None:
    engine = make_engine(app_database_url)
    identity = Identity(type=IdentityType.EMAIL, value=EMAIL)
    open_hold = place_hold(
        engine,
        SECRET,
        HoldSpec(
            kind=HoldKind.LITIGATION,
            reason="case 2026/17",
            placed_by="counsel",
            identity=identity,
            category="message_content",
        ),
        T0,
    )
    dated = place_hold(
        engine,
        SECRET,
        HoldSpec(
            kind=HoldKind.GOVERNMENT,
            reason="disclosure order",
            placed_by="counsel",
            customer_account="CUST-9",
            until=date(2026, 3, 10),
        ),
        T0 + timedelta(minutes=1),
    )

    assert [h.hold_id for h in active_holds(engine, T0 + timedelta(days=1))] == [
        open_hold.hold_id,
        dated.hold_id,
    ]
    assert [h.hold_id for h in active_holds(engine, datetime(2026, 3, 11, tzinfo=UTC))] == [
        open_hold.hold_id
    ]
    released = release_hold(
        engine, SECRET, open_hold.hold_id, "counsel", "case settled", T0 + timedelta(days=2)
    )
    assert released.identity_hash == open_hold.identity_hash is not None
    assert [h.hold_id for h in active_holds(engine, T0 + timedelta(days=3))] == [dated.hold_id]
    assert ledger.verify(engine, KEY, Path("/nonexistent/anchors")).entries == 3


def test_officer_sessions_open_resolve_and_revoke(app_database_url: str) -> None:
    engine = make_engine(app_database_url)
    opened = sessions.open_session(engine, SKEYS, "olga", hours=8, now=T0)
    other = sessions.open_session(engine, SKEYS, "olga", hours=1, now=T0)

    exchanged = sessions.exchange_link(engine, SKEYS, opened.token, T0)
    assert isinstance(exchanged, sessions.Exchanged)
    assert sessions.exchange_link(engine, SKEYS, opened.token, T0) == sessions.LinkRefused(
        sessions.LinkRefusal.USED, opened.session_id)
    cookie = exchanged.cookie
    assert sessions.officer_for(engine, SKEYS, cookie, T0 + timedelta(hours=7)) == "olga"
    assert sessions.officer_for(engine, SKEYS, opened.token, T0) is None  # the link is no cookie
    found = sessions.session_for(engine, SKEYS, cookie, T0)
    assert found is not None and found.expires_at == T0 + timedelta(hours=8)
    assert sessions.officer_for(engine, SKEYS, cookie, T0 + timedelta(hours=8)) is None
    assert sessions.revoke(engine, SKEYS, other.session_id, "admin", T0 + timedelta(minutes=5))
    assert not sessions.revoke(engine, SKEYS, other.session_id, "admin",
                               T0 + timedelta(minutes=6))
    assert sessions.revoke_all(engine, SKEYS, "admin", "olga", T0 + timedelta(minutes=7)) == 1
    assert sessions.officer_for(engine, SKEYS, cookie, T0 + timedelta(minutes=8)) is None
    assert ledger.verify(engine, KEY, Path("/nonexistent/anchors")).entries == 4


def test_package_links_issue_find_revoke_and_purge(app_database_url: str, tmp_path: Path) -> None:
    engine = make_engine(app_database_url)
    blobs = sealed_blob_store(_settings(tmp_path, app_database_url))
    for request_id in ("R-A", "R-B"):
        with blobs.open_writer(package_links.package_key(request_id)) as sink:
            sink.write(b"PK package")
    link = package_links.issue(engine, SKEYS, "R-A", T0, days=5)
    again = package_links.issue(engine, SKEYS, "R-A", T0 + timedelta(minutes=5), days=5)
    other = package_links.issue(engine, SKEYS, "R-B", T0, days=5)

    assert again == link and link.expires_at == datetime(2026, 3, 8, tzinfo=UTC)
    found = package_links.find(engine, SKEYS, link.token, T0 + timedelta(days=1))
    assert isinstance(found, package_links.PackageLinkRecord) and found.request_id == "R-A"
    assert package_links.find(engine, SKEYS, "nope", T0) is package_links.LinkRefusal.UNKNOWN
    assert package_links.revoke(engine, SECRET, "R-B", "olga", "wrong address", T0)
    assert package_links.find(engine, SKEYS, other.token, T0) is (
        package_links.LinkRefusal.REVOKED
    )
    with Session(engine) as session, session.begin():
        purged = package_links.purge_packages(session, blobs, T0 + timedelta(days=1), KEY, "test")
    assert purged == ["R-B"]
    with Session(engine) as session, session.begin():
        purged = package_links.purge_packages(session, blobs, link.expires_at, KEY, "test")
    assert purged == ["R-A"]
    assert package_links.find(engine, SKEYS, link.token, T0) is (package_links.LinkRefusal.EXPIRED)


# --- confirmations and the daily purge -----------------------------------------------------


def test_confirmations_and_the_register_are_purged_after_their_retention(
    app_database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(app_database_url)
    settings = _settings(tmp_path, app_database_url)
    closed_at = datetime(2020, 1, 6, 12, 0, tzinfo=UTC)
    for request_id, received in (("R-OLD", closed_at - timedelta(days=20)), ("R-NEW", T0)):
        register.record_intake(engine, _request(request_id, received), SKEYS, received)
        register.record_milestone(
            engine,
            Milestone(
                request_id=request_id,
                key="closed",
                step="closed",
                actor="Ada",
                detail={"reason": NOTE},  # an officer's note, sealed in the register
                status="answered",
                outcome="erasure",
                closed=True,
                at=closed_at if request_id == "R-OLD" else T0 + timedelta(days=1),
            ),
            KEYS,
        )
    _, (closing,) = register.get_request(engine, "R-OLD")
    assert register.readable_detail(closing, KEYS.note_keys) == {"reason": NOTE}
    sealed = closing.detail["reason"]["sealed"]
    assert sealed in _every_row(engine) and NOTE not in _every_row(engine)
    message = bytes(range(256)) * 4  # sealed bytes: every byte value survives
    with Session(engine) as session, session.begin():
        session.add_all(
            [
                ConfirmationRecord(
                    request_id="R-OLD",
                    message_id="<old@dsr>",
                    kind="erasure",
                    sent_at=closed_at,
                    retain_until=closed_at + timedelta(days=1827),
                    message=message,
                ),
                ConfirmationRecord(
                    request_id="R-NEW",
                    message_id="<new@dsr>",
                    kind="erasure",
                    sent_at=T0,
                    retain_until=T0 + timedelta(days=1827),
                    message=message,
                ),
            ]
        )
    with Session(engine) as session:
        stored = session.get(ConfirmationRecord, "R-NEW")
        assert stored is not None and stored.message == message

    result = ProofActivities(engine, settings, sealed_blob_store(settings)).purge_confirmations(
        PurgeInput(as_of=datetime(2026, 6, 1, tzinfo=UTC))
    )

    assert result.request_ids == ["R-OLD"]
    assert result.register_request_ids == ["R-OLD"]
    with Session(engine) as session:
        assert list(session.scalars(select(ConfirmationRecord.request_id))) == ["R-NEW"]
        assert list(session.scalars(select(RequestRecord.request_id))) == ["R-NEW"]
        assert list(session.scalars(select(RequestSubjectRecord.request_id))) == ["R-NEW"]
        assert (
            session.scalar(
                select(func.count())
                .select_from(MilestoneRecord)
                .where(MilestoneRecord.request_id == "R-OLD")
            )
            == 0
        )
    assert sealed not in _every_row(engine), "the note went with the register row"
    verified = ledger.verify(engine, KEY, ledger.anchors_path(settings))
    assert verified.ok and verified.anchors == 1, verified.describe()


def _every_row(engine: Engine) -> str:
    """Every row of every table, as text."""
    with engine.connect() as connection:
        return "\n".join(repr(connection.execute(table.select()).fetchall())
                         for table in Base.metadata.sorted_tables)


# --- a connector's reference store ---------------------------------------------------------


def test_a_connector_store_runs_on_postgresql(postgres_admin_url: str, tmp_path: Path) -> None:
    """Affiliate stores take any URL (DSR_CONNECTOR_<NAME>_URL); their connector creates its
    own tables (no migrations), on PostgreSQL as on SQLite."""
    from connectors.customer_account import CustomerAccountConnector
    from connectors.kit.store import create_store_engine
    from connectors.seeds.demo import seed_stores
    from connectors.sms import SmsConnector
    from dsr.blobstore import LocalBlobStore
    from dsr.connector_contract import EraseInput, EraseRule
    from tests.conftest import fresh_postgres_database
    from tests.connectors.helpers import scope

    now = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    blobs = LocalBlobStore(tmp_path / "blobs")
    with (
        fresh_postgres_database(postgres_admin_url) as sms_url,
        fresh_postgres_database(postgres_admin_url) as accounts_url,
    ):
        plain = make_url(sms_url).set(drivername="postgresql")  # postgresql://: psycopg
        assert create_store_engine(plain.render_as_string(False)).dialect.driver == "psycopg"
        sms = SmsConnector(sms_url, blobs, SECRET)
        accounts = CustomerAccountConnector(accounts_url, blobs, SECRET)
        facts = seed_stores(sms, accounts, people=40, now=now)
        assert seed_stores(sms, accounts, people=40, now=now) == facts  # reseeding is safe
        end_user = scope(
            "REQ-PG-1",
            (IdentityType.PHONE, facts.end_user_phone),
            customer=facts.controller_account_id,
        )
        holdings = {h.category: h for h in sms.discover(end_user).holdings}
        total = facts.end_user_messages_older + facts.end_user_messages_newer
        assert holdings["phone_number"].records == total
        rules = [
            EraseRule(category=category, before=facts.six_months_before) for category in holdings
        ]
        erased = sms.erase(EraseInput(scope=end_user, rules=rules))
        assert erased.erased["phone_number"] == facts.end_user_messages_older
        assert sms.erase(EraseInput(scope=end_user, rules=rules)).already_done
        sms.store.engine.dispose()
        accounts.store.engine.dispose()


def test_workers_starting_at_once_on_an_empty_store_all_start(
    postgres_admin_url: str, tmp_path: Path
) -> None:
    """Two replicas of a connector starting together on a new PostgreSQL store (and on a
    SQLite file) create its tables once: none fails on a table the other just made."""
    from concurrent.futures import ThreadPoolExecutor

    from connectors.sms import SmsConnector
    from dsr.blobstore import LocalBlobStore
    from tests.conftest import fresh_postgres_database

    blobs = LocalBlobStore(tmp_path / "blobs")
    with fresh_postgres_database(postgres_admin_url) as url:
        for store_url in (url, f"sqlite:///{tmp_path / 'sms.db'}"):
            with ThreadPoolExecutor(max_workers=6) as pool:
                starts = [pool.submit(SmsConnector, store_url, blobs, SECRET) for _ in range(6)]
                started = [start.result() for start in starts]  # raises what a start raised
            for connector in started:
                connector.store.engine.dispose()
