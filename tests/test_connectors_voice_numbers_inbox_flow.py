"""The Voice, Numbers, Inbox and Flow Builder connectors against real SQLite stores seeded from
the shared fictional population."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from connectors import flow_builder, inbox, numbers, voice
from connectors.flow_builder import FlowBuilderConnector, subject_invocations
from connectors.inbox import InboxConnector, subject_conversations
from connectors.kit import cutoffs
from connectors.kit.activities import connector_activities
from connectors.kit.errors import ConnectorInputError
from connectors.numbers import NumbersConnector, PhoneNumber
from connectors.population import EndUser, make_population
from connectors.voice import VoiceConnector, subject_calls
from dsr.blobstore import LocalBlobStore
from dsr.connector_contract import (
    AccessInput,
    EraseInput,
    EraseRule,
    FlagInput,
    RectifyInput,
    Scope,
    SweepInput,
)
from dsr.connector_registry import load_registry
from dsr.hashing import keyed_hash
from dsr.models import Correction, Identity, IdentityType

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=183)
SECRET = b"test-secret-not-for-production"
POPULATION = make_population(people=60, customers=4)
REGISTRY = Path(__file__).parent.parent / "connectors" / "registry.yaml"
VOICE_CATEGORIES = ["phone_number", "traffic_data", "location_data", "call_recordings"]
INBOX_CATEGORIES = ["contact_identifiers", "conversation_content", "agent_notes"]
FLOW_CATEGORIES = ["invocation_identifiers", "channel_data"]
Row = sqlite3.Row


# --- the stores ----------------------------------------------------------------------------


@dataclass
class Subjects:
    """The end users each connector's tests act on, each held by two or more customers."""

    voice: EndUser
    inbox: EndUser
    flow: EndUser
    written: dict[str, int]


@dataclass
class Stores:
    voice: VoiceConnector
    numbers: NumbersConnector
    inbox: InboxConnector
    flow: FlowBuilderConnector
    blobs: LocalBlobStore
    folder: Path
    subjects: Subjects

    def db(self, name: str) -> Path:
        return self.folder / "connectors" / f"{name}.db"


def _connectors(
    folder: Path,
) -> tuple[VoiceConnector, NumbersConnector, InboxConnector, FlowBuilderConnector, LocalBlobStore]:
    blobs = LocalBlobStore(folder / "blobs")

    def url(name: str) -> str:
        return f"sqlite:///{folder / 'connectors' / f'{name}.db'}"

    return (
        VoiceConnector(url("voice"), blobs, SECRET),
        NumbersConnector(url("numbers"), blobs, SECRET),
        InboxConnector(url("inbox"), blobs, SECRET),
        FlowBuilderConnector(url("flow_builder"), blobs, SECRET),
        blobs,
    )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Subjects]:
    """Seed once; each test gets its own copy of the store files."""
    folder = tmp_path_factory.mktemp("seeded")
    voice_c, numbers_c, inbox_c, flow_c, _ = _connectors(folder)
    written = {
        "voice": voice.seed(voice_c, POPULATION, now=NOW),
        "numbers": numbers.seed(numbers_c, POPULATION, now=NOW),
        "inbox": inbox.seed(inbox_c, POPULATION, now=NOW),
        "flow_builder": flow_builder.seed(flow_c, POPULATION, now=NOW),
    }
    for connector in (voice_c, numbers_c, inbox_c, flow_c):
        connector.store.engine.dispose()
    dbs = folder / "connectors"
    subjects = Subjects(
        voice=_pick(lambda user: _good_voice_subject(dbs / "voice.db", user)),
        inbox=_pick(lambda user: _good_inbox_subject(dbs / "inbox.db", user)),
        flow=_pick(lambda user: _good_flow_subject(dbs / "flow_builder.db", user)),
        written=written,
    )
    return folder, subjects


@pytest.fixture
def stores(seeded: tuple[Path, Subjects], tmp_path: Path) -> Stores:
    template, subjects = seeded
    shutil.copytree(template / "connectors", tmp_path / "connectors")
    voice_c, numbers_c, inbox_c, flow_c, blobs = _connectors(tmp_path)
    return Stores(voice_c, numbers_c, inbox_c, flow_c, blobs, tmp_path, subjects)


def _pick(good: Callable[[EndUser], bool]) -> EndUser:
    return next(u for u in POPULATION.end_users if len(u.customers) >= 2 and good(u))


# --- helpers -------------------------------------------------------------------------------


def rows(database: Path, sql: str, *params: Any) -> list[Row]:
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(sql, params).fetchall()


def dump(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    tables = rows(database, "SELECT name FROM sqlite_master WHERE type = 'table'")
    return {
        t["name"]: [tuple(r) for r in rows(database, f"SELECT * FROM {t['name']} ORDER BY 1")]
        for t in tables
    }


def stored_utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def older(selected: list[Row], column: str) -> list[Row]:
    return [r for r in selected if stored_utc(r[column]) < CUTOFF]


def newer(selected: list[Row], column: str) -> list[Row]:
    return [r for r in selected if stored_utc(r[column]) >= CUTOFF]


def ids(selected: list[Row], column: str = "id") -> str:
    return ",".join(str(r[column]) for r in selected) or "NULL"


def scope(
    request_id: str, identities: list[Identity], customer: str | None, as_of: datetime = NOW
) -> Scope:
    return Scope(
        request_id=request_id, identities=identities, customer_account=customer, as_of=as_of
    )


def every_identity(user: EndUser) -> list[Identity]:
    """All the ways a request may name the person (the email in another case on purpose)."""
    return [
        Identity(type=IdentityType.PHONE, value=user.phone),
        Identity(type=IdentityType.EMAIL, value=user.email.upper()),
        *(Identity(type=IdentityType.CHANNEL_ID, value=v) for v in user.channel_ids.values()),
    ]


def phone_only(user: EndUser) -> list[Identity]:
    return [Identity(type=IdentityType.PHONE, value=user.phone)]


def read_export(blobs: LocalBlobStore, ref: str) -> list[dict[str, Any]]:
    with blobs.open_reader(ref) as file:
        return [json.loads(line) for line in file]


def explain(engine: Any, statement: Any) -> str:
    sql = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        steps = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
    return "\n".join(step[-1] for step in steps)


# --- voice ---------------------------------------------------------------------------------


def voice_calls(database: Path, user: EndUser, customer: str, other: bool = False) -> list[Row]:
    operator = "!=" if other else "="
    return rows(
        database,
        f"SELECT * FROM calls WHERE customer_account {operator} ? AND end_user_phone = ? "
        "ORDER BY id",
        customer,
        user.phone,
    )


def _good_voice_subject(database: Path, user: EndUser) -> bool:
    mine = voice_calls(database, user, user.customers[0])
    old = older(mine, "started_at")
    return (
        any(r["recording_ref"] for r in old)
        and any(r["cell_id"] for r in old)
        and bool(newer(mine, "started_at"))
        and any(r["recording_ref"] for r in newer(mine, "started_at"))
    )


def voice_scope(stores: Stores, request_id: str = "REQ-V001") -> Scope:
    user = stores.subjects.voice
    return scope(request_id, phone_only(user), user.customers[0])


def recordings(database: Path, refs: list[str]) -> list[Row]:
    marks = ",".join("?" for _ in refs) or "NULL"
    return rows(database, f"SELECT * FROM recordings WHERE ref IN ({marks}) ORDER BY ref", *refs)


def test_voice_discover_counts_dates_and_countries_ended(stores: Stores) -> None:
    user = stores.subjects.voice
    mine = voice_calls(stores.db("voice"), user, user.customers[0])

    discovery = stores.voice.discover(voice_scope(stores))

    holdings = {h.category: h for h in discovery.holdings}
    assert list(holdings) == VOICE_CATEGORIES
    assert holdings["phone_number"].records == holdings["traffic_data"].records == len(mine)
    assert holdings["traffic_data"].earliest == min(stored_utc(r["started_at"]) for r in mine)
    assert holdings["traffic_data"].latest == max(stored_utc(r["started_at"]) for r in mine)
    assert holdings["traffic_data"].countries_ended == sorted({r["country_ended"] for r in mine})
    newest = {
        country: max(stored_utc(r["started_at"]) for r in mine if r["country_ended"] == country)
        for country in {r["country_ended"] for r in mine}
    }
    assert holdings["traffic_data"].latest_by_country == newest
    assert holdings["location_data"].records == sum(1 for r in mine if r["cell_id"])
    recorded = [r for r in mine if r["recording_ref"]]
    assert holdings["call_recordings"].records == len(recorded)
    assert holdings["call_recordings"].earliest == min(
        stored_utc(r["started_at"]) for r in recorded
    )


def test_voice_access_exports_exactly_the_controllers_calls(stores: Stores) -> None:
    user = stores.subjects.voice
    mine = voice_calls(stores.db("voice"), user, user.customers[0])
    elsewhere = voice_calls(stores.db("voice"), user, user.customers[0], other=True)
    assert elsewhere, "the subject's number must also be another customer's"

    result = stores.voice.access(AccessInput(scope=voice_scope(stores)))

    assert result.blob_ref == "blob:exports/REQ-V001/voice.jsonl"
    records = read_export(stores.blobs, result.blob_ref)
    assert {r["call_id"] for r in records} == {r["id"] for r in mine}
    assert {r["customer_account"] for r in records} == {user.customers[0]}
    counts = {c: sum(1 for r in records if r["category"] == c) for c in result.records}
    assert counts == result.records and result.records["phone_number"] == len(mine)
    exported = {r["recording_ref"]: r for r in records if r["category"] == "call_recordings"}
    stored = recordings(
        stores.db("voice"), [r["recording_ref"] for r in mine if r["recording_ref"]]
    )
    assert set(exported) == {r["ref"] for r in stored}
    assert all(exported[r["ref"]]["transcript"] == r["transcript"] for r in stored)
    assert {r["phone_number"] for r in records if r["category"] == "phone_number"} == {user.phone}


def test_voice_erase_by_rule_anonymises_older_calls_only_for_the_controller(
    stores: Stores,
) -> None:
    user, database = stores.subjects.voice, stores.db("voice")
    mine = voice_calls(database, user, user.customers[0])
    old, new = older(mine, "started_at"), newer(mine, "started_at")
    elsewhere = voice_calls(database, user, user.customers[0], other=True)
    elsewhere_recordings = recordings(
        database, [r["recording_ref"] for r in elsewhere if r["recording_ref"]]
    )
    new_recordings = recordings(database, [r["recording_ref"] for r in new if r["recording_ref"]])
    rules = [EraseRule(category=c, before=CUTOFF) for c in VOICE_CATEGORIES]

    result = stores.voice.erase(EraseInput(scope=voice_scope(stores), rules=rules))

    assert result.erased == {
        "call_recordings": sum(1 for r in old if r["recording_ref"]),
        "location_data": sum(1 for r in old if r["cell_id"]),
        "phone_number": len(old),
        "traffic_data": len(old),
    }
    assert result.retained["phone_number"] == result.retained["traffic_data"] == len(new)
    assert result.retained["call_recordings"] == len(new_recordings) > 0
    pseudonym = keyed_hash(SECRET, user.phone, "pseudonym")
    after = {r["id"]: r for r in rows(database, f"SELECT * FROM calls WHERE id IN ({ids(old)})")}
    for before in old:
        call = after[before["id"]]
        assert call["end_user_phone"] == pseudonym and call["anonymised_at"] is not None
        assert call["recording_ref"] is call["cell_id"] is call["latitude"] is None
        assert call["longitude"] is call["route"] is None
        assert stored_utc(call["started_at"]) == stored_utc(before["started_at"]).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        kept = ("duration_s", "country_ended", "status", "direction", "caller_id")
        assert [call[c] for c in kept] == [before[c] for c in kept]
    assert recordings(database, [r["recording_ref"] for r in old if r["recording_ref"]]) == []
    assert recordings(database, [r["recording_ref"] for r in new if r["recording_ref"]]) == (
        new_recordings
    )
    still = rows(database, f"SELECT * FROM calls WHERE id IN ({ids(new)}) ORDER BY id")
    assert [tuple(r) for r in still] == [tuple(r) for r in new]
    assert voice_calls(database, user, user.customers[0], other=True) == elsewhere
    assert recordings(database, [r["ref"] for r in elsewhere_recordings]) == elsewhere_recordings


def test_voice_erase_recordings_only_keeps_the_calls(stores: Stores) -> None:
    user, database = stores.subjects.voice, stores.db("voice")
    before = voice_calls(database, user, user.customers[0])
    rules = [EraseRule(category="call_recordings")]

    result = stores.voice.erase(EraseInput(scope=voice_scope(stores), rules=rules))

    after = voice_calls(database, user, user.customers[0])
    assert result.erased == {"call_recordings": sum(1 for r in before if r["recording_ref"])}
    assert result.retained == {"call_recordings": 0}
    assert [r["id"] for r in after] == [r["id"] for r in before]
    assert {r["recording_ref"] for r in after} == {None}
    assert all(r["anonymised_at"] is None for r in after)


def end_in_italy(database: Path, calls: list[Row]) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute(f"UPDATE calls SET country_ended = 'IT' WHERE id IN ({ids(calls)})")


def test_voice_erase_rules_confined_to_countries_reach_only_their_calls(stores: Stores) -> None:
    user, database = stores.subjects.voice, stores.db("voice")
    mine = voice_calls(database, user, user.customers[0])
    end_in_italy(database, mine[::2])  # every other call ended in Italy
    italian, other = mine[::2], mine[1::2]
    italy_cutoff = CUTOFF - timedelta(days=120)  # Italy keeps traffic data for less long
    reached = [r for r in italian if stored_utc(r["started_at"]) < italy_cutoff]
    reached += older(other, "started_at")
    assert reached and [r for r in italian if italy_cutoff <= stored_utc(r["started_at"]) < CUTOFF]
    rules = [
        EraseRule(category="phone_number", before=italy_cutoff, countries_ended=["IT"]),
        EraseRule(category="phone_number", before=CUTOFF, countries_ended=list(voice.COUNTRIES)),
    ]

    result = stores.voice.erase(EraseInput(scope=voice_scope(stores), rules=rules))

    assert result.erased["phone_number"] == len(reached)
    assert result.retained["phone_number"] == len(mine) - len(reached)
    after = {r["id"]: r for r in rows(database, f"SELECT * FROM calls WHERE id IN ({ids(mine)})")}
    anonymised = {number for number, call in after.items() if call["anonymised_at"] is not None}
    assert anonymised == {r["id"] for r in reached}


def test_voice_refuses_an_unknown_category(stores: Stores) -> None:
    call = EraseInput(scope=voice_scope(stores), rules=[EraseRule(category="message_content")])
    with pytest.raises(ConnectorInputError, match="message_content"):
        stores.voice.erase(call)


# --- numbers -------------------------------------------------------------------------------


def test_numbers_holds_nothing_of_the_subject_although_the_customer_owns_numbers(
    stores: Stores,
) -> None:
    user = stores.subjects.voice
    database = stores.db("numbers")
    owned = rows(database, "SELECT * FROM numbers WHERE customer_account = ?", user.customers[0])
    assert {r["kind"] for r in owned} >= {"local", "short_code"}
    everyone = {u.phone for u in POPULATION.end_users} | {u.email for u in POPULATION.end_users}
    assert not everyone & {r["number"] for r in rows(database, "SELECT number FROM numbers")}
    assert rows(database, "SELECT * FROM numbers WHERE number = ?", user.phone) == []
    snapshot = dump(database)
    subject = scope("REQ-N001", every_identity(user), user.customers[0])

    discovery = stores.numbers.discover(subject)
    access = stores.numbers.access(AccessInput(scope=subject))
    erase = stores.numbers.erase(EraseInput(scope=subject, rules=[]))
    restrict = stores.numbers.restrict(FlagInput(scope=subject))

    assert discovery.holdings == [] and discovery.records == 0
    assert access.records == {} and access.blob_ref is None
    assert not list((stores.folder / "blobs").rglob("*.jsonl"))
    assert (erase.erased, erase.retained) == ({}, {}) and restrict.records == 0
    after = dump(database)
    assert after["numbers"] == snapshot["numbers"]
    voice_call = voice_calls(stores.db("voice"), user, user.customers[0])[0]
    assert voice_call["caller_id"] in {r["number"] for r in owned}  # voice uses these numbers
    with pytest.raises(ConnectorInputError, match="numbers holds no category"):
        stores.numbers.erase(EraseInput(scope=subject, rules=[EraseRule(category="x")]))


def test_numbers_customer_lookup_uses_the_composite_index(stores: Stores) -> None:
    user = stores.subjects.voice
    statement = PhoneNumber.__table__.select().where(
        PhoneNumber.customer_account == user.customers[0], PhoneNumber.number == user.phone
    )
    plan = explain(stores.numbers.store.engine, statement)
    assert "USING INDEX ix_numbers_customer (customer_account=? AND number=?)" in plan


# --- inbox ---------------------------------------------------------------------------------

INBOX_MATCH = "(contact_phone = ? OR contact_email = ? OR contact_channel_id IN (?, ?, ?))"


def inbox_conversations(
    database: Path, user: EndUser, customer: str, other: bool = False
) -> list[Row]:
    operator = "!=" if other else "="
    return rows(
        database,
        f"SELECT * FROM conversations WHERE customer_account {operator} ? AND {INBOX_MATCH} "
        "ORDER BY id",
        customer,
        user.phone,
        user.email,
        *user.channel_ids.values(),
    )


def inbox_messages(
    database: Path, conversations: list[Row], internal: bool | None = None
) -> list[Row]:
    kind = "" if internal is None else f" AND internal = {int(internal)}"
    return rows(
        database,
        f"SELECT * FROM messages WHERE conversation_id IN ({ids(conversations)}){kind} ORDER BY id",
    )


def _good_inbox_subject(database: Path, user: EndUser) -> bool:
    mine = inbox_conversations(database, user, user.customers[0])
    old, new = older(mine, "opened_at"), newer(mine, "opened_at")
    return (
        bool(old and new)
        and bool(inbox_messages(database, old, internal=True))
        and any(r["contact_email"] for r in mine)
        and any(r["contact_phone"] for r in mine)
        and any(r["contact_name"] for r in mine)
    )


def inbox_scope(stores: Stores, request_id: str = "REQ-I001") -> Scope:
    user = stores.subjects.inbox
    return scope(request_id, every_identity(user), user.customers[0])


def test_inbox_discover_counts_and_dates_per_category(stores: Stores) -> None:
    user, database = stores.subjects.inbox, stores.db("inbox")
    mine = inbox_conversations(database, user, user.customers[0])
    content = inbox_messages(database, mine, internal=False)
    notes = inbox_messages(database, mine, internal=True)

    holdings = {h.category: h for h in stores.inbox.discover(inbox_scope(stores)).holdings}

    assert {c: h.records for c, h in holdings.items()} == {
        "contact_identifiers": len(mine),
        "conversation_content": len(content),
        "agent_notes": len(notes),
    }
    assert holdings["contact_identifiers"].earliest == min(stored_utc(r["opened_at"]) for r in mine)
    assert holdings["contact_identifiers"].latest == max(stored_utc(r["opened_at"]) for r in mine)
    assert holdings["conversation_content"].latest == max(stored_utc(r["sent_at"]) for r in content)
    assert holdings["agent_notes"].earliest == min(stored_utc(r["sent_at"]) for r in notes)
    by_phone = scope("REQ-I002", phone_only(user), user.customers[0])
    phone_rows = [r for r in mine if r["contact_phone"] == user.phone]
    found = {h.category: h.records for h in stores.inbox.discover(by_phone).holdings}
    assert found["contact_identifiers"] == len(phone_rows) < len(mine)


def test_inbox_access_exports_exactly_the_controllers_conversations(stores: Stores) -> None:
    user, database = stores.subjects.inbox, stores.db("inbox")
    mine = inbox_conversations(database, user, user.customers[0])
    elsewhere = inbox_conversations(database, user, user.customers[0], other=True)
    assert elsewhere, "the subject must also be another customer's end user"

    result = stores.inbox.access(AccessInput(scope=inbox_scope(stores)))

    assert result.blob_ref is not None
    records = read_export(stores.blobs, result.blob_ref)
    assert {r["customer_account"] for r in records} == {user.customers[0]}
    conversations = [r for r in records if r["category"] == "contact_identifiers"]
    assert sorted(r["conversation_id"] for r in conversations) == [r["id"] for r in mine]
    messages = {r["message_id"] for r in records if r["category"] == "conversation_content"}
    assert messages == {r["id"] for r in inbox_messages(database, mine, internal=False)}
    notes = {r["message_id"] for r in records if r["category"] == "agent_notes"}
    assert notes == {r["id"] for r in inbox_messages(database, mine, internal=True)}
    assert all("agent_id" not in r for r in records), "agent data is the customer's own"
    counts = {c: sum(1 for r in records if r["category"] == c) for c in result.records}
    assert counts == result.records


def test_inbox_erase_by_rule_unlinks_older_conversations_only_for_the_controller(
    stores: Stores,
) -> None:
    user, database = stores.subjects.inbox, stores.db("inbox")
    mine = inbox_conversations(database, user, user.customers[0])
    old, new = older(mine, "opened_at"), newer(mine, "opened_at")
    old_messages = inbox_messages(database, old)
    new_messages = inbox_messages(database, new)
    elsewhere = inbox_conversations(database, user, user.customers[0], other=True)
    elsewhere_messages = inbox_messages(database, elsewhere)
    rules = [EraseRule(category=c, before=CUTOFF) for c in INBOX_CATEGORIES]

    result = stores.inbox.erase(EraseInput(scope=inbox_scope(stores), rules=rules))

    assert result.erased == {
        "contact_identifiers": len(old),
        "conversation_content": sum(1 for m in old_messages if not m["internal"]),
        "agent_notes": sum(1 for m in old_messages if m["internal"]),
    }
    assert result.retained == {
        "contact_identifiers": len(new),
        "conversation_content": sum(1 for m in new_messages if not m["internal"]),
        "agent_notes": sum(1 for m in new_messages if m["internal"]),
    }
    for before in old:
        after = rows(database, "SELECT * FROM conversations WHERE id = ?", before["id"])[0]
        assert after["contact_phone"] is after["contact_email"] is None
        assert after["contact_channel_id"] is after["contact_name"] is None
        assert after["anonymised_at"] is not None
        kept = ("channel", "agent_id", "opened_at", "closed_at", "customer_account")
        assert [after[c] for c in kept] == [before[c] for c in kept]
    assert inbox_messages(database, old) == []
    still = rows(database, f"SELECT * FROM conversations WHERE id IN ({ids(new)}) ORDER BY id")
    assert [tuple(r) for r in still] == [tuple(r) for r in new]
    assert inbox_messages(database, new) == new_messages
    assert inbox_conversations(database, user, user.customers[0], other=True) == elsewhere
    assert inbox_messages(database, elsewhere) == elsewhere_messages


def test_inbox_erase_notes_only_keeps_conversations_and_messages(stores: Stores) -> None:
    user, database = stores.subjects.inbox, stores.db("inbox")
    mine = inbox_conversations(database, user, user.customers[0])
    content = inbox_messages(database, mine, internal=False)
    old_notes = older(inbox_messages(database, mine, internal=True), "sent_at")

    result = stores.inbox.erase(
        EraseInput(
            scope=inbox_scope(stores), rules=[EraseRule(category="agent_notes", before=CUTOFF)]
        )
    )

    assert set(result.erased) == {"agent_notes"} and result.erased["agent_notes"] == len(old_notes)
    assert inbox_conversations(database, user, user.customers[0]) == mine
    assert inbox_messages(database, mine, internal=False) == content
    assert older(inbox_messages(database, mine, internal=True), "sent_at") == []


def test_inbox_rectify_corrects_name_and_email_on_the_controllers_conversations(
    stores: Stores,
) -> None:
    user, database = stores.subjects.inbox, stores.db("inbox")
    mine = inbox_conversations(database, user, user.customers[0])
    elsewhere = inbox_conversations(database, user, user.customers[0], other=True)
    corrections = [  # the email first: the name must still reach the email-only conversations
        Correction(field="email", value="Corrected.Address@example.org"),
        Correction(field="name", value="Corrected Name"),
        Correction(field="shoe_size", value="44"),
    ]

    result = stores.inbox.rectify(RectifyInput(scope=inbox_scope(stores), corrections=corrections))
    retry = stores.inbox.rectify(RectifyInput(scope=inbox_scope(stores), corrections=corrections))

    named = [r for r in mine if r["contact_name"]]
    emailed = [r for r in mine if r["contact_email"]]
    assert result.updated == {"name": len(named), "email": len(emailed)}
    assert result.unsupported_fields == ["shoe_size"]
    assert retry.already_done and retry.updated == result.updated
    after = {
        r["id"]: r for r in rows(database, f"SELECT * FROM conversations WHERE id IN ({ids(mine)})")
    }
    for before in mine:
        row = after[before["id"]]
        assert row["contact_name"] == ("Corrected Name" if before["contact_name"] else None)
        expected = "corrected.address@example.org" if before["contact_email"] else None
        assert row["contact_email"] == expected
    assert inbox_conversations(database, user, user.customers[0], other=True) == elsewhere
    with pytest.raises(ConnectorInputError, match="email is malformed"):
        stores.inbox.rectify(
            RectifyInput(
                scope=inbox_scope(stores, "REQ-I009"),
                corrections=[Correction(field="email", value="not-an-address")],
            )
        )


def test_inbox_rectify_keeps_a_restricted_subject_restricted_under_the_corrected_email(
    stores: Stores,
) -> None:
    customer = stores.subjects.inbox.customers[0]
    corrected = Identity(type=IdentityType.EMAIL, value="corrected.address@example.org")
    corrections = [Correction(field="email", value="Corrected.Address@example.org")]
    stores.inbox.restrict(FlagInput(scope=inbox_scope(stores)))
    assert not stores.inbox.is_restricted(customer, corrected)

    stores.inbox.rectify(RectifyInput(scope=inbox_scope(stores), corrections=corrections))

    assert stores.inbox.is_restricted(customer, corrected)
    assert not stores.inbox.is_restricted("CUST-9999", corrected)


def test_inbox_rectify_restricts_no_corrected_email_of_an_unrestricted_subject(
    stores: Stores,
) -> None:
    customer = stores.subjects.inbox.customers[0]
    corrected = Identity(type=IdentityType.EMAIL, value="corrected.address@example.org")
    corrections = [Correction(field="email", value=corrected.value)]

    stores.inbox.rectify(RectifyInput(scope=inbox_scope(stores), corrections=corrections))

    assert not stores.inbox.is_restricted(customer, corrected)


def test_inbox_lookups_use_the_customer_first_indexes(stores: Stores) -> None:
    user = stores.subjects.inbox
    engine = stores.inbox.store.engine
    subject = inbox.subject_of(inbox_scope(stores))
    assert subject is not None

    plan = explain(engine, subject_conversations(subject))

    assert "MULTI-INDEX OR" in plan and "SCAN" not in plan
    assert "USING INDEX ix_conversations_phone (customer_account=? AND contact_phone=?)" in plan
    assert "USING INDEX ix_conversations_email (customer_account=? AND contact_email=?)" in plan
    assert "ix_conversations_channel_id (customer_account=? AND contact_channel_id=?)" in plan
    by_email = inbox.subject_of(
        scope("REQ-I003", [Identity(type=IdentityType.EMAIL, value=user.email)], user.customers[0])
    )
    assert by_email is not None
    single = explain(engine, subject_conversations(by_email))
    assert "USING INDEX ix_conversations_email (customer_account=? AND contact_email=?)" in single
    messages = select(inbox.Message).where(*inbox.subject_messages(subject, "agent_notes"))
    assert "USING INDEX ix_messages_conversation (conversation_id=?)" in explain(engine, messages)


# --- flow builder --------------------------------------------------------------------------

FLOW_MATCH = "(contact_phone = ? OR contact_email = ? OR contact_channel_id IN (?, ?, ?))"


def flow_invocations(
    database: Path, user: EndUser, customer: str, other: bool = False
) -> list[Row]:
    operator = "!=" if other else "="
    return rows(
        database,
        f"SELECT * FROM invocations WHERE customer_account {operator} ? AND {FLOW_MATCH} "
        "ORDER BY id",
        customer,
        user.phone,
        user.email,
        *user.channel_ids.values(),
    )


def _good_flow_subject(database: Path, user: EndUser) -> bool:
    mine = flow_invocations(database, user, user.customers[0])
    return (
        bool(older(mine, "invoked_at") and newer(mine, "invoked_at"))
        and any(r["contact_email"] for r in mine)
        and any(r["contact_phone"] for r in mine)
    )


def flow_scope(stores: Stores, request_id: str = "REQ-F001") -> Scope:
    user = stores.subjects.flow
    return scope(request_id, every_identity(user), user.customers[0])


def test_flow_discover_counts_and_dates(stores: Stores) -> None:
    user = stores.subjects.flow
    mine = flow_invocations(stores.db("flow_builder"), user, user.customers[0])

    holdings = {h.category: h for h in stores.flow.discover(flow_scope(stores)).holdings}

    assert {c: h.records for c, h in holdings.items()} == {
        "invocation_identifiers": len(mine),
        "channel_data": len(mine),
    }
    assert holdings["invocation_identifiers"].earliest == min(
        stored_utc(r["invoked_at"]) for r in mine
    )
    assert holdings["channel_data"].latest == max(stored_utc(r["invoked_at"]) for r in mine)


def test_flow_access_exports_exactly_the_controllers_invocations(stores: Stores) -> None:
    user, database = stores.subjects.flow, stores.db("flow_builder")
    mine = flow_invocations(database, user, user.customers[0])
    assert flow_invocations(database, user, user.customers[0], other=True)

    result = stores.flow.access(AccessInput(scope=flow_scope(stores)))

    assert result.blob_ref is not None
    records = read_export(stores.blobs, result.blob_ref)
    assert {r["invocation_id"] for r in records} == {r["id"] for r in mine}
    assert {r["customer_account"] for r in records} == {user.customers[0]}
    assert result.records == {"invocation_identifiers": len(mine), "channel_data": len(mine)}
    payloads = {
        r["invocation_id"]: r["payload"] for r in records if r["category"] == "channel_data"
    }
    assert payloads == {r["id"]: json.loads(r["payload"]) for r in mine}
    steps = {
        r["invocation_id"]: r["step_results"] for r in records if r["category"] == "channel_data"
    }
    for row in mine:
        outputs = json.loads(row["step_outputs"])
        assert [s.get("output") for s in steps[row["id"]]] == outputs
        assert [s["status"] for s in steps[row["id"]]] == [
            s["status"] for s in json.loads(row["step_results"])
        ]


def test_flow_erase_by_rule_unlinks_older_invocations_only_for_the_controller(
    stores: Stores,
) -> None:
    user, database = stores.subjects.flow, stores.db("flow_builder")
    mine = flow_invocations(database, user, user.customers[0])
    old, new = older(mine, "invoked_at"), newer(mine, "invoked_at")
    elsewhere = flow_invocations(database, user, user.customers[0], other=True)
    rules = [EraseRule(category=c, before=CUTOFF) for c in FLOW_CATEGORIES]

    result = stores.flow.erase(EraseInput(scope=flow_scope(stores), rules=rules))

    assert result.erased == {"invocation_identifiers": len(old), "channel_data": len(old)}
    assert result.retained == {"invocation_identifiers": len(new), "channel_data": len(new)}
    for before in old:
        after = rows(database, "SELECT * FROM invocations WHERE id = ?", before["id"])[0]
        assert after["contact_email"] is after["contact_phone"] is None
        assert after["contact_channel_id"] is after["payload"] is after["step_outputs"] is None
        assert after["anonymised_at"] is not None
        steps = json.loads(after["step_results"])
        assert steps == [
            {"step": s["step"], "status": s["status"]} for s in json.loads(before["step_results"])
        ]
        kept = ("flow_id", "invoked_at", "trigger_channel", "customer_account")
        assert [after[c] for c in kept] == [before[c] for c in kept]
    still = rows(database, f"SELECT * FROM invocations WHERE id IN ({ids(new)}) ORDER BY id")
    assert [tuple(r) for r in still] == [tuple(r) for r in new]
    assert flow_invocations(database, user, user.customers[0], other=True) == elsewhere


def test_flow_erase_channel_data_only_keeps_the_identifiers(stores: Stores) -> None:
    user, database = stores.subjects.flow, stores.db("flow_builder")
    mine = flow_invocations(database, user, user.customers[0])

    result = stores.flow.erase(
        EraseInput(scope=flow_scope(stores), rules=[EraseRule(category="channel_data")])
    )

    assert result.erased == {"channel_data": len(mine)} and result.retained == {"channel_data": 0}
    after = flow_invocations(database, user, user.customers[0])
    assert [r["id"] for r in after] == [r["id"] for r in mine]
    assert all(r["payload"] is r["step_outputs"] is r["anonymised_at"] is None for r in after)
    assert [r["step_results"] for r in after] == [r["step_results"] for r in mine]


def test_flow_lookups_use_the_customer_first_indexes(stores: Stores) -> None:
    subject = flow_builder.subject_of(flow_scope(stores))
    assert subject is not None

    plan = explain(stores.flow.store.engine, subject_invocations(subject))

    assert "MULTI-INDEX OR" in plan and "SCAN" not in plan
    assert "USING INDEX ix_invocations_phone (customer_account=? AND contact_phone=?)" in plan
    assert "USING INDEX ix_invocations_email (customer_account=? AND contact_email=?)" in plan
    assert "ix_invocations_channel_id (customer_account=? AND contact_channel_id=?)" in plan


# --- every connector -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    subject_scope: Callable[[Stores, str], Scope]
    categories: list[str]
    restricted: Callable[[Stores, Scope], bool]


def _voice_restricted(stores: Stores, subject: Scope) -> bool:
    return stores.voice.is_restricted(str(subject.customer_account), subject.identities[0].value)


def _inbox_restricted(stores: Stores, subject: Scope) -> bool:
    customer = str(subject.customer_account)
    return all(stores.inbox.is_restricted(customer, i) for i in subject.identities)


def _flow_restricted(stores: Stores, subject: Scope) -> bool:
    customer = str(subject.customer_account)
    return all(stores.flow.is_restricted(customer, i) for i in subject.identities)


CASES = [
    Case("voice", voice_scope, VOICE_CATEGORIES, _voice_restricted),
    Case("inbox", inbox_scope, INBOX_CATEGORIES, _inbox_restricted),
    Case("flow_builder", flow_scope, FLOW_CATEGORIES, _flow_restricted),
]
CONNECTORS = {"voice": "voice", "numbers": "numbers", "inbox": "inbox", "flow_builder": "flow"}


def connector(stores: Stores, name: str) -> Any:
    return getattr(stores, CONNECTORS[name])


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_erase_retry_is_already_done_and_changes_nothing(stores: Stores, case: Case) -> None:
    target = connector(stores, case.name)
    rules = [EraseRule(category=c, before=CUTOFF) for c in case.categories]
    call = EraseInput(scope=case.subject_scope(stores, "REQ-R001"), rules=rules)
    first = target.erase(call)
    snapshot = dump(stores.db(case.name))
    later = case.subject_scope(stores, "REQ-R001").model_copy(update={"as_of": NOW + timedelta(1)})

    retry = target.erase(call.model_copy(update={"scope": later}))

    assert retry.already_done and not first.already_done
    assert (retry.erased, retry.retained) == (first.erased, first.retained)
    assert sum(first.erased.values()) > 0
    assert dump(stores.db(case.name)) == snapshot


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_restrict_and_lift(stores: Stores, case: Case) -> None:
    target = connector(stores, case.name)
    subject = case.subject_scope(stores, "REQ-S001")
    held = target.discover(subject).holdings[0].records  # the records naming the person

    restricted = target.restrict(FlagInput(scope=subject))
    retried = target.restrict(FlagInput(scope=subject))

    assert restricted.records == held > 0
    assert retried.already_done and retried.records == restricted.records
    assert case.restricted(stores, subject)
    other = subject.model_copy(update={"customer_account": "CUST-9999"})
    assert not case.restricted(stores, other)
    stored = rows(stores.db(case.name), "SELECT * FROM restrictions")
    values = {i.value for i in subject.identities} | {i.value.lower() for i in subject.identities}
    assert stored and not values & {str(v) for row in stored for v in tuple(row)}

    lifted = target.restrict(FlagInput(scope=subject, lift=True))

    assert not lifted.already_done
    assert not any(
        case.restricted(stores, subject.model_copy(update={"identities": [identity]}))
        for identity in subject.identities
    )


@pytest.mark.parametrize("name", list(CONNECTORS))
def test_nothing_is_found_without_a_customer_account(stores: Stores, name: str) -> None:
    user = stores.subjects.voice
    target = connector(stores, name)
    subject = scope("REQ-X001", every_identity(user), customer=None)
    categories = {"voice": VOICE_CATEGORIES, "inbox": INBOX_CATEGORIES}
    rules = [EraseRule(category=c) for c in categories.get(name, FLOW_CATEGORIES)]
    rules = [] if name == "numbers" else rules
    snapshot = dump(stores.db(name))

    assert target.discover(subject).holdings == []
    access = target.access(AccessInput(scope=subject))
    erase = target.erase(EraseInput(scope=subject, rules=rules))
    restrict = target.restrict(FlagInput(scope=subject))

    assert access.blob_ref is None and access.records == {}
    assert erase.erased == {} and restrict.records == 0
    assert dump(stores.db(name)) == snapshot


def test_seeding_is_deterministic_spans_fourteen_months_and_shares_end_users(
    seeded: tuple[Path, Subjects], tmp_path: Path
) -> None:
    template, subjects = seeded
    shutil.copytree(template / "connectors", tmp_path / "connectors")
    voice_c, numbers_c, inbox_c, flow_c, _ = _connectors(tmp_path)
    before = {name: dump(tmp_path / "connectors" / f"{name}.db") for name in subjects.written}

    again = {
        "voice": voice.seed(voice_c, POPULATION, now=NOW),
        "numbers": numbers.seed(numbers_c, POPULATION, now=NOW),
        "inbox": inbox.seed(inbox_c, POPULATION, now=NOW),
        "flow_builder": flow_builder.seed(flow_c, POPULATION, now=NOW),
    }

    assert again == subjects.written
    for name, tables in before.items():
        database = tmp_path / "connectors" / f"{name}.db"
        assert dump(database) == tables
        data = {t: r for t, r in tables.items() if t not in ("operation_log", "restrictions")}
        assert sum(len(r) for r in data.values()) == again[name]
    dates = {
        "voice": "SELECT MIN(started_at), MAX(started_at) FROM calls",
        "inbox": "SELECT MIN(opened_at), MAX(opened_at) FROM conversations",
        "flow_builder": "SELECT MIN(invoked_at), MAX(invoked_at) FROM invocations",
    }
    for name, sql in dates.items():
        first, last = rows(tmp_path / "connectors" / f"{name}.db", sql)[0]
        assert NOW - timedelta(days=426) < stored_utc(first) < NOW - timedelta(days=395)
        assert NOW - timedelta(days=30) < stored_utc(last) <= NOW
    shared = rows(
        tmp_path / "connectors" / "voice.db",
        "SELECT end_user_phone FROM calls GROUP BY end_user_phone "
        "HAVING COUNT(DISTINCT customer_account) > 1",
    )
    assert len(shared) == sum(1 for u in POPULATION.end_users if len(u.customers) > 1)


def test_subject_lookups_use_the_customer_first_index(stores: Stores) -> None:
    user = stores.subjects.voice
    plan = explain(stores.voice.store.engine, subject_calls(user.customers[0], [user.phone]))
    assert "USING INDEX ix_calls_subject (customer_account=? AND end_user_phone=?)" in plan


# --- Temporal activities -------------------------------------------------------------------


def defn_name(fn: Any) -> str:
    return str(fn.__temporal_activity_definition.name)


def test_activities_are_named_and_cover_the_registry(stores: Stores) -> None:
    registry = load_registry(REGISTRY)
    for name in CONNECTORS:
        target = connector(stores, name)
        names = {defn_name(fn) for fn in connector_activities(target)}
        assert names == {f"{name}.{method}" for method in target.activities}
        entry = registry.get(name)
        assert {f"{name}.{operation.value}" for operation in entry.operations} <= names
        assert entry.task_queue == f"dsr-connector-{name}" and entry.role.value == "end_user"


async def test_access_runs_as_an_activity_with_heartbeats(stores: Stores) -> None:
    activities = {defn_name(fn): fn for fn in connector_activities(stores.inbox)}
    environment = ActivityEnvironment()
    beats: list[Any] = []
    environment.on_heartbeat = lambda *details: beats.append(details)

    result = await environment.run(
        activities["inbox.access"], AccessInput(scope=inbox_scope(stores))
    )

    assert result.blob_ref and beats[-1][0]["records"] == sum(result.records.values())
    with pytest.raises(ApplicationError) as refused:
        await environment.run(
            activities["inbox.erase"],
            EraseInput(scope=inbox_scope(stores), rules=[EraseRule(category="call_recordings")]),
        )
    assert refused.value.non_retryable


# --- locate: which customers hold an end user who wrote to the group directly --------------

STRANGER = [
    Identity(type=IdentityType.PHONE, value="+999000000001"),
    Identity(type=IdentityType.EMAIL, value="nobody@locate.invalid"),
    Identity(type=IdentityType.CHANNEL_ID, value="whatsapp:999000000001"),
]


@dataclass(frozen=True)
class LocateCase:
    """A connector, whom to locate, the independent SQL counting their rows per customer,
    and the identity-first indexes the locate query must use."""

    target: Any
    identities: list[Identity]
    holders_sql: str
    params: tuple[Any, ...]
    indexes: tuple[str, ...]
    table: str
    module: Any


def locate_case(stores: Stores, name: str) -> LocateCase:
    if name == "voice":
        user = stores.subjects.voice
        return LocateCase(
            stores.voice,
            phone_only(user),
            "SELECT customer_account, COUNT(*) FROM calls WHERE end_user_phone = ? "
            "AND anonymised_at IS NULL GROUP BY customer_account",
            (user.phone,),
            ("ix_calls_locate_phone",),
            "calls",
            voice,
        )
    user = stores.subjects.inbox if name == "inbox" else stores.subjects.flow
    table = "conversations" if name == "inbox" else "invocations"
    match = INBOX_MATCH if name == "inbox" else FLOW_MATCH
    return LocateCase(
        stores.inbox if name == "inbox" else stores.flow,
        every_identity(user),
        f"SELECT customer_account, COUNT(*) FROM {table} WHERE {match} "
        "AND anonymised_at IS NULL GROUP BY customer_account",
        (user.phone, user.email.lower(), *user.channel_ids.values()),
        tuple(f"ix_{table}_locate_{kind}" for kind in ("phone", "email", "channel_id")),
        table,
        inbox if name == "inbox" else flow_builder,
    )


def operation_log_size(stores: Stores, name: str) -> int:
    return int(rows(stores.db(name), "SELECT COUNT(*) FROM operation_log")[0][0])


@pytest.mark.parametrize("name", ["voice", "inbox", "flow_builder"])
def test_locate_names_exactly_the_customers_holding_the_subject(stores: Stores, name: str) -> None:
    case = locate_case(stores, name)
    counts = {r[0]: r[1] for r in rows(stores.db(name), case.holders_sql, *case.params)}
    assert len(counts) >= 2, "the seed must give the subject records at several customers"
    logged = operation_log_size(stores, name)

    located = case.target.locate(scope("REQ-L001", case.identities, None))

    assert located.connector == name
    assert located.customers == sorted(c for c, n in counts.items() if n > 0)
    assert set(located.model_dump()) == {"connector", "customers"}, "no records, only accounts"
    confined = case.target.locate(scope("REQ-L002", case.identities, located.customers[-1]))
    assert confined.customers == located.customers, "the scope's customer is ignored"
    assert operation_log_size(stores, name) == logged, "read-only: not in the operation log"


@pytest.mark.parametrize("name", ["voice", "inbox", "flow_builder"])
def test_locate_finds_no_customer_for_an_unknown_identity(stores: Stores, name: str) -> None:
    case = locate_case(stores, name)
    assert case.target.locate(scope("REQ-L003", STRANGER, None)).customers == []
    assert case.target.locate(scope("REQ-L004", [], None)).customers == []


@pytest.mark.parametrize("name", ["voice", "inbox", "flow_builder"])
def test_locate_uses_the_identity_first_indexes(stores: Stores, name: str) -> None:
    case = locate_case(stores, name)
    statement = case.module.locate_holders(scope("REQ-L005", case.identities, None))

    plan = explain(case.target.store.engine, statement)

    for index in case.indexes:
        assert f"INDEX {index} (" in plan, plan
    assert f"SCAN {case.table}" not in plan, plan


# --- sweep ---------------------------------------------------------------------------------


def sweep_call(categories: list[str], sweep_id: str = "SWEEP-1") -> SweepInput:
    rules = [EraseRule(category=c, before=CUTOFF) for c in categories]
    return SweepInput(sweep_id=sweep_id, as_of=NOW, rules=rules)


def assert_swept_once(connector: Any, database: Path, call: SweepInput, first: Any) -> None:
    """A retry is already done and changes nothing; a new sweep finds nothing left; a rule
    without a cutoff is refused."""
    snapshot = dump(database)
    again = connector.sweep(call.model_copy(update={"as_of": NOW + timedelta(hours=1)}))
    assert again.already_done and not first.already_done
    assert again.anonymised == first.anonymised
    assert dump(database) == snapshot
    fresh = connector.sweep(call.model_copy(update={"sweep_id": "SWEEP-NEW"}))
    assert fresh.anonymised == dict.fromkeys(first.anonymised, 0)
    unbounded = [EraseRule(category=call.rules[0].category)]
    with pytest.raises(ConnectorInputError):
        connector.sweep(SweepInput(sweep_id="SWEEP-ALL", as_of=NOW, rules=unbounded))


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutoffs, "SWEEP_CHUNK_ROWS", 41)  # several chunks on the seeded stores


@pytest.mark.usefixtures("small_chunks")
def test_voice_sweep_anonymises_every_customers_old_calls(stores: Stores) -> None:
    database = stores.db("voice")
    calls = rows(database, "SELECT * FROM calls WHERE anonymised_at IS NULL ORDER BY id")
    old, new = older(calls, "started_at"), newer(calls, "started_at")
    assert len({r["customer_account"] for r in old}) > 1 and new
    old_refs = [r["recording_ref"] for r in old if r["recording_ref"]]
    new_refs = [r["recording_ref"] for r in new if r["recording_ref"]]
    new_recordings = recordings(database, new_refs)
    call = sweep_call(VOICE_CATEGORIES)

    result = stores.voice.sweep(call)

    assert result.anonymised == {
        "call_recordings": len(old_refs),
        "location_data": sum(1 for r in old if r["cell_id"]),
        "phone_number": len(old),
        "traffic_data": len(old),
    }
    after = {r["id"]: r for r in rows(database, f"SELECT * FROM calls WHERE id IN ({ids(old)})")}
    for before in old:
        swept = after[before["id"]]
        assert swept["end_user_phone"] == keyed_hash(SECRET, before["end_user_phone"], "pseudonym")
        assert stored_utc(swept["anonymised_at"]) == NOW
        assert swept["recording_ref"] is swept["cell_id"] is swept["route"] is None
        assert stored_utc(swept["started_at"]) == stored_utc(before["started_at"]).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        kept = ("customer_account", "duration_s", "country_ended", "status", "caller_id")
        assert [swept[c] for c in kept] == [before[c] for c in kept]
    assert recordings(database, old_refs) == []
    assert recordings(database, new_refs) == new_recordings
    still = rows(database, f"SELECT * FROM calls WHERE id IN ({ids(new)}) ORDER BY id")
    assert [tuple(r) for r in still] == [tuple(r) for r in new]
    assert_swept_once(stores.voice, database, call, result)


def test_voice_sweep_rules_confined_to_countries_reach_only_their_calls(stores: Stores) -> None:
    user, database = stores.subjects.voice, stores.db("voice")
    end_in_italy(database, voice_calls(database, user, user.customers[0])[::2])
    calls = rows(database, "SELECT * FROM calls ORDER BY id")
    italy_cutoff = CUTOFF - timedelta(days=120)
    reached = {
        r["id"]
        for r in calls
        if stored_utc(r["started_at"]) < (italy_cutoff if r["country_ended"] == "IT" else CUTOFF)
    }
    rules = [
        EraseRule(category="traffic_data", before=italy_cutoff, countries_ended=["IT"]),
        EraseRule(category="traffic_data", before=CUTOFF, countries_ended=list(voice.COUNTRIES)),
    ]

    result = stores.voice.sweep(SweepInput(sweep_id="SWEEP-VC", as_of=NOW, rules=rules))

    assert result.anonymised["traffic_data"] == len(reached)
    swept = rows(database, "SELECT id FROM calls WHERE anonymised_at IS NOT NULL")
    assert {r["id"] for r in swept} == reached


def test_numbers_sweep_holds_nothing(stores: Stores) -> None:
    result = stores.numbers.sweep(SweepInput(sweep_id="SWEEP-N", as_of=NOW, rules=[]))
    assert result.anonymised == {} and not result.already_done
    assert stores.numbers.sweep(SweepInput(sweep_id="SWEEP-N", as_of=NOW, rules=[])).already_done
    with pytest.raises(ConnectorInputError):
        stores.numbers.sweep(
            SweepInput(sweep_id="SWEEP-N2", as_of=NOW, rules=[EraseRule(category="phone_number")])
        )


@pytest.mark.usefixtures("small_chunks")
def test_inbox_sweep_unlinks_every_customers_old_conversations(stores: Stores) -> None:
    database = stores.db("inbox")
    conversations = rows(
        database, "SELECT * FROM conversations WHERE anonymised_at IS NULL ORDER BY id"
    )
    old, new = older(conversations, "opened_at"), newer(conversations, "opened_at")
    assert len({r["customer_account"] for r in old}) > 1 and new
    old_messages = inbox_messages(database, old)
    kept_messages = newer(inbox_messages(database, new), "sent_at")
    gone_in_new = older(inbox_messages(database, new), "sent_at")
    call = sweep_call(INBOX_CATEGORIES)

    result = stores.inbox.sweep(call)

    gone = old_messages + gone_in_new
    assert result.anonymised == {
        "contact_identifiers": len(old),
        "conversation_content": sum(1 for m in gone if not m["internal"]),
        "agent_notes": sum(1 for m in gone if m["internal"]),
    }
    for before in old:
        after = rows(database, "SELECT * FROM conversations WHERE id = ?", before["id"])[0]
        assert after["contact_phone"] is after["contact_email"] is None
        assert after["contact_channel_id"] is after["contact_name"] is None
        assert stored_utc(after["anonymised_at"]) == NOW
        kept = ("channel", "agent_id", "opened_at", "closed_at", "customer_account")
        assert [after[c] for c in kept] == [before[c] for c in kept]
    assert inbox_messages(database, old) == []
    still = rows(database, f"SELECT * FROM conversations WHERE id IN ({ids(new)}) ORDER BY id")
    assert [tuple(r) for r in still] == [tuple(r) for r in new]
    assert [tuple(m) for m in inbox_messages(database, new)] == [tuple(m) for m in kept_messages]
    assert_swept_once(stores.inbox, database, call, result)


@pytest.mark.usefixtures("small_chunks")
def test_flow_sweep_unlinks_every_customers_old_invocations(stores: Stores) -> None:
    database = stores.db("flow_builder")
    invocations = rows(
        database, "SELECT * FROM invocations WHERE anonymised_at IS NULL ORDER BY id"
    )
    old, new = older(invocations, "invoked_at"), newer(invocations, "invoked_at")
    assert len({r["customer_account"] for r in old}) > 1 and new
    call = sweep_call(FLOW_CATEGORIES)

    result = stores.flow.sweep(call)

    assert result.anonymised == {
        "invocation_identifiers": len(old),
        "channel_data": sum(1 for r in old if r["payload"] is not None),
    }
    for before in old:
        after = rows(database, "SELECT * FROM invocations WHERE id = ?", before["id"])[0]
        assert after["contact_email"] is after["contact_phone"] is None
        assert after["contact_channel_id"] is after["payload"] is after["step_outputs"] is None
        assert stored_utc(after["anonymised_at"]) == NOW
        steps = json.loads(after["step_results"])
        assert steps == [
            {"step": s["step"], "status": s["status"]} for s in json.loads(before["step_results"])
        ]
        kept = ("flow_id", "invoked_at", "trigger_channel", "customer_account")
        assert [after[c] for c in kept] == [before[c] for c in kept]
    still = rows(database, f"SELECT * FROM invocations WHERE id IN ({ids(new)}) ORDER BY id")
    assert [tuple(r) for r in still] == [tuple(r) for r in new]
    assert_swept_once(stores.flow, database, call, result)
