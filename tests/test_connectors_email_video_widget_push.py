"""The Email (SparkPost), Video (24sessions), Omnichannel Widget and Push (Pusher) connectors
against their real SQLite stores, seeded from the shared fictional population."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors import email, push, video, widget
from connectors.kit import cutoffs
from connectors.kit.activities import connector_activities
from connectors.kit.errors import ConnectorInputError
from connectors.population import Population, make_population
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
REGISTRY = Path(__file__).parent.parent / "connectors" / "registry.yaml"
MODULES = {"email": email, "video": video, "widget": widget, "push": push}
CONNECTORS = {
    "email": email.EmailConnector,
    "video": video.VideoConnector,
    "widget": widget.WidgetConnector,
    "push": push.PushConnector,
}
BASES: dict[str, Any] = {
    "email": email.EmailBase,
    "video": video.VideoBase,
    "widget": widget.WidgetBase,
    "push": push.PushBase,
}
EMAIL, PHONE, CHANNEL = IdentityType.EMAIL, IdentityType.PHONE, IdentityType.CHANNEL_ID


@dataclass(frozen=True)
class Subject:
    identities: tuple[tuple[IdentityType, str], ...]
    controller: str  # the customer acting for its end user
    others: tuple[str, ...]  # other customers holding records of the same identity

    def scope(self, request_id: str = "REQ-0001", *, customer: bool = True) -> Scope:
        """The controller's instruction about its end user (``customer=False``: no customer
        account named)."""
        return Scope(
            request_id=request_id,
            identities=[Identity(type=kind, value=value) for kind, value in self.identities],
            customer_account=self.controller if customer else None,
            as_of=NOW,
        )

    def adding(self, *identities: tuple[IdentityType, str]) -> Subject:
        return Subject((*self.identities, *identities), self.controller, self.others)

    def value(self, kind: IdentityType) -> str:
        return next(value for k, value in self.identities if k is kind)


@dataclass
class Stores:
    folder: Path
    blobs: LocalBlobStore
    connectors: dict[str, Any]
    subjects: dict[str, Subject]

    def rows(self, name: str, sql: str, *params: Any) -> list[dict[str, Any]]:
        return query(self.folder / "connectors" / f"{name}.db", sql, *params)

    def dump(self, name: str) -> dict[str, dict[int, tuple[Any, ...]]]:
        """Every data table's rows by id (not the operation log or restrictions)."""
        tables = [table.name for table in BASES[name].metadata.sorted_tables]
        return {
            table: {
                row["id"]: tuple(row.values()) for row in self.rows(name, f"SELECT * FROM {table}")
            }
            for table in tables
            if table not in ("operation_log", "restrictions")
        }

    def export(self, ref: str) -> list[dict[str, Any]]:
        with self.blobs.open_reader(ref) as file:
            return [json.loads(line) for line in file]


def query(database: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(database)) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(sql, params).fetchall()]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def day(text: str) -> datetime:
    return utc(text).replace(hour=0, minute=0, second=0, microsecond=0)


def marks(sql_values: list[Any]) -> str:
    return ",".join("?" * len(sql_values))


def changed_ids(
    before: dict[str, dict[int, tuple[Any, ...]]], after: dict[str, dict[int, tuple[Any, ...]]]
) -> dict[str, set[int]]:
    """Per table, the ids of rows changed, removed or added."""
    return {
        table: {
            row_id
            for row_id in rows.keys() | after[table].keys()
            if rows.get(row_id) != after[table].get(row_id)
        }
        for table, rows in before.items()
    }


# --- stores and subjects -------------------------------------------------------------------


def _open(folder: Path) -> tuple[LocalBlobStore, dict[str, Any]]:
    blobs = LocalBlobStore(folder / "blobs")
    return blobs, {
        name: kind(f"sqlite:///{folder / 'connectors' / f'{name}.db'}", blobs, SECRET)
        for name, kind in CONNECTORS.items()
    }


@pytest.fixture(scope="module")
def population() -> Population:
    return make_population(people=80, customers=6, seed=42)


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, population: Population
) -> tuple[Path, dict[str, int], dict[str, Subject]]:
    """Seed once; each test gets its own copy of the store files."""
    folder = tmp_path_factory.mktemp("seeded")
    _, connectors = _open(folder)
    written = {name: MODULES[name].seed(c, population, now=NOW) for name, c in connectors.items()}
    for connector in connectors.values():
        connector.store.engine.dispose()
    databases = {name: folder / "connectors" / f"{name}.db" for name in CONNECTORS}
    subjects = {
        "email": _email_subject(databases["email"]),
        "video": _video_subject(databases["video"]),
        "widget": _widget_subject(databases["widget"], population),
        "push": _push_subject(databases["push"]),
        "push_own_id": _push_own_id_subject(databases["push"]),
    }
    return folder, written, subjects


@pytest.fixture
def stores(seeded: tuple[Path, dict[str, int], dict[str, Subject]], tmp_path: Path) -> Stores:
    template, _, subjects = seeded
    shutil.copytree(template / "connectors", tmp_path / "connectors")
    blobs, connectors = _open(tmp_path)
    return Stores(tmp_path, blobs, connectors, subjects)


def _pick(
    holdings: dict[str, dict[str, list[datetime]]],
    kind: IdentityType,
    also: Callable[[str, str], bool] = lambda value, customer: True,
) -> Subject:
    """The first identity (in order) held by two or more customers, where one customer's
    records fall on both sides of the cutoff (and meet ``also``): that customer is the
    controller."""
    for value in sorted(holdings):
        customers = holdings[value]
        controller = next(
            (
                c
                for c in sorted(customers)
                if min(customers[c]) < CUTOFF <= max(customers[c]) and also(value, c)
            ),
            None,
        )
        if len(customers) >= 2 and controller is not None:
            others = tuple(sorted(set(customers) - {controller}))
            return Subject(((kind, value),), controller, others)
    raise AssertionError("the seed must give some end user records at two customers")


def _group(rows: list[dict[str, Any]], key: str, date: str) -> dict[str, dict[str, list[datetime]]]:
    grouped: dict[str, dict[str, list[datetime]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        grouped[row[key]][row["customer_account"]].append(utc(row[date]))
    return grouped


def _email_subject(database: Path) -> Subject:
    """An address with a lapsed entry (all activity before the cutoff) and an active one."""
    rows = query(
        database,
        "SELECT r.customer_account, lower(r.email) AS email, MAX(r.created_at,"
        " COALESCE((SELECT MAX(sent_at) FROM sends WHERE recipient_id = r.id), ''),"
        " COALESCE((SELECT MAX(occurred_at) FROM events WHERE recipient_id = r.id), ''))"
        " AS latest FROM recipients r",
    )
    return _pick(_group(rows, "email", "latest"), EMAIL)


def _video_subject(database: Path) -> Subject:
    rows = query(
        database,
        "SELECT v.customer_account, lower(v.email) AS email, m.scheduled_at"
        " FROM visitors v JOIN meetings m ON m.id = v.meeting_id",
    )
    subject = _pick(_group(rows, "email", "scheduled_at"), EMAIL)
    phones = query(
        database,
        "SELECT DISTINCT phone FROM visitors WHERE lower(email) = ? AND phone IS NOT NULL",
        subject.value(EMAIL),
    )
    return subject.adding((PHONE, phones[0]["phone"]))


def _widget_subject(database: Path, population: Population) -> Subject:
    """A person with sessions on both sides of the cutoff, some of them without an email
    address (found by phone number or channel id only)."""
    person: dict[str, str] = {}
    for user in population.end_users:
        person |= dict.fromkeys([user.email, user.phone, *user.channel_ids.values()], user.email)
    rows = [
        row | {"person": person[row["email"] or row["phone"] or row["channel_id"]]}
        for row in query(database, "SELECT * FROM widget_sessions")
    ]
    without_email = {(row["person"], row["customer_account"]) for row in rows if not row["email"]}
    subject = _pick(
        _group(rows, "person", "started_at"),
        EMAIL,
        lambda value, customer: (value, customer) in without_email,
    )
    user = next(u for u in population.end_users if u.email == subject.value(EMAIL))
    channels = tuple((CHANNEL, value) for value in sorted(user.channel_ids.values()))
    return subject.adding((PHONE, user.phone), *channels)


def _push_subject(database: Path) -> Subject:
    rows = query(
        database, "SELECT customer_account, user_id, connected_at FROM channel_connections"
    )
    by_email = {k: v for k, v in _group(rows, "user_id", "connected_at").items() if "@" in k}
    return _pick(by_email, EMAIL)


def _push_own_id_subject(database: Path) -> Subject:
    rows = query(
        database, "SELECT customer_account, user_id, connected_at FROM channel_connections"
    )
    own = {k: v for k, v in _group(rows, "user_id", "connected_at").items() if "@" not in k}
    value, customers = min(own.items())
    return Subject(((CHANNEL, f"pusher:{value}"),), next(iter(customers)), ())


# --- seed ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONNECTORS)
def test_seed_is_deterministic_and_shares_end_users_between_customers(
    stores: Stores,
    seeded: tuple[Path, dict[str, int], dict[str, Subject]],
    population: Population,
    name: str,
) -> None:
    before = stores.dump(name)

    again = MODULES[name].seed(stores.connectors[name], population, now=NOW)

    assert again == seeded[1][name] == sum(len(rows) for rows in before.values())
    assert stores.dump(name) == before
    assert stores.subjects[name].others, "the same end user must be held by another customer"


# --- discover and access -------------------------------------------------------------------


def holding_map(stores: Stores, name: str, scope: Scope) -> dict[str, Any]:
    return {h.category: h for h in stores.connectors[name].discover(scope).holdings}


def assert_holding(holding: Any, dates: list[datetime]) -> None:
    assert (holding.records, holding.earliest, holding.latest) == (
        len(dates),
        min(dates),
        max(dates),
    )


def email_rows(stores: Stores, customer: str, address: str) -> dict[str, list[dict[str, Any]]]:
    entries = stores.rows(
        "email",
        "SELECT * FROM recipients WHERE customer_account = ? AND lower(email) = ? ORDER BY id",
        customer,
        address,
    )
    ids = [row["id"] for row in entries]
    sends = stores.rows("email", f"SELECT * FROM sends WHERE recipient_id IN ({marks(ids)})", *ids)
    events = stores.rows(
        "email", f"SELECT * FROM events WHERE recipient_id IN ({marks(ids)})", *ids
    )
    return {"recipients": entries, "sends": sends, "events": events}


def latest_activity(rows: dict[str, list[dict[str, Any]]]) -> dict[int, datetime]:
    latest = {row["id"]: utc(row["created_at"]) for row in rows["recipients"]}
    for table, date in (("sends", "sent_at"), ("events", "occurred_at")):
        for row in rows[table]:
            latest[row["recipient_id"]] = max(latest[row["recipient_id"]], utc(row[date]))
    return latest


def test_email_discover_counts_and_dates(stores: Stores) -> None:
    subject = stores.subjects["email"]
    mine = email_rows(stores, subject.controller, subject.value(EMAIL))

    holdings = holding_map(stores, "email", subject.scope())

    latest = latest_activity(mine)
    contact = holdings["contact_details"]
    assert contact.records == len(mine["recipients"])
    assert contact.earliest == min(utc(r["created_at"]) for r in mine["recipients"])
    assert contact.latest == max(latest.values())
    segments = [utc(r["created_at"]) for r in mine["recipients"] if r["segment_data"]]
    assert ("segment_data" in holdings) == bool(segments)
    if segments:
        assert_holding(holdings["segment_data"], segments)
    assert_holding(holdings["usage_and_device"], [utc(r["occurred_at"]) for r in mine["events"]])
    content = [utc(r["sent_at"]) for r in mine["sends"] if r["subject"] or r["body"]]
    assert_holding(holdings["message_content"], content)


def test_email_access_exports_only_the_subjects_records_of_that_customer(stores: Stores) -> None:
    subject = stores.subjects["email"]
    mine = email_rows(stores, subject.controller, subject.value(EMAIL))
    elsewhere = email_rows(stores, subject.others[0], subject.value(EMAIL))
    assert elsewhere["recipients"], "the same address must be another customer's too"

    result = stores.connectors["email"].access(AccessInput(scope=subject.scope()))

    assert result.blob_ref == "blob:exports/REQ-0001/email.jsonl"
    records = stores.export(result.blob_ref)
    by_category = defaultdict(list)
    for record in records:
        by_category[record["category"]].append(record)
    assert {c: len(r) for c, r in by_category.items()} == result.records
    assert [r["recipient_id"] for r in by_category["contact_details"]] == [
        row["id"] for row in mine["recipients"]
    ]
    assert {r["customer_account"] for r in by_category["contact_details"]} == {subject.controller}
    assert {r["send_id"] for r in by_category["message_content"]} == {
        row["id"] for row in mine["sends"] if row["subject"] or row["body"]
    }
    assert {r["event_id"] for r in by_category["usage_and_device"]} == {
        row["id"] for row in mine["events"]
    }
    foreign = {row["id"] for row in elsewhere["recipients"]}
    assert not foreign & {record["recipient_id"] for record in records}


def video_visits(stores: Stores, customer: str, subject: Subject) -> list[dict[str, Any]]:
    return stores.rows(
        "video",
        "SELECT v.*, m.scheduled_at, m.description, m.review, m.summary, m.recording_ref "
        "FROM visitors v JOIN meetings m ON m.id = v.meeting_id "
        "WHERE v.customer_account = ? AND (lower(v.email) = ? OR v.phone = ?) ORDER BY v.id",
        customer,
        subject.value(EMAIL),
        subject.value(PHONE),
    )


def has_details(row: dict[str, Any]) -> bool:
    return any(row[field] is not None for field in video.DETAIL_FIELDS)


def test_video_discover_counts_and_dates(stores: Stores) -> None:
    subject = stores.subjects["video"]
    visits = video_visits(stores, subject.controller, subject)

    holdings = holding_map(stores, "video", subject.scope())

    assert_holding(holdings["visitor_details"], [utc(v["scheduled_at"]) for v in visits])
    detailed = [utc(v["scheduled_at"]) for v in visits if has_details(v)]
    assert_holding(holdings["meeting_details"], detailed)
    recorded = [utc(v["scheduled_at"]) for v in visits if v["recording_ref"]]
    assert ("recordings" in holdings) == bool(recorded)
    if recorded:
        assert_holding(holdings["recordings"], recorded)


def test_video_access_exports_only_the_subjects_visits_of_that_customer(stores: Stores) -> None:
    subject = stores.subjects["video"]
    visits = video_visits(stores, subject.controller, subject)
    elsewhere = video_visits(stores, subject.others[0], subject)
    assert elsewhere

    result = stores.connectors["video"].access(AccessInput(scope=subject.scope()))

    records = stores.export(result.blob_ref or "")
    assert {r["customer_account"] for r in records} == {subject.controller}
    visitors = [r for r in records if r["category"] == "visitor_details"]
    exported = sorted((r["visitor_id"], r["name"], r["email"], r["phone"]) for r in visitors)
    assert exported == [(v["id"], v["name"], v["email"], v["phone"]) for v in visits]
    recordings = {r["recording_ref"] for r in records if r["category"] == "recordings"}
    assert recordings == {v["recording_ref"] for v in visits if v["recording_ref"]}
    assert result.records["meeting_details"] == sum(1 for v in visits if has_details(v))
    assert not {v["meeting_id"] for v in elsewhere} & {r["meeting_id"] for r in records}


def widget_sessions(stores: Stores, customer: str, subject: Subject) -> list[dict[str, Any]]:
    channels = [value for kind, value in subject.identities if kind is CHANNEL]
    return stores.rows(
        "widget",
        "SELECT * FROM widget_sessions WHERE customer_account = ? AND (lower(email) = ? "
        f"OR phone = ? OR channel_id IN ({marks(channels)})) AND anonymised_at IS NULL "
        "ORDER BY id",
        customer,
        subject.value(EMAIL),
        subject.value(PHONE),
        *channels,
    )


def test_widget_discover_and_access_find_the_sessions_of_any_identity(stores: Stores) -> None:
    subject = stores.subjects["widget"]
    sessions = widget_sessions(stores, subject.controller, subject)
    assert any(s["email"] is None for s in sessions), "some sessions gave no email"

    holdings = holding_map(stores, "widget", subject.scope())
    result = stores.connectors["widget"].access(AccessInput(scope=subject.scope()))

    dates = [utc(s["started_at"]) for s in sessions]
    assert_holding(holdings["contact_identifiers"], dates)
    assert_holding(holdings["traffic_data"], dates)
    records = stores.export(result.blob_ref or "")
    assert result.records == {"contact_identifiers": len(sessions), "traffic_data": len(sessions)}
    assert {r["session_id"] for r in records} == {s["id"] for s in sessions}
    assert {r["customer_account"] for r in records} == {subject.controller}
    pages = {r["session_id"]: r["pages"] for r in records if r["category"] == "traffic_data"}
    assert pages == {s["id"]: json.loads(s["pages"]) for s in sessions}


def push_rows(stores: Stores, customer: str, user_id: str) -> dict[str, list[dict[str, Any]]]:
    devices = stores.rows(
        "push",
        "SELECT * FROM beams_devices WHERE customer_account = ? AND user_id = ? ORDER BY id",
        customer,
        user_id,
    )
    connections = stores.rows(
        "push",
        "SELECT * FROM channel_connections WHERE customer_account = ? AND user_id = ? ORDER BY id",
        customer,
        user_id,
    )
    ids = [row["id"] for row in connections]
    events = stores.rows(
        "push", f"SELECT * FROM client_events WHERE connection_id IN ({marks(ids)})", *ids
    )
    return {"devices": devices, "connections": connections, "events": events}


def test_push_discover_counts_and_dates(stores: Stores) -> None:
    subject = stores.subjects["push"]
    mine = push_rows(stores, subject.controller, subject.value(EMAIL))

    holdings = holding_map(stores, "push", subject.scope())

    devices = [utc(d["registered_at"]) for d in mine["devices"]]
    with_ip = [utc(c["connected_at"]) for c in mine["connections"] if c["ip"]]
    assert_holding(holdings["device_and_ip"], devices + with_ip)
    assert_holding(holdings["traffic_data"], [utc(c["connected_at"]) for c in mine["connections"]])
    content = [utc(e["sent_at"]) for e in mine["events"] if e["data"]]
    assert_holding(holdings["message_content"], content)


def test_push_access_exports_only_the_subjects_records_of_that_customer(stores: Stores) -> None:
    subject = stores.subjects["push"]
    mine = push_rows(stores, subject.controller, subject.value(EMAIL))
    assert push_rows(stores, subject.others[0], subject.value(EMAIL))["connections"]

    result = stores.connectors["push"].access(AccessInput(scope=subject.scope()))

    records = stores.export(result.blob_ref or "")
    devices = {r["device_id"] for r in records if "device_id" in r}
    assert devices == {d["device_id"] for d in mine["devices"]}
    traffic = [r for r in records if r["category"] == "traffic_data"]
    assert [r["connection_id"] for r in traffic] == [c["id"] for c in mine["connections"]]
    assert {r["customer_account"] for r in records if "customer_account" in r} == {
        subject.controller
    }
    events = {r["event_id"]: r["data"] for r in records if r["category"] == "message_content"}
    assert events == {e["id"]: e["data"] for e in mine["events"] if e["data"]}
    assert result.records["device_and_ip"] == len(mine["devices"]) + sum(
        1 for c in mine["connections"] if c["ip"]
    )


def test_push_finds_a_customers_own_user_id_by_channel_id(stores: Stores) -> None:
    subject = stores.subjects["push_own_id"]
    user_id = subject.value(CHANNEL).removeprefix("pusher:")
    mine = push_rows(stores, subject.controller, user_id)

    holdings = holding_map(stores, "push", subject.scope())
    result = stores.connectors["push"].erase(
        EraseInput(scope=subject.scope(), rules=[EraseRule(category=c) for c in push.CATEGORIES])
    )

    assert holdings["traffic_data"].records == len(mine["connections"])
    assert result.erased["traffic_data"] == len(mine["connections"])
    assert result.retained == dict.fromkeys(push.CATEGORIES, 0)
    assert push_rows(stores, subject.controller, user_id) == {
        "devices": [],
        "connections": [],
        "events": [],
    }


# --- erase by rule -------------------------------------------------------------------------


def erase_by_rule(stores: Stores, name: str, request_id: str = "REQ-0001") -> Any:
    rules = [EraseRule(category=c, before=CUTOFF) for c in MODULES[name].CATEGORIES]
    call = EraseInput(scope=stores.subjects[name].scope(request_id), rules=rules)
    return stores.connectors[name].erase(call)


def test_email_erase_by_rule_anonymises_older_records_and_keeps_newer_and_others(
    stores: Stores,
) -> None:
    subject = stores.subjects["email"]
    address = subject.value(EMAIL)
    mine = email_rows(stores, subject.controller, address)
    elsewhere = {c: email_rows(stores, c, address) for c in subject.others}
    latest = latest_activity(mine)
    lapsed = [r for r in mine["recipients"] if latest[r["id"]] < CUTOFF]
    active = [r for r in mine["recipients"] if latest[r["id"]] >= CUTOFF]
    old_sends = [s for s in mine["sends"] if utc(s["sent_at"]) < CUTOFF]
    new_sends = [s for s in mine["sends"] if utc(s["sent_at"]) >= CUTOFF]
    old_events = [e for e in mine["events"] if utc(e["occurred_at"]) < CUTOFF]
    new_events = [e for e in mine["events"] if utc(e["occurred_at"]) >= CUTOFF]
    assert lapsed and active and old_sends and new_sends
    assert all(rows["recipients"] for rows in elsewhere.values())

    def older(entry: dict[str, Any]) -> bool:
        return entry in lapsed or utc(entry["created_at"]) < CUTOFF

    before = stores.dump("email")

    result = erase_by_rule(stores, "email")

    assert result.erased == {
        "contact_details": len(lapsed),
        "segment_data": sum(1 for r in mine["recipients"] if r["segment_data"] and older(r)),
        "usage_and_device": len(old_events),
        "message_content": sum(1 for s in old_sends if s["subject"] or s["body"]),
    }
    assert result.retained == {
        "contact_details": len(active),
        "segment_data": sum(1 for r in active if r["segment_data"] and not older(r)),
        "usage_and_device": len(new_events),
        "message_content": sum(1 for s in new_sends if s["subject"] or s["body"]),
    }
    after = stores.dump("email")
    pseudonym = keyed_hash(SECRET, address, "pseudonym")
    for row in stores.rows(
        "email",
        f"SELECT * FROM recipients WHERE id IN ({marks(lapsed)})",
        *[r["id"] for r in lapsed],
    ):
        assert (row["email"], row["name"], row["segment_data"]) == (pseudonym, None, None)
        assert row["anonymised_at"] is not None
    for row in stores.rows(
        "email",
        f"SELECT * FROM recipients WHERE id IN ({marks(active)})",
        *[r["id"] for r in active],
    ):
        assert row["email"].lower() == address and row["anonymised_at"] is None
    for send in old_sends:
        assert after["sends"][send["id"]][2:] == (send["campaign"], None, None, send["sent_at"])
    for event in old_events:
        row = stores.rows("email", "SELECT * FROM events WHERE id = ?", event["id"])[0]
        assert (row["type"], utc(row["occurred_at"])) == (event["type"], day(event["occurred_at"]))
        assert all(row[field] is None for field in email.USAGE_FIELDS)
    assert all(after["sends"][s["id"]] == before["sends"][s["id"]] for s in new_sends)
    assert all(after["events"][e["id"]] == before["events"][e["id"]] for e in new_events)
    assert {c: email_rows(stores, c, address) for c in subject.others} == elsewhere
    changed = changed_ids(before, after)
    assert changed["recipients"] <= {r["id"] for r in mine["recipients"]}
    assert changed["sends"] <= {s["id"] for s in mine["sends"]}
    assert changed["events"] <= {e["id"] for e in mine["events"]}
    holdings = holding_map(stores, "email", subject.scope("REQ-0002"))
    assert holdings["contact_details"].records == len(active)


def test_video_erase_by_rule_anonymises_older_visits_and_keeps_newer_and_others(
    stores: Stores,
) -> None:
    subject = stores.subjects["video"]
    visits = video_visits(stores, subject.controller, subject)
    older = [v for v in visits if utc(v["scheduled_at"]) < CUTOFF]
    newer = [v for v in visits if utc(v["scheduled_at"]) >= CUTOFF]
    elsewhere = {c: video_visits(stores, c, subject) for c in subject.others}
    assert older and newer and all(elsewhere.values())
    before = stores.dump("video")

    result = erase_by_rule(stores, "video")

    assert result.erased == {
        "visitor_details": len(older),
        "meeting_details": sum(1 for v in older if has_details(v)),
        "recordings": sum(1 for v in older if v["recording_ref"]),
    }
    assert result.retained == {
        "visitor_details": len(newer),
        "meeting_details": sum(1 for v in newer if has_details(v)),
        "recordings": sum(1 for v in newer if v["recording_ref"]),
    }
    after = stores.dump("video")
    for visit in older:
        row = stores.rows("video", "SELECT * FROM visitors WHERE id = ?", visit["id"])[0]
        assert all(row[field] is None for field in video.VISITOR_FIELDS)
        assert row["anonymised_at"] is not None and row["meeting_id"] == visit["meeting_id"]
        meeting = stores.rows("video", "SELECT * FROM meetings WHERE id = ?", visit["meeting_id"])
        assert meeting[0]["scheduled_at"] == visit["scheduled_at"]
        assert not has_details(meeting[0]) and meeting[0]["recording_ref"] is None
    for visit in newer:
        assert after["visitors"][visit["id"]] == before["visitors"][visit["id"]]
        assert after["meetings"][visit["meeting_id"]] == before["meetings"][visit["meeting_id"]]
    assert {c: video_visits(stores, c, subject) for c in subject.others} == elsewhere
    changed = changed_ids(before, after)
    assert changed["visitors"] <= {v["id"] for v in older}
    assert changed["meetings"] <= {v["meeting_id"] for v in older}


def test_widget_erase_by_rule_cuts_older_sessions_loose_and_keeps_newer_and_others(
    stores: Stores,
) -> None:
    subject = stores.subjects["widget"]
    sessions = widget_sessions(stores, subject.controller, subject)
    older = [s for s in sessions if utc(s["started_at"]) < CUTOFF]
    newer = [s for s in sessions if utc(s["started_at"]) >= CUTOFF]
    elsewhere = {c: widget_sessions(stores, c, subject) for c in subject.others}
    assert older and newer and all(elsewhere.values())
    before = stores.dump("widget")
    call = EraseInput(
        scope=subject.scope(),
        rules=[EraseRule(category="contact_identifiers", before=CUTOFF)],
    )

    result = stores.connectors["widget"].erase(call)

    assert result.erased == {"contact_identifiers": len(older), "traffic_data": len(older)}
    assert result.retained == {"contact_identifiers": len(newer)}
    for session in older:
        row = stores.rows("widget", "SELECT * FROM widget_sessions WHERE id = ?", session["id"])
        assert all(row[0][field] is None for field in (*widget.IDENTIFIER_FIELDS, "pages"))
        assert utc(row[0]["started_at"]) == day(session["started_at"])
        assert (row[0]["duration_seconds"], row[0]["page_count"]) == (
            session["duration_seconds"],
            session["page_count"],
        )
    after = stores.dump("widget")
    changed = changed_ids(before, after)
    assert changed["widget_sessions"] == {s["id"] for s in older}
    assert {c: widget_sessions(stores, c, subject) for c in subject.others} == elsewhere


def test_push_erase_by_rule_deletes_older_devices_and_keeps_newer_and_others(
    stores: Stores,
) -> None:
    subject = stores.subjects["push"]
    user_id = subject.value(EMAIL)
    mine = push_rows(stores, subject.controller, user_id)
    elsewhere = {c: push_rows(stores, c, user_id) for c in subject.others}
    old_devices = [d for d in mine["devices"] if utc(d["registered_at"]) < CUTOFF]
    old = [c for c in mine["connections"] if utc(c["connected_at"]) < CUTOFF]
    new = [c for c in mine["connections"] if utc(c["connected_at"]) >= CUTOFF]
    old_ids = {c["id"] for c in old}
    old_content = [
        e
        for e in mine["events"]
        if e["data"] and (e["connection_id"] in old_ids or utc(e["sent_at"]) < CUTOFF)
    ]
    assert old and new and all(rows["connections"] for rows in elsewhere.values())
    before = stores.dump("push")

    result = erase_by_rule(stores, "push")

    assert result.erased == {
        "device_and_ip": len(old_devices) + sum(1 for c in old if c["ip"]),
        "traffic_data": len(old),
        "message_content": len(old_content),
    }
    assert result.retained == {
        "device_and_ip": len(mine["devices"]) - len(old_devices) + sum(1 for c in new if c["ip"]),
        "traffic_data": len(new),
        "message_content": sum(1 for e in mine["events"] if e["data"]) - len(old_content),
    }
    after = stores.dump("push")
    assert set(before["beams_devices"]) - set(after["beams_devices"]) == {
        d["id"] for d in old_devices
    }
    pseudonym = keyed_hash(SECRET, user_id, "pseudonym")
    for connection in old:
        row = stores.rows(
            "push", "SELECT * FROM channel_connections WHERE id = ?", connection["id"]
        )
        assert (row[0]["user_id"], row[0]["socket_id"], row[0]["channel_name"], row[0]["ip"]) == (
            pseudonym,
            None,
            None,
            None,
        )
        assert utc(row[0]["connected_at"]) == day(connection["connected_at"])
    assert all(
        after["channel_connections"][c["id"]] == before["channel_connections"][c["id"]] for c in new
    )
    for event in old_content:
        assert after["client_events"][event["id"]][1:3] == (
            event["connection_id"],
            event["event_name"],
        )
        assert after["client_events"][event["id"]][3] is None
    assert {c: push_rows(stores, c, user_id) for c in subject.others} == elsewhere
    changed = changed_ids(before, after)
    assert changed["beams_devices"] == {d["id"] for d in old_devices}
    assert changed["channel_connections"] == old_ids
    assert changed["client_events"] == {e["id"] for e in old_content}


@pytest.mark.parametrize("name", CONNECTORS)
def test_erase_retry_is_already_done_and_changes_nothing(stores: Stores, name: str) -> None:
    first = erase_by_rule(stores, name)
    snapshot = stores.dump(name)

    retry = erase_by_rule(stores, name)

    assert retry.already_done and not first.already_done
    assert (retry.erased, retry.retained) == (first.erased, first.retained)
    assert stores.dump(name) == snapshot


@pytest.mark.parametrize("name", CONNECTORS)
def test_an_unknown_category_is_refused_without_its_data(stores: Stores, name: str) -> None:
    call = EraseInput(
        scope=stores.subjects[name].scope(), rules=[EraseRule(category="call_recordings")]
    )
    with pytest.raises(ConnectorInputError, match=f"{name} holds no category"):
        stores.connectors[name].erase(call)


# --- rectify -------------------------------------------------------------------------------


def test_email_rectify_corrects_name_and_address_of_that_customer_only(stores: Stores) -> None:
    subject = stores.subjects["email"]
    address = subject.value(EMAIL)
    mine = email_rows(stores, subject.controller, address)["recipients"]
    elsewhere = {c: email_rows(stores, c, address) for c in subject.others}
    corrections = [
        Correction(field="name", value="Corrected Name"),
        Correction(field="email", value="corrected.address@example.org"),
        Correction(field="job_title", value="Baker"),
    ]

    result = stores.connectors["email"].rectify(
        RectifyInput(scope=subject.scope(), corrections=corrections)
    )

    assert result.updated == {"name": sum(1 for r in mine if r["name"]), "email": len(mine)}
    assert result.unsupported_fields == ["job_title"]
    rows = stores.rows(
        "email", f"SELECT * FROM recipients WHERE id IN ({marks(mine)})", *[r["id"] for r in mine]
    )
    assert {r["email"] for r in rows} == {"corrected.address@example.org"}
    assert {r["name"] for r in rows} <= {"Corrected Name", None}
    assert {c: email_rows(stores, c, address) for c in subject.others} == elsewhere
    assert holding_map(stores, "email", subject.scope("REQ-0002")) == {}
    with pytest.raises(ConnectorInputError, match="corrected email is malformed"):
        stores.connectors["email"].rectify(
            RectifyInput(
                scope=subject.scope("REQ-0003"),
                corrections=[Correction(field="email", value="not-an-address")],
            )
        )


def test_video_rectify_corrects_visitor_details_where_held(stores: Stores) -> None:
    subject = stores.subjects["video"]
    visits = video_visits(stores, subject.controller, subject)
    corrections = [
        Correction(field="name", value="Corrected Name"),
        Correction(field="phone", value="+447700900999"),
    ]

    result = stores.connectors["video"].rectify(
        RectifyInput(scope=subject.scope(), corrections=corrections)
    )

    with_phone = [v for v in visits if v["phone"]]
    assert result.updated == {"name": len(visits), "phone": len(with_phone)}
    rows = stores.rows(
        "video", f"SELECT * FROM visitors WHERE id IN ({marks(visits)})", *[v["id"] for v in visits]
    )
    assert {r["name"] for r in rows} == {"Corrected Name"}
    assert sorted(r["id"] for r in rows if r["phone"] == "+447700900999") == sorted(
        v["id"] for v in with_phone
    )


def test_widget_rectify_corrects_preferred_channel_and_refuses_an_unknown_one(
    stores: Stores,
) -> None:
    subject = stores.subjects["widget"]
    sessions = widget_sessions(stores, subject.controller, subject)
    corrections = [
        Correction(field="preferred_channel", value="whatsapp"),
        Correction(field="email", value="corrected.address@example.org"),
    ]

    result = stores.connectors["widget"].rectify(
        RectifyInput(scope=subject.scope(), corrections=corrections)
    )

    with_email = [s for s in sessions if s["email"]]
    assert result.updated == {"preferred_channel": len(sessions), "email": len(with_email)}
    rows = stores.rows(
        "widget",
        f"SELECT * FROM widget_sessions WHERE id IN ({marks(sessions)})",
        *[s["id"] for s in sessions],
    )
    assert {r["preferred_channel"] for r in rows} == {"whatsapp"}
    assert {r["email"] for r in rows} <= {"corrected.address@example.org", None}
    with pytest.raises(ConnectorInputError, match="preferred_channel"):
        stores.connectors["widget"].rectify(
            RectifyInput(
                scope=subject.scope("REQ-0002"),
                corrections=[Correction(field="preferred_channel", value="pigeon")],
            )
        )


# --- restrict, scoping and indexes ---------------------------------------------------------


@pytest.mark.parametrize("name", CONNECTORS)
def test_restrict_and_lift(stores: Stores, name: str) -> None:
    subject, connector = stores.subjects[name], stores.connectors[name]
    identity = subject.scope().identities[0]

    def is_restricted(customer: str) -> bool:
        return bool(connector.is_restricted(customer, identity))

    restricted = connector.restrict(FlagInput(scope=subject.scope("REQ-0003")))
    retried = connector.restrict(FlagInput(scope=subject.scope("REQ-0003")))

    assert restricted.records > 0 and not restricted.already_done
    assert retried.already_done and retried.records == restricted.records
    assert is_restricted(subject.controller) and not is_restricted(subject.others[0])
    stored = stores.rows(name, "SELECT * FROM restrictions")
    assert len(stored) == len(subject.identities)
    values = {value for _, value in subject.identities}
    assert not any(values & set(row.values()) for row in stored)

    lifted = connector.restrict(FlagInput(scope=subject.scope("REQ-0003"), lift=True))

    assert not lifted.already_done and lifted.records == restricted.records
    assert not is_restricted(subject.controller)


CORRECTED_IDENTITIES = {
    "email": [(EMAIL, "corrected.address@example.org")],
    "video": [(EMAIL, "corrected.address@example.org"), (PHONE, "+447700900999")],
    "widget": [(PHONE, "+447700900998")],
}


def rectify_identities(stores: Stores, name: str, request_id: str) -> list[Identity]:
    """Correct the subject's identities at its controller; the corrected identities."""
    corrected = [Identity(type=kind, value=value) for kind, value in CORRECTED_IDENTITIES[name]]
    corrections = [Correction(field=i.type.value, value=i.value) for i in corrected]
    scope = stores.subjects[name].scope(request_id)
    result = stores.connectors[name].rectify(RectifyInput(scope=scope, corrections=corrections))
    assert all(result.updated[i.type.value] > 0 for i in corrected)
    return corrected


@pytest.mark.parametrize("name", CORRECTED_IDENTITIES)
def test_a_rectified_identity_stays_restricted(stores: Stores, name: str) -> None:
    subject, connector = stores.subjects[name], stores.connectors[name]
    connector.restrict(FlagInput(scope=subject.scope("REQ-0003")))

    corrected = rectify_identities(stores, name, "REQ-0004")

    for identity in corrected:
        assert connector.is_restricted(subject.controller, identity)
        assert not any(connector.is_restricted(other, identity) for other in subject.others)
    assert connector.is_restricted(subject.controller, subject.scope().identities[0])
    stored = stores.rows(name, "SELECT * FROM restrictions")
    assert len(stored) == len(subject.identities) + len(corrected)
    values = {value for _, value in (*subject.identities, *CORRECTED_IDENTITIES[name])}
    assert not any(values & set(row.values()) for row in stored)


@pytest.mark.parametrize("name", CORRECTED_IDENTITIES)
def test_rectifying_an_unrestricted_identity_restricts_nothing(stores: Stores, name: str) -> None:
    subject, connector = stores.subjects[name], stores.connectors[name]
    connector.restrict(FlagInput(scope=subject.scope("REQ-0003")))
    connector.restrict(FlagInput(scope=subject.scope("REQ-0003"), lift=True))

    corrected = rectify_identities(stores, name, "REQ-0004")

    assert not any(connector.is_restricted(subject.controller, i) for i in corrected)
    assert len(stores.rows(name, "SELECT * FROM restrictions")) == len(subject.identities)


@pytest.mark.parametrize("name", CONNECTORS)
def test_nothing_is_found_without_a_customer_account(stores: Stores, name: str) -> None:
    connector, no_customer = stores.connectors[name], stores.subjects[name].scope(customer=False)
    snapshot = stores.dump(name)

    discovery = connector.discover(no_customer)
    access = connector.access(AccessInput(scope=no_customer))
    rules = [EraseRule(category=c) for c in MODULES[name].CATEGORIES]
    erase = connector.erase(EraseInput(scope=no_customer, rules=rules))
    restrict = connector.restrict(FlagInput(scope=no_customer))

    assert discovery.holdings == [] and access.blob_ref is None and access.records == {}
    assert erase.erased == {} and restrict.records == 0
    assert stores.dump(name) == snapshot
    assert stores.rows(name, "SELECT * FROM restrictions") == []


def subject_lookups(stores: Stores, name: str) -> list[tuple[Any, list[str]]]:
    """Each subject lookup with the index steps its query plan must show."""
    subject = stores.subjects[name]
    customer, address = subject.controller, subject.value(EMAIL)
    if name == "email":
        found = email.email_subject(subject.scope())
        assert found is not None
        return [
            (
                email.subject_recipients(customer, [address]),
                ["ix_recipients_subject (customer_account=? AND <expr>=?)"],
            ),
            (
                select(email.Send).where(*email.part(found, "message_content").where),
                ["ix_sends_recipient (recipient_id=?)", "ix_recipients_subject"],
            ),
        ]
    if name == "video":
        return [
            (
                video.subject_visitors(customer, [address], [subject.value(PHONE)]),
                [
                    "ix_visitors_email (customer_account=? AND <expr>=?)",
                    "ix_visitors_phone (customer_account=? AND phone=?)",
                ],
            )
        ]
    if name == "widget":
        return [
            (
                widget.subject_sessions(customer, subject.scope().identities),
                [
                    "ix_widget_sessions_email (customer_account=? AND <expr>=?)",
                    "ix_widget_sessions_phone (customer_account=? AND phone=?)",
                    "ix_widget_sessions_channel (customer_account=? AND channel_id=?)",
                ],
            )
        ]
    return [
        (
            push.subject_devices(customer, [address]),
            ["ix_beams_devices_subject (customer_account=? AND user_id=?)"],
        ),
        (
            push.subject_connections(customer, [address]),
            ["ix_channel_connections_subject (customer_account=? AND user_id=?)"],
        ),
    ]


@pytest.mark.parametrize("name", CONNECTORS)
def test_subject_lookups_use_the_composite_indexes(stores: Stores, name: str) -> None:
    engine = stores.connectors[name].store.engine
    for statement, steps in subject_lookups(stores, name):
        plan = explain(engine, statement)
        for step in steps:
            assert step in plan, plan
        assert "SCAN" not in plan.replace("SCAN CONSTANT ROW", ""), plan


def explain(engine: Any, statement: Any) -> str:
    sql = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        steps = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
    return "\n".join(step[-1] for step in steps)


# --- the registry --------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONNECTORS)
def test_registry_entry_matches_the_connectors_activities(stores: Stores, name: str) -> None:
    entry = load_registry(REGISTRY).get(name)
    connector = stores.connectors[name]
    names = {activity_name(fn) for fn in connector_activities(connector)}

    assert names == {f"{name}.{operation.value}" for operation in entry.operations}
    assert entry.task_queue == f"dsr-connector-{name}" and entry.role.value == "end_user"


def activity_name(fn: Any) -> str:
    return str(fn.__temporal_activity_definition.name)


# --- locate: which customers hold an end user who wrote to the group directly --------------

STRANGER = (
    (EMAIL, "nobody@locate.invalid"),
    (PHONE, "+999000000001"),
    (CHANNEL, "pusher:nobody-at-all"),
    (CHANNEL, "whatsapp:999000000001"),
)
LOCATE_INDEXES = {
    "email": {"recipients": ["ix_recipients_locate_email"]},
    "video": {"visitors": ["ix_visitors_locate_email", "ix_visitors_locate_phone"]},
    "widget": {
        "widget_sessions": [
            "ix_widget_sessions_locate_email",
            "ix_widget_sessions_locate_phone",
            "ix_widget_sessions_locate_channel",
        ]
    },
    "push": {
        "beams_devices": ["ix_beams_devices_locate_user"],
        "channel_connections": ["ix_channel_connections_locate_user"],
    },
}


def holders(stores: Stores, name: str, subject: Subject) -> dict[str, int]:
    """The subject's rows per customer, counted independently of the connector."""
    if name == "email":
        sql = "SELECT customer_account, COUNT(*) AS n FROM recipients WHERE lower(email) = ?"
        params: list[Any] = [subject.value(EMAIL).lower()]
    elif name == "video":
        sql = (
            "SELECT customer_account, COUNT(*) AS n FROM visitors"
            " WHERE (lower(email) = ? OR phone = ?)"
        )
        params = [subject.value(EMAIL).lower(), subject.value(PHONE)]
    elif name == "widget":
        channels = [value for kind, value in subject.identities if kind is CHANNEL]
        sql = (
            "SELECT customer_account, COUNT(*) AS n FROM widget_sessions"
            f" WHERE (lower(email) = ? OR phone = ? OR channel_id IN ({marks(channels)}))"
        )
        params = [subject.value(EMAIL).lower(), subject.value(PHONE), *channels]
    else:
        value = subject.value(EMAIL)
        stores_rows = stores.rows(
            name,
            "SELECT customer_account FROM beams_devices WHERE user_id IN (?, ?) UNION ALL"
            " SELECT customer_account FROM channel_connections WHERE user_id IN (?, ?)"
            " AND anonymised_at IS NULL",
            value,
            value.lower(),
            value,
            value.lower(),
        )
        counts: dict[str, int] = defaultdict(int)
        for row in stores_rows:
            counts[row["customer_account"]] += 1
        return dict(counts)
    found = stores.rows(name, f"{sql} AND anonymised_at IS NULL GROUP BY customer_account", *params)
    return {row["customer_account"]: row["n"] for row in found}


@pytest.mark.parametrize("name", CONNECTORS)
def test_locate_names_exactly_the_customers_holding_the_subject(stores: Stores, name: str) -> None:
    subject = stores.subjects[name]
    counts = holders(stores, name, subject)
    assert len(counts) >= 2, "the seed must give the subject records at several customers"
    logged = stores.rows(name, "SELECT COUNT(*) AS n FROM operation_log")[0]["n"]

    located = stores.connectors[name].locate(subject.scope("REQ-L001", customer=False))

    assert located.connector == name
    assert located.customers == sorted(c for c, n in counts.items() if n > 0)
    assert {subject.controller, *subject.others} <= set(located.customers)
    assert set(located.model_dump()) == {"connector", "customers"}, "no records, only accounts"
    confined = stores.connectors[name].locate(subject.scope("REQ-L002"))
    assert confined.customers == located.customers, "the scope's customer is ignored"
    after = stores.rows(name, "SELECT COUNT(*) AS n FROM operation_log")[0]["n"]
    assert after == logged, "read-only: not in the operation log"


@pytest.mark.parametrize("name", CONNECTORS)
def test_locate_finds_no_customer_for_an_unknown_identity(stores: Stores, name: str) -> None:
    connector = stores.connectors[name]
    stranger = Subject(STRANGER, "nobody", ())
    assert connector.locate(stranger.scope("REQ-L003", customer=False)).customers == []
    nobody = Subject((), "nobody", ())
    assert connector.locate(nobody.scope("REQ-L004", customer=False)).customers == []


@pytest.mark.parametrize("name", CONNECTORS)
def test_locate_uses_the_identity_first_indexes(stores: Stores, name: str) -> None:
    statement = MODULES[name].locate_holders(stores.subjects[name].scope(customer=False))

    plan = explain(stores.connectors[name].store.engine, statement)

    for table, indexes in LOCATE_INDEXES[name].items():
        for index in indexes:
            assert f"INDEX {index} (" in plan, plan
        assert f"SCAN {table}" not in plan, plan


# --- sweep ---------------------------------------------------------------------------------


def sweep_call(name: str, sweep_id: str = "SWEEP-1") -> SweepInput:
    rules = [EraseRule(category=c, before=CUTOFF) for c in MODULES[name].CATEGORIES]
    return SweepInput(sweep_id=sweep_id, as_of=NOW, rules=rules)


def assert_swept_once(stores: Stores, name: str, call: SweepInput, first: Any) -> None:
    """A retry is already done and changes nothing; a new sweep finds nothing left; a rule
    without a cutoff is refused."""
    connector = stores.connectors[name]
    snapshot = stores.dump(name)
    again = connector.sweep(call.model_copy(update={"as_of": NOW + timedelta(hours=1)}))
    assert again.already_done and not first.already_done
    assert again.anonymised == first.anonymised
    assert stores.dump(name) == snapshot
    fresh = connector.sweep(call.model_copy(update={"sweep_id": "SWEEP-NEW"}))
    assert fresh.anonymised == dict.fromkeys(first.anonymised, 0)
    unbounded = [EraseRule(category=call.rules[0].category)]
    with pytest.raises(ConnectorInputError):
        connector.sweep(SweepInput(sweep_id="SWEEP-ALL", as_of=NOW, rules=unbounded))


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutoffs, "SWEEP_CHUNK_ROWS", 41)  # several chunks on the seeded stores


def by_id(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in rows}


@pytest.mark.usefixtures("small_chunks")
def test_email_sweep_anonymises_every_customers_old_records(stores: Stores) -> None:
    recipients = by_id(stores.rows("email", "SELECT * FROM recipients WHERE anonymised_at IS NULL"))
    live = set(recipients)
    sends = [s for s in stores.rows("email", "SELECT * FROM sends") if s["recipient_id"] in live]
    events = [
        e
        for e in stores.rows("email", "SELECT * FROM events WHERE anonymised_at IS NULL")
        if e["recipient_id"] in live
    ]
    latest = latest_activity(
        {"recipients": list(recipients.values()), "sends": sends, "events": events}
    )
    lapsed = {i for i in live if latest[i] < CUTOFF}
    segments = {
        i
        for i, r in recipients.items()
        if r["segment_data"] is not None and utc(r["created_at"]) < CUTOFF
    }
    old_sends = {
        s["id"] for s in sends if utc(s["sent_at"]) < CUTOFF and (s["subject"] or s["body"])
    }
    old_events = {e["id"] for e in events if utc(e["occurred_at"]) < CUTOFF}
    assert len({recipients[i]["customer_account"] for i in lapsed}) > 1
    assert len(lapsed) < len(live) and old_sends and old_events
    before = stores.dump("email")
    call = sweep_call("email")

    result = stores.connectors["email"].sweep(call)

    assert result.anonymised == {
        "contact_details": len(lapsed),
        "segment_data": len(segments),
        "usage_and_device": len(old_events),
        "message_content": len(old_sends),
    }
    after = stores.dump("email")
    changed = changed_ids(before, after)
    assert changed == {"recipients": lapsed | segments, "sends": old_sends, "events": old_events}
    for row in stores.rows("email", "SELECT * FROM recipients"):
        if row["id"] in lapsed:
            was = recipients[row["id"]]["email"].lower()
            assert row["email"] == keyed_hash(SECRET, was, "pseudonym")
            assert row["name"] is row["segment_data"] is None
            assert utc(row["anonymised_at"]) == NOW
        elif row["id"] in segments:
            assert row["segment_data"] is None and row["anonymised_at"] is None
    for send_id in old_sends:
        assert after["sends"][send_id][3:5] == (None, None)
    for event in stores.rows(
        "email", f"SELECT * FROM events WHERE id IN ({marks(list(old_events))})", *old_events
    ):
        assert all(event[field] is None for field in email.USAGE_FIELDS)
        assert utc(event["occurred_at"]) == day(event["occurred_at"])
        assert utc(event["anonymised_at"]) == NOW
    assert_swept_once(stores, "email", call, result)


@pytest.mark.usefixtures("small_chunks")
def test_video_sweep_anonymises_every_customers_old_visits(stores: Stores) -> None:
    visits = stores.rows(
        "video",
        "SELECT v.*, m.scheduled_at, m.description, m.review, m.summary, m.recording_ref "
        "FROM visitors v JOIN meetings m ON m.id = v.meeting_id WHERE v.anonymised_at IS NULL",
    )
    old = [v for v in visits if utc(v["scheduled_at"]) < CUTOFF]
    meetings = {v["meeting_id"]: v for v in old}
    assert len({v["customer_account"] for v in old}) > 1 and len(old) < len(visits)
    before = stores.dump("video")
    call = sweep_call("video")

    result = stores.connectors["video"].sweep(call)

    assert result.anonymised == {
        "visitor_details": len(old),
        "meeting_details": sum(1 for v in meetings.values() if has_details(v)),
        "recordings": sum(1 for v in meetings.values() if v["recording_ref"]),
    }
    changed = changed_ids(before, stores.dump("video"))
    assert changed["visitors"] == {v["id"] for v in old}
    assert changed["meetings"] == {
        i for i, v in meetings.items() if has_details(v) or v["recording_ref"]
    }
    for visit in old:
        row = stores.rows("video", "SELECT * FROM visitors WHERE id = ?", visit["id"])[0]
        assert all(row[field] is None for field in video.VISITOR_FIELDS)
        assert utc(row["anonymised_at"]) == NOW and row["meeting_id"] == visit["meeting_id"]
        meeting = stores.rows("video", "SELECT * FROM meetings WHERE id = ?", visit["meeting_id"])
        assert meeting[0]["scheduled_at"] == visit["scheduled_at"]
        assert not has_details(meeting[0]) and meeting[0]["recording_ref"] is None
    assert_swept_once(stores, "video", call, result)


@pytest.mark.usefixtures("small_chunks")
def test_widget_sweep_cuts_every_customers_old_sessions_loose(stores: Stores) -> None:
    sessions = stores.rows("widget", "SELECT * FROM widget_sessions WHERE anonymised_at IS NULL")
    old = [s for s in sessions if utc(s["started_at"]) < CUTOFF]
    assert len({s["customer_account"] for s in old}) > 1 and len(old) < len(sessions)
    before = stores.dump("widget")
    call = sweep_call("widget")

    result = stores.connectors["widget"].sweep(call)

    assert result.anonymised == {"contact_identifiers": len(old), "traffic_data": len(old)}
    changed = changed_ids(before, stores.dump("widget"))
    assert changed["widget_sessions"] == {s["id"] for s in old}
    for session in old:
        row = stores.rows("widget", "SELECT * FROM widget_sessions WHERE id = ?", session["id"])
        assert all(row[0][field] is None for field in (*widget.IDENTIFIER_FIELDS, "pages"))
        assert utc(row[0]["started_at"]) == day(session["started_at"])
        assert utc(row[0]["anonymised_at"]) == NOW
        kept = ("customer_account", "duration_seconds", "page_count")
        assert [row[0][c] for c in kept] == [session[c] for c in kept]
    assert_swept_once(stores, "widget", call, result)


@pytest.mark.usefixtures("small_chunks")
def test_push_sweep_erases_every_customers_old_devices_and_connections(stores: Stores) -> None:
    devices = stores.rows("push", "SELECT * FROM beams_devices")
    connections = by_id(
        stores.rows("push", "SELECT * FROM channel_connections WHERE anonymised_at IS NULL")
    )
    events = [
        e
        for e in stores.rows("push", "SELECT * FROM client_events")
        if e["connection_id"] in connections
    ]
    old_devices = {d["id"] for d in devices if utc(d["registered_at"]) < CUTOFF}
    old = {i for i, c in connections.items() if utc(c["connected_at"]) < CUTOFF}
    old_content = {
        e["id"]
        for e in events
        if e["data"] and (e["connection_id"] in old or utc(e["sent_at"]) < CUTOFF)
    }
    assert len({connections[i]["customer_account"] for i in old}) > 1
    assert old_devices and len(old) < len(connections) and old_content
    before = stores.dump("push")
    call = sweep_call("push")

    result = stores.connectors["push"].sweep(call)

    assert result.anonymised == {
        "device_and_ip": len(old_devices) + sum(1 for i in old if connections[i]["ip"]),
        "traffic_data": len(old),
        "message_content": len(old_content),
    }
    after = stores.dump("push")
    assert set(before["beams_devices"]) - set(after["beams_devices"]) == old_devices
    changed = changed_ids(before, after)
    assert changed == {
        "beams_devices": old_devices,
        "channel_connections": old,
        "client_events": old_content,
    }
    for row in stores.rows(
        "push", f"SELECT * FROM channel_connections WHERE id IN ({marks(list(old))})", *old
    ):
        was = connections[row["id"]]
        assert row["user_id"] == keyed_hash(SECRET, was["user_id"], "pseudonym")
        assert row["socket_id"] is row["channel_name"] is row["ip"] is None
        assert utc(row["connected_at"]) == day(was["connected_at"])
    assert all(after["client_events"][i][3] is None for i in old_content)
    assert_swept_once(stores, "push", call, result)
