"""Legal holds on a real SQLite application database: placed and released from the CLI, and
applied by the hold check of an erasure (the ``legal_hold.assess`` activity)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from temporalio.testing import ActivityEnvironment
from typer.testing import CliRunner

from activities.legal_hold import HoldCheck, LegalHoldActivities
from dsr.assertions import Role
from dsr.connector_contract import CategoryHolding, Discovery
from dsr.database import make_engine
from dsr.holds import (
    HoldError,
    HoldKind,
    HoldSpec,
    active_holds,
    list_holds,
    place_hold,
    release_hold,
)
from dsr.ledger import ledger_key, verify
from dsr.models import parse_request
from dsr.notes import UNREADABLE
from dsr.register import record_intake
from dsr.settings import Settings
from dsr.signers import officer_signer
from services.mail_server import free_port
from starter import app
from tests.conftest import officer_service_thread, write_officer_files

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
KEY = "holds-test-key-2f7c9a4e1b8d6f3a5c0e9b7d"
PHONE = "+447700900123"
EMAIL = "dora.seymour@example.com"


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """The product's settings, with the officer service running (no Temporal in these
    tests), and officer.tan (an administrator and auditor) logged in on their own machine."""
    port = free_port()
    settings = Settings(data_dir=tmp_path, hmac_key=KEY, officer_service_port=port,
                        officer_service_url=f"http://127.0.0.1:{port}",
                        temporal_address="127.0.0.1:9")  # nothing listens there
    with officer_service_thread(settings):
        signer = officer_signer(settings, "officer.tan", [Role.ADMINISTRATOR, Role.AUDITOR])
        write_officer_files(signer, tmp_path / "officer-home")
        yield settings


def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    """The officer's CLI: their own folder, the officer service, no secret."""
    home = settings.data_dir / "officer-home"
    env = {
        "DSR_DATA_DIR": str(home),
        "DSR_SETTINGS_FILE": str(home / "absent.env"),
        "DSR_OFFICER_SERVICE_URL": settings.officer_service_url,
    }
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def _hold_entries(settings: Settings) -> list[tuple[str, str, str]]:
    with sqlite3.connect(settings.data_dir / "dsr.db") as connection:
        return [entry for entry in connection.execute("SELECT kind, actor, detail FROM ledger")
                if entry[0].startswith("hold_")]


def _hold_rows(settings: Settings) -> list[sqlite3.Row]:
    with sqlite3.connect(settings.data_dir / "dsr.db") as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute("SELECT * FROM legal_holds ORDER BY placed_at").fetchall()


# --- the CLI --------------------------------------------------------------------------------


def test_a_hold_is_placed_listed_and_released_from_the_cli(settings: Settings) -> None:
    code, output = _cli(
        settings,
        "hold",
        "place",
        "--kind",
        "litigation",
        "--reason",
        "Case 2026-114, discovery order",
        "--phone",
        PHONE,
        "--product",
        "SMS",
        "--json",
    )
    assert code == 0, output
    hold_id = json.loads(output)["hold_id"]

    code, output = _cli(settings, "hold", "list", "--json")
    [listed] = json.loads(output)
    assert (listed["hold_id"], listed["product"], listed["until"]) == (hold_id, "SMS", None)
    [row] = _hold_rows(settings)
    assert row["placed_by"] == "officer.tan"
    assert PHONE not in json.dumps(dict(row)) and len(row["identity_hash"]) == 64

    code, output = _cli(settings, "hold", "release", hold_id, "--reason", "case settled")
    assert f"released {hold_id}" in output
    # No Temporal here: the release stands, and the officer is told how to finish it.
    assert code == 1 and "hold recheck" in output
    assert json.loads(_cli(settings, "hold", "list", "--json")[1]) == []
    [released] = json.loads(_cli(settings, "hold", "list", "--all", "--json")[1])
    assert (released["hold_id"], released["release_reason"]) == (hold_id, "case settled")
    assert "case settled" not in _hold_rows(settings)[0]["release_reason"]  # sealed
    entries = _hold_entries(settings)
    assert [(kind, actor) for kind, actor, _ in entries] == [
        ("hold_placed", "officer.tan"),
        ("hold_released", "officer.tan"),
    ]
    assert PHONE not in json.dumps(entries) and hold_id in entries[0][2]
    code, output = _cli(settings, "ledger", "verify")
    assert code == 0, output


def _ledger_rows(settings: Settings) -> str:
    with sqlite3.connect(settings.data_dir / "dsr.db") as connection:
        return repr(connection.execute("SELECT * FROM ledger").fetchall()).lower()


def test_the_reasons_are_sealed_in_the_table_hashed_in_the_ledger_and_listed_opened(
    settings: Settings,
) -> None:
    placed = f"Case 2026-115: {EMAIL} wrote to counsel"
    ended = f"settled; {EMAIL} told by post"
    code, output = _cli(settings, "hold", "place", "--kind", "litigation", "--reason", placed,
                        "--customer", "CUST-0001", "--json")
    assert code == 0, output
    hold_id = json.loads(output)["hold_id"]
    [listed] = json.loads(_cli(settings, "hold", "list", "--json")[1])
    assert (listed["reason"], listed["placed_by"]) == (placed, "officer.tan")
    _cli(settings, "hold", "release", hold_id, "--reason", ended)  # 1: no Temporal to tell

    stored = repr([tuple(row) for row in _hold_rows(settings)]).lower()
    for private in (EMAIL, "seymour", "counsel", "told by post"):
        assert private.lower() not in stored and private.lower() not in _ledger_rows(settings)
    code, output = _cli(settings, "hold", "list", "--all")
    assert code == 0 and placed in output and ended in output, output
    [listed] = json.loads(_cli(settings, "hold", "list", "--all", "--json")[1])
    assert (listed["reason"], listed["release_reason"]) == (placed, ended)
    code, output = _cli(settings, "ledger", "verify")
    assert code == 0 and "ledger intact" in output, output


def test_a_sealed_reason_moved_elsewhere_does_not_open_and_older_ones_show_as_they_are(
    settings: Settings,
) -> None:
    first, second, third = (_place(settings, customer_account=f"CUST-000{n}") for n in (1, 2, 3))
    with sqlite3.connect(settings.data_dir / "dsr.db") as connection:
        [sealed] = connection.execute(
            "SELECT reason FROM legal_holds WHERE hold_id = ?", (first,)).fetchone()
        connection.execute("UPDATE legal_holds SET reason = ?, release_reason = ? "
                           "WHERE hold_id = ?", (sealed, sealed, second))  # another hold
        connection.execute("UPDATE legal_holds SET release_reason = ? WHERE hold_id = ?",
                           (sealed, first))  # another column
        connection.execute("UPDATE legal_holds SET reason = 'case 12 (before sealing)', "
                           "release_reason = ? WHERE hold_id = ?", (sealed[:40], third))
    listed = {hold["hold_id"]: (hold["reason"], hold["release_reason"])
              for hold in json.loads(_cli(settings, "hold", "list", "--json")[1])}
    assert listed == {first: ("case 12", UNREADABLE), second: (UNREADABLE, UNREADABLE),
                      third: ("case 12 (before sealing)", UNREADABLE)}


def test_a_reason_of_the_longest_kind_is_sealed_and_opens_on_both_backends(
    app_database_url: str,
) -> None:
    """500 characters of four bytes each, with an email: the sealed form fits the column."""
    engine = make_engine(app_database_url)
    reason = (f"{EMAIL} " + "\N{CARD FILE BOX}" * 500)[:500]
    spec = HoldSpec(kind=HoldKind.LITIGATION, reason=reason, placed_by="counsel",
                    customer_account="CUST-9")
    hold_id = place_hold(engine, KEY.encode(), spec, NOW).hold_id
    release_hold(engine, KEY.encode(), hold_id, "counsel", f"settled, {EMAIL}", NOW)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT reason, release_reason FROM legal_holds")).one()
        entries = connection.execute(text("SELECT detail FROM ledger")).scalars().all()
    assert EMAIL not in repr((tuple(stored), entries)) and len(stored[0]) > 2000
    [listed] = list_holds(engine, KEY.encode(), NOW, everything=True)
    assert (listed.reason, listed.release_reason) == (reason, f"settled, {EMAIL}")
    assert verify(engine, ledger_key(KEY.encode()), Path("/nonexistent/anchors")).ok


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--kind", "litigation", "--reason", "a case"], "needs a scope"),
        (["--kind", "subpoena", "--reason", "a case", "--customer", "CUST-0001"], "kind"),
        (["--kind", "litigation", "--reason", "x", "--customer", "CUST-0001"], "reason"),
        (["--kind", "litigation", "--reason", "a case", "--phone", "07700"], "identity"),
        (["--kind", "litigation", "--reason", "a case", "--category", "SMS data"], "category"),
        (
            [
                "--kind",
                "litigation",
                "--reason",
                "a case",
                "--customer",
                "CUST-1",
                "--until",
                "2020-01-01",
            ],
            "--until",
        ),
        (
            [
                "--kind",
                "litigation",
                "--reason",
                "a case",
                "--customer",
                "CUST-1",
                "--until",
                "soon",
            ],
            "until",
        ),
        (
            [
                "--kind",
                "litigation",
                "--reason",
                "a case",
                "--email",
                "a@example.com",
                "--phone",
                PHONE,
            ],
            "at most one",
        ),
    ],
)
def test_a_bad_hold_is_refused_naming_the_problem_and_nothing_is_stored(
    settings: Settings, args: list[str], words: str
) -> None:
    code, output = _cli(settings, "hold", "place", *args)

    assert code == 2
    assert words in output
    assert "07700" not in output  # an identity given is never echoed
    assert _hold_rows(settings) == []


def test_releasing_needs_a_known_active_hold_and_a_reason(settings: Settings) -> None:
    engine = make_engine(settings.app_database_url)
    hold = place_hold(
        engine,
        settings.secret,
        HoldSpec(
            kind=HoldKind.GOVERNMENT,
            reason="disclosure order 17",
            placed_by="counsel",
            customer_account="C1",
        ),
        NOW,
    )
    with pytest.raises(HoldError, match="needs a reason"):
        release_hold(engine, settings.secret, hold.hold_id, "counsel", " ", NOW)
    with pytest.raises(HoldError, match="no hold HOLD-NOPE"):
        release_hold(engine, settings.secret, "HOLD-NOPE", "counsel", "done", NOW)
    release_hold(engine, settings.secret, hold.hold_id, "counsel", "order lapsed", NOW)
    with pytest.raises(HoldError, match="already released"):
        release_hold(engine, settings.secret, hold.hold_id, "counsel", "again", NOW)


def test_a_dated_hold_ends_by_itself(settings: Settings) -> None:
    engine = make_engine(settings.app_database_url)
    spec = HoldSpec(
        kind=HoldKind.LITIGATION,
        reason="case 9",
        placed_by="counsel",
        category="traffic_data",
        until=date(2026, 12, 31),
    )
    place_hold(engine, settings.secret, spec, NOW)

    assert len(active_holds(engine, datetime(2026, 12, 31, 23, 0, tzinfo=UTC))) == 1
    assert active_holds(engine, datetime(2027, 1, 1, 0, 1, tzinfo=UTC)) == []


# --- the hold check of an erasure -----------------------------------------------------------


def _customer_erasure(settings: Settings) -> str:
    request = parse_request(
        {
            "request_id": "REQ-HOLD-1",
            "rights": ["erasure"],
            "jurisdiction": "EU",
            "channel": "email",
            "identities": [{"type": "phone", "value": PHONE}],
            "requester": {
                "kind": "controller",
                "email": "dpo@acme.example",
                "customer_account": "CUST-0001",
            },
            "received_at": (NOW - timedelta(days=1)).isoformat(),
        },
        NOW,
    )
    record_intake(make_engine(settings.app_database_url), request, settings.server_keys, NOW)
    return request.request_id


def _assess(settings: Settings, request_id: str) -> dict[tuple[str, str], str]:
    old = NOW - timedelta(days=400)
    discoveries = [
        Discovery(
            connector=name,
            holdings=[
                CategoryHolding(category=category, records=2, earliest=old, latest=old)
                for category in categories
            ],
        )
        for name, categories in (
            ("sms", ["traffic_data", "message_content"]),
            ("voice", ["traffic_data"]),
        )
    ]
    activities = LegalHoldActivities(settings, make_engine(settings.app_database_url))
    plan = ActivityEnvironment().run(
        activities.assess, HoldCheck(request_id=request_id, discoveries=discoveries, as_of=NOW)
    )
    return {(part.connector, part.category): part.rule_id for part in plan.retained}


def _place(settings: Settings, **scope: object) -> str:
    spec = HoldSpec.model_validate(
        {"kind": "litigation", "reason": "case 12", "placed_by": "counsel", **scope}
    )
    return place_hold(make_engine(settings.app_database_url), settings.secret, spec, NOW).hold_id


def test_the_hold_check_keeps_exactly_what_a_matching_hold_covers(settings: Settings) -> None:
    request_id = _customer_erasure(settings)
    assert _assess(settings, request_id) == {}  # old records: erased at once without holds

    subject_sms = _place(settings, identity={"type": "phone", "value": PHONE}, product="SMS")
    _place(settings, identity={"type": "phone", "value": "+447700900999"})  # someone else
    _place(settings, customer_account="CUST-0002")  # another customer
    customer_voice_traffic = _place(
        settings, customer_account="CUST-0001", product="Voice", category="traffic_data"
    )

    assert _assess(settings, request_id) == {
        ("sms", "traffic_data"): subject_sms,
        ("sms", "message_content"): subject_sms,
        ("voice", "traffic_data"): customer_voice_traffic,
    }

    engine = make_engine(settings.app_database_url)
    release_hold(engine, settings.secret, subject_sms, "counsel", "case settled", NOW)
    assert _assess(settings, request_id) == {("voice", "traffic_data"): customer_voice_traffic}


def test_a_hold_on_an_account_covers_the_account_holders_own_request(
    settings: Settings,
) -> None:
    request = parse_request(
        {
            "request_id": "REQ-HOLD-2",
            "rights": ["erasure"],
            "jurisdiction": "EU",
            "channel": "privacy_panel",
            "last_login_at": (NOW - timedelta(hours=1)).isoformat(),
            "identities": [{"type": "account_id", "value": "CUST-0004"}],
            "requester": {"kind": "subject", "email": "owner@example.com"},
            "received_at": (NOW - timedelta(days=1)).isoformat(),
        },
        NOW,
    )
    record_intake(make_engine(settings.app_database_url), request, settings.server_keys, NOW)
    hold_id = _place(settings, customer_account="CUST-0004")
    discovery = Discovery(
        connector="customer_account",
        holdings=[CategoryHolding(category="account_profile", records=1)],
    )
    activities = LegalHoldActivities(settings, make_engine(settings.app_database_url))

    plan = ActivityEnvironment().run(
        activities.assess,
        HoldCheck(request_id=request.request_id, discoveries=[discovery], as_of=NOW),
    )

    assert [(p.category, p.rule_id) for p in plan.retained] == [("account_profile", hold_id)]
