"""The Conversations, CDP and Marketing connectors against real SQLite stores seeded from the
shared fictional population."""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select
from temporalio.testing import ActivityEnvironment

from connectors import cdp, conversations, marketing
from connectors.cdp import CdpConnector
from connectors.conversations import ConversationsConnector
from connectors.kit import cutoffs
from connectors.kit.activities import connector_activities
from connectors.kit.errors import ConnectorInputError
from connectors.marketing import MarketingConnector, ProspectRow
from connectors.population import EndUser, make_population
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
from dsr.serverkeys import ServerKeys

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=183)  # about six months
FIVE_YEARS_BEFORE = NOW.replace(year=NOW.year - 5)
SECRET = b"test-secret-not-for-production"
REGISTRY = Path(__file__).parent.parent / "connectors" / "registry.yaml"
POPULATION = make_population(people=60)
CHAT_CATEGORIES = ["contact_identifiers", "traffic_data", "message_content"]
MARKETING_CATEGORIES = ["prospect_profile", "subscriptions", "consent_proof"]


@dataclass(frozen=True)
class Facts:
    """The subjects the tests use, chosen from the seeded rows."""

    chat_user: EndUser  # has threads ending before and after CUTOFF at chat_customer
    chat_customer: str
    profile_user: EndUser  # a profile updated after CUTOFF with events on both sides
    profile_customer: str
    seeded: dict[str, int]


@dataclass
class Stores:
    conversations: ConversationsConnector
    cdp: CdpConnector
    marketing: MarketingConnector
    blobs: LocalBlobStore
    folder: Path
    facts: Facts

    def rows(self, store: str, sql: str, *params: Any) -> list[sqlite3.Row]:
        return rows(self.folder / "connectors" / f"{store}.db", sql, *params)

    def table(self, store: str, table: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.rows(store, f"SELECT * FROM {table} ORDER BY 1")]


def rows(database: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(sql, params).fetchall()


def _connectors(
    folder: Path,
) -> tuple[ConversationsConnector, CdpConnector, MarketingConnector, LocalBlobStore]:
    blobs = LocalBlobStore(folder / "blobs")

    def url(name: str) -> str:
        return f"sqlite:///{folder / 'connectors' / f'{name}.db'}"

    return (
        ConversationsConnector(url("conversations"), blobs, SECRET),
        CdpConnector(url("cdp"), blobs, SECRET),
        MarketingConnector(url("marketing"), blobs, SECRET),
        blobs,
    )


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Facts]:
    """Seed once; each test gets its own copy of the store files."""
    folder = tmp_path_factory.mktemp("seeded-three")
    chats, profiles, marketing_store, _ = _connectors(folder)
    seeded = {
        "conversations": conversations.seed(chats, POPULATION, now=NOW),
        "cdp": cdp.seed(profiles, POPULATION, now=NOW),
        "marketing": marketing.seed(marketing_store, POPULATION, now=NOW),
    }
    for connector in (chats, profiles, marketing_store):
        connector.store.engine.dispose()
    chat_user, chat_customer = _chat_subject(folder)
    profile_user, profile_customer = _profile_subject(folder)
    facts = Facts(chat_user, chat_customer, profile_user, profile_customer, seeded)
    return folder, facts


@pytest.fixture
def stores(template: tuple[Path, Facts], tmp_path: Path) -> Stores:
    folder, facts = template
    shutil.copytree(folder / "connectors", tmp_path / "connectors")
    chats, profiles, marketing_store, blobs = _connectors(tmp_path)
    return Stores(chats, profiles, marketing_store, blobs, tmp_path, facts)


def _chat_subject(folder: Path) -> tuple[EndUser, str]:
    """An end user held by several customers whose threads at one of them end on both sides
    of the cutoff, with a thread running across it."""
    database = folder / "connectors" / "conversations.db"
    for user in POPULATION.end_users:
        if len(user.customers) < 2:
            continue
        for customer in user.customers:
            threads = rows(database, *_chat_threads_sql(user, customer))
            ends = [stored_utc(t["last_message_at"]) for t in threads]
            across = [t for t in threads if stored_utc(t["started_at"]) < CUTOFF <= _end(t)]
            if any(end < CUTOFF for end in ends) and across:
                return user, customer
    raise AssertionError("the seed must hold an end user with threads on both sides")


def _profile_subject(folder: Path) -> tuple[EndUser, str]:
    database = folder / "connectors" / "cdp.db"
    for user in POPULATION.end_users:
        if len(user.customers) < 2:
            continue
        for customer in user.customers:
            profile = rows(database, *_profile_sql(user, customer))
            if not profile or stored_utc(profile[0]["updated_at"]) < CUTOFF:
                continue
            events = rows(database, *_events_sql(user, customer))
            dates = [stored_utc(e["occurred_at"]) for e in events]
            if min(dates) < CUTOFF <= max(dates):
                return user, customer
    raise AssertionError("the seed must hold a profile with events on both sides")


def _end(thread: sqlite3.Row) -> datetime:
    return stored_utc(thread["last_message_at"])


def stored_utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def scope(request_id: str, *identities: Identity, customer: str | None = None) -> Scope:
    return Scope(
        request_id=request_id, identities=list(identities), customer_account=customer, as_of=NOW
    )


def read_export(stores: Stores, ref: str) -> list[dict[str, Any]]:
    with stores.blobs.open_reader(ref) as file:
        return [json.loads(line) for line in file]


def explain(engine: Any, statement: Select[Any]) -> str:
    sql = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        steps = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
    return "\n".join(step[-1] for step in steps)


# --- seed ----------------------------------------------------------------------------------


def test_seeds_are_deterministic_and_share_end_users_across_customers(stores: Stores) -> None:
    tables = {
        "conversations": ("threads", "messages"),
        "cdp": ("profiles", "events"),
        "marketing": ("prospects", "subscriptions", "consent_records"),
    }
    before = {(s, t): stores.table(s, t) for s, names in tables.items() for t in names}

    again = {
        "conversations": conversations.seed(stores.conversations, POPULATION, now=NOW),
        "cdp": cdp.seed(stores.cdp, POPULATION, now=NOW),
        "marketing": marketing.seed(stores.marketing, POPULATION, now=NOW),
    }

    assert again == stores.facts.seeded
    assert {(s, t): stores.table(s, t) for s, t in before} == before
    shared_chats = stores.rows(
        "conversations",
        "SELECT channel_user FROM threads GROUP BY channel_user "
        "HAVING COUNT(DISTINCT customer_account) > 1",
    )
    shared_profiles = stores.rows(
        "cdp",
        "SELECT lower(email) FROM profiles GROUP BY lower(email) "
        "HAVING COUNT(DISTINCT customer_account) > 1",
    )
    assert len(shared_chats) > 5 and len(shared_profiles) > 5
    sent = [stored_utc(r[0]) for r in stores.rows("conversations", "SELECT sent_at FROM messages")]
    assert NOW - timedelta(days=430) < min(sent) < NOW - timedelta(days=365) < max(sent) < NOW
    proofs = stores.rows(
        "marketing", "SELECT coalesce(withdrawn_at, given_at) AS dated FROM consent_records"
    )
    assert sum(stored_utc(p["dated"]) < FIVE_YEARS_BEFORE for p in proofs) >= 2
    created = [
        stored_utc(r[0]) for r in stores.rows("marketing", "SELECT created_at FROM prospects")
    ]
    assert NOW - timedelta(days=3 * 366) < min(created) < NOW - timedelta(days=2 * 365)
    sources = {r[0] for r in stores.rows("marketing", "SELECT source FROM prospects")}
    assert sources == {"web_form", "enrichment"}


# --- Conversations -------------------------------------------------------------------------


def chat_identities(user: EndUser) -> list[Identity]:
    """Phone (finds WhatsApp and Viber) and the Line and Messenger channel identities."""
    return [
        Identity(type=IdentityType.PHONE, value=user.phone),
        Identity(type=IdentityType.CHANNEL_ID, value=user.channel_ids["line"]),
        Identity(type=IdentityType.CHANNEL_ID, value=user.channel_ids["messenger"]),
    ]


def chat_scope(stores: Stores, request_id: str = "REQ-C001") -> Scope:
    facts = stores.facts
    return scope(request_id, *chat_identities(facts.chat_user), customer=facts.chat_customer)


def _chat_threads_sql(user: EndUser, customer: str, other: bool = False) -> tuple[Any, ...]:
    """The subject's threads, found independently of the connector: by the phone column or
    the named channel identities."""
    match = "!=" if other else "="
    return (
        f"SELECT * FROM threads WHERE customer_account {match} ? AND anonymised_at IS NULL "
        "AND (phone = ? OR channel_user IN (?, ?)) ORDER BY id",
        customer,
        user.phone,
        user.channel_ids["line"],
        user.channel_ids["messenger"],
    )


def chat_threads(stores: Stores, other: bool = False) -> list[sqlite3.Row]:
    facts = stores.facts
    return stores.rows(
        "conversations", *_chat_threads_sql(facts.chat_user, facts.chat_customer, other)
    )


def chat_messages(stores: Stores, threads: list[sqlite3.Row]) -> list[sqlite3.Row]:
    ids = ",".join(str(thread["id"]) for thread in threads)
    return stores.rows(
        "conversations", f"SELECT * FROM messages WHERE thread_id IN ({ids}) ORDER BY id"
    )


def test_conversations_discover_counts_and_dates(stores: Stores) -> None:
    threads = chat_threads(stores)
    messages = chat_messages(stores, threads)
    assert len(threads) >= 2

    discovery = stores.conversations.discover(chat_scope(stores))

    holdings = {holding.category: holding for holding in discovery.holdings}
    contact = holdings["contact_identifiers"]
    assert contact.records == len(threads)
    assert contact.earliest == min(_end(t) for t in threads)
    assert contact.latest == max(_end(t) for t in threads)
    assert holdings["traffic_data"].records == len(messages)
    assert holdings["traffic_data"].earliest == min(stored_utc(m["sent_at"]) for m in messages)
    assert holdings["traffic_data"].latest == max(stored_utc(m["sent_at"]) for m in messages)
    with_content = [m for m in messages if m["content"] is not None]
    assert holdings["message_content"].records == len(with_content)


def test_conversations_access_exports_only_the_customers_records(stores: Stores) -> None:
    facts = stores.facts
    threads, elsewhere = chat_threads(stores), chat_threads(stores, other=True)
    messages = chat_messages(stores, threads)
    assert elsewhere, "the seed must give the end user another customer's threads"

    result = stores.conversations.access(AccessInput(scope=chat_scope(stores)))

    assert result.blob_ref == "blob:exports/REQ-C001/conversations.jsonl"
    records = read_export(stores, result.blob_ref)
    assert {r["customer_account"] for r in records} == {facts.chat_customer}
    exported_threads = {r["thread_id"] for r in records if r["category"] == "contact_identifiers"}
    assert exported_threads == {t["id"] for t in threads}
    assert not exported_threads & {t["id"] for t in elsewhere}
    exported_messages = {r["message_id"] for r in records if r["category"] == "traffic_data"}
    assert exported_messages == {m["id"] for m in messages}
    contents = {r["content"] for r in records if r["category"] == "message_content"}
    assert contents == {m["content"] for m in messages if m["content"] is not None}
    counts = {c: sum(1 for r in records if r["category"] == c) for c in result.records}
    assert counts == result.records
    assert {r["phone_number"] for r in records if r["category"] == "contact_identifiers"} <= {
        facts.chat_user.phone,
        None,
    }


def test_conversations_erase_by_rule_cuts_older_records_loose_and_keeps_the_rest(
    stores: Stores,
) -> None:
    threads, elsewhere = chat_threads(stores), chat_threads(stores, other=True)
    messages = chat_messages(stores, threads)
    other_messages = chat_messages(stores, elsewhere)
    ended = [t for t in threads if _end(t) < CUTOFF]
    older = [m for m in messages if stored_utc(m["sent_at"]) < CUTOFF]
    newer = [m for m in messages if stored_utc(m["sent_at"]) >= CUTOFF]
    rules = [EraseRule(category=category, before=CUTOFF) for category in CHAT_CATEGORIES]

    result = stores.conversations.erase(EraseInput(scope=chat_scope(stores), rules=rules))

    assert result.erased["contact_identifiers"] == len(ended) > 0
    assert result.erased["traffic_data"] == len(older) > 0
    assert result.erased["message_content"] == sum(1 for m in older if m["content"])
    assert result.retained["contact_identifiers"] == len(threads) - len(ended) > 0
    assert result.retained["traffic_data"] == len(newer) > 0
    assert result.retained["message_content"] == sum(1 for m in newer if m["content"])
    after = {r["id"]: r for r in stores.rows("conversations", "SELECT * FROM messages")}
    for message in older:
        row = after[message["id"]]
        assert row["thread_id"] is row["content"] is row["platform_message_id"] is None
        assert row["delivered_at"] is row["read_at"] is None and row["anonymised_at"]
        assert stored_utc(row["sent_at"]).time() == datetime.min.time()
        assert (row["customer_account"], row["channel"], row["direction"], row["status"]) == (
            message["customer_account"],
            message["channel"],
            message["direction"],
            message["status"],
        )
    assert [tuple(after[m["id"]]) for m in newer] == [tuple(m) for m in newer]
    assert [tuple(after[m["id"]]) for m in other_messages] == [tuple(m) for m in other_messages]
    thread_rows = {r["id"]: r for r in stores.rows("conversations", "SELECT * FROM threads")}
    for thread in ended:
        row = thread_rows[thread["id"]]
        assert row["channel_user"] == keyed_hash(SECRET, thread["channel_user"], "pseudonym")
        assert row["phone"] is row["profile_name"] is None and row["anonymised_at"]
    assert [tuple(thread_rows[t["id"]]) for t in elsewhere] == [tuple(t) for t in elsewhere]
    again = stores.conversations.discover(chat_scope(stores))
    assert {h.category: h.records for h in again.holdings}["traffic_data"] == len(newer)


def test_conversations_erase_retry_is_already_done_and_changes_nothing(stores: Stores) -> None:
    rules = [EraseRule(category=category) for category in CHAT_CATEGORIES]
    call = EraseInput(scope=chat_scope(stores), rules=rules)
    first = stores.conversations.erase(call)
    snapshot = stores.table("conversations", "messages"), stores.table("conversations", "threads")

    later = call.scope.model_copy(update={"as_of": NOW + timedelta(hours=1)})
    retry = stores.conversations.erase(call.model_copy(update={"scope": later}))

    assert retry.already_done and not first.already_done
    assert (retry.erased, retry.retained) == (first.erased, first.retained)
    assert first.retained == dict.fromkeys(CHAT_CATEGORIES, 0)
    after = stores.table("conversations", "messages"), stores.table("conversations", "threads")
    assert after == snapshot


def test_conversations_find_nothing_without_a_customer_account(stores: Stores) -> None:
    no_customer = scope("REQ-C002", *chat_identities(stores.facts.chat_user))
    snapshot = stores.table("conversations", "messages"), stores.table("conversations", "threads")

    assert stores.conversations.discover(no_customer).holdings == []
    access = stores.conversations.access(AccessInput(scope=no_customer))
    erase = stores.conversations.erase(
        EraseInput(scope=no_customer, rules=[EraseRule(category="traffic_data")])
    )
    restrict = stores.conversations.restrict(FlagInput(scope=no_customer))

    assert access.blob_ref is None and access.records == {}
    assert erase.erased == {} and restrict.records == 0
    after = stores.table("conversations", "messages"), stores.table("conversations", "threads")
    assert after == snapshot
    assert stores.rows("conversations", "SELECT * FROM restrictions") == []


def test_conversations_restrict_and_lift(stores: Stores) -> None:
    facts = stores.facts
    subject = chat_scope(stores, "REQ-C003")
    line = Identity(type=IdentityType.CHANNEL_ID, value=facts.chat_user.channel_ids["line"])

    restricted = stores.conversations.restrict(FlagInput(scope=subject))
    retried = stores.conversations.restrict(FlagInput(scope=subject))

    assert restricted.records == len(chat_messages(stores, chat_threads(stores)))
    assert retried.already_done and retried.records == restricted.records
    assert stores.conversations.is_restricted(facts.chat_customer, line)
    other = next(c for c in facts.chat_user.customers if c != facts.chat_customer)
    assert not stores.conversations.is_restricted(other, line)
    stored = stores.rows("conversations", "SELECT * FROM restrictions")
    assert len(stored) == 3
    values = {value for row in stored for value in tuple(row)}
    assert not values & {identity.value for identity in chat_identities(facts.chat_user)}

    lifted = stores.conversations.restrict(FlagInput(scope=subject, lift=True))

    assert not lifted.already_done
    assert not stores.conversations.is_restricted(facts.chat_customer, line)


def test_conversations_refuse_an_unknown_category(stores: Stores) -> None:
    call = EraseInput(scope=chat_scope(stores), rules=[EraseRule(category="location_data")])
    with pytest.raises(ConnectorInputError, match="location_data"):
        stores.conversations.erase(call)


def test_conversations_lookup_uses_the_customer_and_channel_identity_index(
    stores: Stores,
) -> None:
    subject = conversations.resolve_subject(chat_scope(stores))
    assert subject is not None
    engine = stores.conversations.store.engine

    threads = explain(engine, conversations.subject_threads(subject))
    messages = explain(engine, conversations.subject_messages(subject))

    index = "USING INDEX ix_threads_subject (customer_account=? AND channel_user=?)"
    assert index in threads and index in messages
    assert "USING INDEX ix_messages_thread (thread_id=?)" in messages
    assert "SCAN" not in threads + messages


# --- CDP -----------------------------------------------------------------------------------


def profile_scope(stores: Stores, request_id: str = "REQ-P001") -> Scope:
    facts = stores.facts
    email = Identity(type=IdentityType.EMAIL, value=facts.profile_user.email.upper())
    return scope(request_id, email, customer=facts.profile_customer)


def _profile_sql(user: EndUser, customer: str, other: bool = False) -> tuple[Any, ...]:
    match = "!=" if other else "="
    return (
        f"SELECT * FROM profiles WHERE customer_account {match} ? AND lower(email) = ? ORDER BY id",
        customer,
        user.email.lower(),
    )


def _events_sql(user: EndUser, customer: str, other: bool = False) -> tuple[Any, ...]:
    match = "!=" if other else "="
    return (
        "SELECT events.* FROM events JOIN profiles ON profiles.id = events.profile_id "
        f"WHERE profiles.customer_account {match} ? AND lower(profiles.email) = ? "
        "ORDER BY events.id",
        customer,
        user.email.lower(),
    )


def cdp_rows(stores: Stores, what: str, other: bool = False) -> list[sqlite3.Row]:
    facts = stores.facts
    sql = _profile_sql if what == "profiles" else _events_sql
    return stores.rows("cdp", *sql(facts.profile_user, facts.profile_customer, other))


def test_cdp_discover_counts_and_dates(stores: Stores) -> None:
    profiles, events = cdp_rows(stores, "profiles"), cdp_rows(stores, "events")

    discovery = stores.cdp.discover(profile_scope(stores))

    holdings = {holding.category: holding for holding in discovery.holdings}
    assert holdings["profile"].records == len(profiles) == 1
    assert holdings["profile"].latest == stored_utc(profiles[0]["updated_at"])
    assert holdings["events"].records == len(events)
    assert holdings["events"].earliest == min(stored_utc(e["occurred_at"]) for e in events)
    assert holdings["events"].latest == max(stored_utc(e["occurred_at"]) for e in events)


def test_cdp_access_exports_only_the_customers_profile_and_events(stores: Stores) -> None:
    facts = stores.facts
    events, elsewhere = cdp_rows(stores, "events"), cdp_rows(stores, "events", other=True)
    assert elsewhere, "the seed must give the end user another customer's profile"

    result = stores.cdp.access(AccessInput(scope=profile_scope(stores)))

    assert result.blob_ref is not None
    records = read_export(stores, result.blob_ref)
    assert {r["customer_account"] for r in records} == {facts.profile_customer}
    profile = [r for r in records if r["category"] == "profile"]
    assert [p["email"].lower() for p in profile] == [facts.profile_user.email]
    assert profile[0]["traits"]["plan"] and profile[0]["ip"] == facts.profile_user.ip
    assert {r["event_id"] for r in records if r["category"] == "events"} == {
        e["id"] for e in events
    }
    assert result.records == {"profile": 1, "events": len(events)}


def test_cdp_erase_by_rule_deletes_older_events_then_anonymises_the_profile(
    stores: Stores,
) -> None:
    facts = stores.facts
    profile, events = cdp_rows(stores, "profiles")[0], cdp_rows(stores, "events")
    other_profiles = cdp_rows(stores, "profiles", other=True)
    other_events = cdp_rows(stores, "events", other=True)
    older = [e for e in events if stored_utc(e["occurred_at"]) < CUTOFF]
    rules = [EraseRule(category=c, before=CUTOFF) for c in ("profile", "events")]

    by_rule = stores.cdp.erase(EraseInput(scope=profile_scope(stores), rules=rules))

    assert by_rule.erased == {"events": len(older), "profile": 0} and older
    assert by_rule.retained == {"profile": 1, "events": len(events) - len(older)}
    remaining = {e["id"] for e in stores.rows("cdp", "SELECT id FROM events")}
    assert not remaining & {e["id"] for e in older}
    assert {e["id"] for e in events} - {e["id"] for e in older} <= remaining

    everything = [EraseRule(category="profile")]
    whole = stores.cdp.erase(EraseInput(scope=profile_scope(stores, "REQ-P002"), rules=everything))

    assert whole.erased == {"events": len(events) - len(older), "profile": 1}
    assert whole.retained == {"profile": 0}
    row = stores.rows("cdp", "SELECT * FROM profiles WHERE id = ?", profile["id"])[0]
    assert row["name"] is row["email"] is row["job_title"] is row["ip"] is None
    assert row["traits"] is None and row["external_id"] is None and row["anonymised_at"]
    assert stores.rows("cdp", "SELECT * FROM events WHERE profile_id = ?", profile["id"]) == []
    after = stores.rows("cdp", *_profile_sql(facts.profile_user, facts.profile_customer, True))
    assert [tuple(r) for r in after] == [tuple(r) for r in other_profiles]
    after_events = cdp_rows(stores, "events", other=True)
    assert [tuple(r) for r in after_events] == [tuple(r) for r in other_events]
    assert stores.cdp.discover(profile_scope(stores)).holdings == []


def test_cdp_erase_retry_is_already_done_and_changes_nothing(stores: Stores) -> None:
    call = EraseInput(scope=profile_scope(stores), rules=[EraseRule(category="events")])
    first = stores.cdp.erase(call)
    snapshot = stores.table("cdp", "profiles"), stores.table("cdp", "events")

    retry = stores.cdp.erase(call)

    assert retry.already_done and not first.already_done and retry.erased == first.erased
    assert (stores.table("cdp", "profiles"), stores.table("cdp", "events")) == snapshot


def test_cdp_rectify_corrects_name_email_and_job_title(stores: Stores) -> None:
    others = cdp_rows(stores, "profiles", other=True)
    corrections = [
        Correction(field="name", value="Anna M. de Vries"),
        Correction(field="email", value="anna.m@new.example.org"),
        Correction(field="job_title", value="Head of Logistics"),
        Correction(field="shoe_size", value="38"),
    ]

    result = stores.cdp.rectify(RectifyInput(scope=profile_scope(stores), corrections=corrections))

    assert result.updated == {"name": 1, "email": 1, "job_title": 1}
    assert result.unsupported_fields == ["shoe_size"]
    row = stores.rows("cdp", "SELECT * FROM profiles WHERE email = ?", "anna.m@new.example.org")
    assert [(r["name"], r["job_title"]) for r in row] == [("Anna M. de Vries", "Head of Logistics")]
    assert stored_utc(row[0]["updated_at"]) == NOW
    after = stores.rows(
        "cdp", *_profile_sql(stores.facts.profile_user, stores.facts.profile_customer, True)
    )
    assert [tuple(r) for r in after] == [tuple(r) for r in others]
    bad = [Correction(field="email", value="not-an-address")]
    with pytest.raises(ConnectorInputError, match="email is malformed") as refused:
        stores.cdp.rectify(RectifyInput(scope=profile_scope(stores, "REQ-P003"), corrections=bad))
    assert "not-an-address" not in str(refused.value)


def test_cdp_restrict_lift_and_object(stores: Stores) -> None:
    flags = "SELECT processing_restricted, objected_at FROM profiles WHERE id = ?"
    profile_id = cdp_rows(stores, "profiles")[0]["id"]
    others = cdp_rows(stores, "profiles", other=True)

    assert stores.cdp.restrict(FlagInput(scope=profile_scope(stores))).records == 1
    assert tuple(stores.rows("cdp", flags, profile_id)[0]) == (1, None)
    stores.cdp.restrict(FlagInput(scope=profile_scope(stores), lift=True))
    assert tuple(stores.rows("cdp", flags, profile_id)[0]) == (0, None)

    objected = stores.cdp.object(FlagInput(scope=profile_scope(stores, "REQ-P004")))

    assert objected.records == 1
    assert stored_utc(stores.rows("cdp", flags, profile_id)[0]["objected_at"]) == NOW
    assert [tuple(r) for r in cdp_rows(stores, "profiles", other=True)] == [
        tuple(r) for r in others
    ]
    with pytest.raises(ConnectorInputError, match="lifts restrictions only"):
        stores.cdp.object(FlagInput(scope=profile_scope(stores, "REQ-P005"), lift=True))


def test_cdp_restriction_stays_with_a_rectified_email(stores: Stores) -> None:
    facts = stores.facts
    corrected = "anna.m@new.example.org"
    stores.cdp.restrict(FlagInput(scope=profile_scope(stores, "REQ-P007")))
    assert stores.cdp.is_restricted(facts.profile_customer, facts.profile_user.email)

    rectified = stores.cdp.rectify(
        RectifyInput(
            scope=profile_scope(stores, "REQ-P008"),
            corrections=[Correction(field="email", value=corrected)],
        )
    )

    assert rectified.updated == {"email": 1}
    assert stores.cdp.is_restricted(facts.profile_customer, corrected.upper())
    assert not stores.cdp.is_restricted(facts.profile_customer, facts.profile_user.email)
    other = next(c for c in facts.profile_user.customers if c != facts.profile_customer)
    assert not stores.cdp.is_restricted(other, facts.profile_user.email)


def test_cdp_finds_nothing_without_a_customer_account(stores: Stores) -> None:
    email = Identity(type=IdentityType.EMAIL, value=stores.facts.profile_user.email)
    no_customer = scope("REQ-P006", email)
    snapshot = stores.table("cdp", "profiles"), stores.table("cdp", "events")

    assert stores.cdp.discover(no_customer).holdings == []
    assert stores.cdp.access(AccessInput(scope=no_customer)).blob_ref is None
    erase = stores.cdp.erase(EraseInput(scope=no_customer, rules=[EraseRule(category="profile")]))
    flag = stores.cdp.object(FlagInput(scope=no_customer))
    rectify = stores.cdp.rectify(
        RectifyInput(scope=no_customer, corrections=[Correction(field="name", value="X Y")])
    )

    assert erase.erased == {} and flag.records == 0 and rectify.updated == {}
    assert (stores.table("cdp", "profiles"), stores.table("cdp", "events")) == snapshot


def test_cdp_lookup_uses_the_customer_and_email_index(stores: Stores) -> None:
    subject = cdp.resolve_subject(profile_scope(stores))
    assert subject is not None
    engine = stores.cdp.store.engine

    profiles = explain(engine, cdp.subject_profiles(subject))
    events = explain(engine, cdp.subject_events(subject))

    index = "USING INDEX ix_profiles_subject (customer_account=? AND <expr>=?)"
    assert index in profiles and index in events
    assert "USING INDEX ix_events_profile (profile_id=?)" in events
    assert "SCAN" not in profiles + events


# --- Marketing -----------------------------------------------------------------------------


def marketing_person() -> EndUser:
    return POPULATION.end_users[0]  # the seed gives them proof on both sides of five years


def marketing_scope(request_id: str = "REQ-M001", email: str | None = None) -> Scope:
    # A customer account in the scope plays no part: the group's own data.
    value = email or marketing_person().email.upper()
    identity = Identity(type=IdentityType.EMAIL, value=value)
    return scope(request_id, identity, customer="CUST-0001")


def person_hash(email: str | None = None) -> str:
    normalised = Identity(type=IdentityType.EMAIL, value=email or marketing_person().email)
    return ServerKeys(SECRET).identities.tag(normalised.normalised)


def marketing_rows(stores: Stores) -> dict[str, list[sqlite3.Row]]:
    email = marketing_person().email.lower()
    return {
        "prospect_profile": stores.rows(
            "marketing", "SELECT * FROM prospects WHERE lower(email) = ? ORDER BY id", email
        ),
        "subscriptions": stores.rows(
            "marketing", "SELECT * FROM subscriptions WHERE lower(email) = ? ORDER BY id", email
        ),
        "consent_proof": stores.rows(
            "marketing",
            "SELECT *, coalesce(withdrawn_at, given_at) AS dated FROM consent_records "
            "WHERE email_hash = ? ORDER BY id",
            person_hash(),
        ),
    }


def others(stores: Stores) -> dict[str, list[tuple[Any, ...]]]:
    email, hashed = marketing_person().email.lower(), person_hash()
    return {
        "prospects": [
            tuple(r)
            for r in stores.rows(
                "marketing", "SELECT * FROM prospects WHERE lower(email) != ?", email
            )
        ],
        "subscriptions": [
            tuple(r)
            for r in stores.rows(
                "marketing", "SELECT * FROM subscriptions WHERE lower(email) != ?", email
            )
        ],
        "consent_records": [
            tuple(r)
            for r in stores.rows(
                "marketing", "SELECT * FROM consent_records WHERE email_hash != ?", hashed
            )
        ],
    }


def suppressions(stores: Stores) -> list[sqlite3.Row]:
    return stores.rows("marketing", "SELECT * FROM suppressions")


def test_marketing_discover_counts_and_dates(stores: Stores) -> None:
    held = marketing_rows(stores)
    date_column = {
        "prospect_profile": "created_at",
        "subscriptions": "subscribed_at",
        "consent_proof": "dated",
    }

    discovery = stores.marketing.discover(marketing_scope())

    holdings = {holding.category: holding for holding in discovery.holdings}
    assert set(holdings) == set(MARKETING_CATEGORIES)
    for category, column in date_column.items():
        dates = [stored_utc(row[column]) for row in held[category]]
        assert holdings[category].records == len(dates) > 0
        assert (holdings[category].earliest, holdings[category].latest) == (min(dates), max(dates))
    proof = holdings["consent_proof"]
    assert proof.earliest is not None and proof.latest is not None
    assert proof.earliest < FIVE_YEARS_BEFORE < proof.latest


def test_marketing_access_exports_exactly_the_persons_records(stores: Stores) -> None:
    held = marketing_rows(stores)

    result = stores.marketing.access(AccessInput(scope=marketing_scope()))

    assert result.blob_ref == "blob:exports/REQ-M001/marketing.jsonl"
    records = read_export(stores, result.blob_ref)
    assert result.records == {category: len(held[category]) for category in MARKETING_CATEGORIES}
    ids = {
        "prospect_profile": "prospect_id",
        "subscriptions": "subscription_id",
        "consent_proof": "consent_id",
    }
    for category, key in ids.items():
        exported = {r[key] for r in records if r["category"] == category}
        assert exported == {row["id"] for row in held[category]}
    assert {r["email"] for r in records if "email" in r} == {marketing_person().email}
    assert all(r["evidence"] for r in records if r["category"] == "consent_proof")


def test_marketing_erase_deletes_at_once_keeps_recent_proof_and_suppresses(
    stores: Stores,
) -> None:
    person = marketing_person()
    held, before = marketing_rows(stores), others(stores)
    old_proof = [p for p in held["consent_proof"] if stored_utc(p["dated"]) < FIVE_YEARS_BEFORE]
    assert old_proof and len(old_proof) < len(held["consent_proof"])
    assert not stores.marketing.is_suppressed(person.email)
    rules = [
        EraseRule(category="prospect_profile"),
        EraseRule(category="subscriptions"),
        EraseRule(category="consent_proof", before=FIVE_YEARS_BEFORE),
    ]
    call = EraseInput(scope=marketing_scope(), rules=rules)

    result = stores.marketing.erase(call)
    snapshot = {t: stores.table("marketing", t) for t in ("consent_records", "suppressions")}
    retry = stores.marketing.erase(call)

    kept = len(held["consent_proof"]) - len(old_proof)
    assert result.erased == {
        "prospect_profile": len(held["prospect_profile"]),
        "subscriptions": len(held["subscriptions"]),
        "consent_proof": len(old_proof),
    }
    assert result.retained == {"prospect_profile": 0, "subscriptions": 0, "consent_proof": kept}
    after = marketing_rows(stores)
    assert after["prospect_profile"] == [] and after["subscriptions"] == []
    assert {p["id"] for p in after["consent_proof"]} == {p["id"] for p in held["consent_proof"]} - {
        p["id"] for p in old_proof
    }
    assert others(stores) == before
    entries = suppressions(stores)
    assert [(e["identity_hash"], e["reason"]) for e in entries] == [(person_hash(), "erase")]
    assert person.email not in {value for e in entries for value in tuple(e)}
    assert stores.marketing.is_suppressed(person.email.upper())
    assert retry.already_done and retry.erased == result.erased
    assert {t: stores.table("marketing", t) for t in snapshot} == snapshot


def test_marketing_reimport_after_erasure_does_not_bring_the_person_back(stores: Stores) -> None:
    person, newcomer = marketing_person(), "new.prospect@example.org"
    rules = [EraseRule(category=c) for c in ("prospect_profile", "subscriptions")]
    stores.marketing.erase(EraseInput(scope=marketing_scope(), rules=rules))
    enriched = [
        ProspectRow(
            email=email,
            name="Someone",
            company="Initech Ltd",
            source="enrichment",
            source_detail="Example Enrichment Co.",
            created_at=NOW,
        )
        for email in (person.email.title(), newcomer)
    ]

    imported = stores.marketing.import_prospects(enriched)

    assert imported == 1
    assert marketing_rows(stores)["prospect_profile"] == []
    assert stores.rows("marketing", "SELECT name FROM prospects WHERE email = ?", newcomer)
    assert stores.marketing.discover(marketing_scope("REQ-M002")).holdings[0].category == (
        "consent_proof"
    )


def test_marketing_rectify_name_company_and_job_title(stores: Stores) -> None:
    before = others(stores)
    corrections = [
        Correction(field="company", value="Globex Logistics GmbH"),
        Correction(field="job_title", value="CMO"),
        Correction(field="name", value="Anna de Vries-Smit"),
        Correction(field="email", value="anna@new.example.com"),
    ]

    result = stores.marketing.rectify(
        RectifyInput(scope=marketing_scope(), corrections=corrections)
    )

    assert result.updated == {"company": 1, "job_title": 1, "name": 1}
    assert result.unsupported_fields == ["email"]
    prospect = marketing_rows(stores)["prospect_profile"][0]
    assert (prospect["company"], prospect["job_title"], prospect["name"]) == (
        "Globex Logistics GmbH",
        "CMO",
        "Anna de Vries-Smit",
    )
    assert others(stores) == before


def test_marketing_restrict_and_lift(stores: Stores) -> None:
    person = marketing_person()
    held = marketing_rows(stores)

    restricted = stores.marketing.restrict(FlagInput(scope=marketing_scope()))

    assert restricted.records == sum(len(rows) for rows in held.values())
    assert stores.marketing.is_restricted(person.email)
    assert not stores.marketing.is_restricted(POPULATION.end_users[1].email)
    stored = stores.rows("marketing", "SELECT * FROM restrictions")
    assert [r["identity_hash"] for r in stored] == [person_hash()]

    stores.marketing.restrict(FlagInput(scope=marketing_scope(), lift=True))

    assert not stores.marketing.is_restricted(person.email)
    assert suppressions(stores) == []


def test_marketing_objection_marks_prospects_and_suppresses(stores: Stores) -> None:
    before = others(stores)

    result = stores.marketing.object(FlagInput(scope=marketing_scope()))

    assert result.records == 1
    prospect = marketing_rows(stores)["prospect_profile"][0]
    assert stored_utc(prospect["objected_at"]) == NOW
    assert [(e["identity_hash"], e["reason"]) for e in suppressions(stores)] == [
        (person_hash(), "object")
    ]
    assert others(stores) == before
    with pytest.raises(ConnectorInputError, match="cannot lift object"):
        stores.marketing.object(FlagInput(scope=marketing_scope("REQ-M003"), lift=True))


def test_marketing_withdrawal_of_consent_keeps_the_proof_and_ends_the_lists(
    stores: Stores,
) -> None:
    held, before = marketing_rows(stores), others(stores)
    given = {p["id"] for p in held["consent_proof"] if p["withdrawn_at"] is None}
    active = [s for s in held["subscriptions"] if s["unsubscribed_at"] is None]
    assert given and active

    result = stores.marketing.withdraw_consent(FlagInput(scope=marketing_scope()))

    assert result.records == len(given) + len(active)
    after = marketing_rows(stores)
    assert len(after["consent_proof"]) == len(held["consent_proof"])
    for proof in after["consent_proof"]:
        earlier = next(p for p in held["consent_proof"] if p["id"] == proof["id"])
        assert (proof["given_at"], proof["evidence"]) == (earlier["given_at"], earlier["evidence"])
        if earlier["id"] in given:
            assert stored_utc(proof["withdrawn_at"]) == NOW
            assert proof["withdrawal_evidence"] == "data subject rights request REQ-M001"
        else:
            assert proof["withdrawn_at"] == earlier["withdrawn_at"]
    assert all(s["unsubscribed_at"] for s in after["subscriptions"])
    assert [tuple(r) for r in after["prospect_profile"]] == [
        tuple(r) for r in held["prospect_profile"]
    ]
    assert others(stores) == before and suppressions(stores) == []


def test_marketing_opt_out_unsubscribes_every_list_and_suppresses(stores: Stores) -> None:
    held, before = marketing_rows(stores), others(stores)
    active = {s["id"] for s in held["subscriptions"] if s["unsubscribed_at"] is None}
    call = FlagInput(scope=marketing_scope())

    result = stores.marketing.marketing_opt_out(call)
    snapshot = stores.table("marketing", "subscriptions"), stores.table("marketing", "suppressions")
    retry = stores.marketing.marketing_opt_out(call)

    assert result.records == len(active) > 0
    after = marketing_rows(stores)["subscriptions"]
    for subscription in after:
        earlier = next(s for s in held["subscriptions"] if s["id"] == subscription["id"])
        expected = NOW if earlier["id"] in active else stored_utc(earlier["unsubscribed_at"])
        assert stored_utc(subscription["unsubscribed_at"]) == expected
    assert [e["reason"] for e in suppressions(stores)] == ["marketing_opt_out"]
    assert stores.marketing.is_suppressed(marketing_person().email)
    assert retry.already_done and retry.records == result.records
    assert (
        stores.table("marketing", "subscriptions"),
        stores.table("marketing", "suppressions"),
    ) == snapshot
    assert others(stores) == before


def test_marketing_finds_nothing_without_an_email_and_refuses_malformed_imports(
    stores: Stores,
) -> None:
    phone_only = scope("REQ-M004", Identity(type=IdentityType.PHONE, value="+447700900001"))
    assert stores.marketing.discover(phone_only).holdings == []
    assert (
        stores.marketing.erase(
            EraseInput(scope=phone_only, rules=[EraseRule(category="subscriptions")])
        ).erased
        == {}
    )
    assert suppressions(stores) == []
    row = ProspectRow(email="not-an-address", source="web_form", source_detail="x", created_at=NOW)
    with pytest.raises(ConnectorInputError, match="email is malformed") as refused:
        stores.marketing.import_prospects([row])
    assert "not-an-address" not in str(refused.value)


def test_marketing_lookups_use_the_email_and_hash_indexes(stores: Stores) -> None:
    subject = marketing.Subject((marketing_person().email,), (person_hash(),))
    engine = stores.marketing.store.engine

    plans = {
        category: explain(engine, marketing.subject_rows(source))
        for category, source in marketing.sources(subject).items()
    }

    assert "USING INDEX ix_prospects_email (<expr>=?)" in plans["prospect_profile"]
    assert "USING INDEX ix_subscriptions_email (<expr>=?)" in plans["subscriptions"]
    assert "USING INDEX ix_consent_records_email_hash (email_hash=?)" in plans["consent_proof"]
    assert not [plan for plan in plans.values() if "SCAN" in plan]


# --- Temporal activities -------------------------------------------------------------------


def defn_name(fn: Any) -> str:
    return fn.__temporal_activity_definition.name


def test_activities_are_named_and_cover_the_registry(stores: Stores) -> None:
    registry = load_registry(REGISTRY)
    for connector in (stores.conversations, stores.cdp, stores.marketing):
        names = {defn_name(fn) for fn in connector_activities(connector)}
        entry = registry.get(connector.name)
        assert {f"{connector.name}.{op.value}" for op in entry.operations} == names
    assert registry.get("marketing").role.value == "group"
    assert {registry.get(n).role.value for n in ("conversations", "cdp")} == {"end_user"}


async def test_marketing_access_runs_as_an_activity_with_heartbeats(stores: Stores) -> None:
    activities = {defn_name(fn): fn for fn in connector_activities(stores.marketing)}
    environment = ActivityEnvironment()
    beats: list[Any] = []
    environment.on_heartbeat = lambda *details: beats.append(details)

    result = await environment.run(
        activities["marketing.access"], AccessInput(scope=marketing_scope())
    )

    assert result.blob_ref and beats
    assert beats[-1][0]["records"] == sum(result.records.values())


# --- locate: which customers hold an end user who wrote to the group directly --------------


def test_conversations_locate_names_exactly_the_customers_holding_the_subject(
    stores: Stores,
) -> None:
    user = stores.facts.chat_user
    counts = {
        row[0]: row[1]
        for row in stores.rows(
            "conversations",
            "SELECT customer_account, COUNT(*) FROM threads WHERE anonymised_at IS NULL "
            "AND (phone = ? OR channel_user IN (?, ?)) GROUP BY customer_account",
            user.phone,
            user.channel_ids["line"],
            user.channel_ids["messenger"],
        )
    }
    assert len(counts) >= 2, "the seed must give the subject threads at several customers"
    logged = stores.rows("conversations", "SELECT COUNT(*) FROM operation_log")[0][0]

    located = stores.conversations.locate(scope("REQ-CL01", *chat_identities(user)))

    assert located.connector == "conversations"
    assert located.customers == sorted(counts)
    assert set(located.model_dump()) == {"connector", "customers"}, "no records, only accounts"
    confined = stores.conversations.locate(chat_scope(stores, "REQ-CL02"))
    assert confined.customers == located.customers, "the scope's customer is ignored"
    by_phone = stores.conversations.locate(
        scope("REQ-CL03", Identity(type=IdentityType.PHONE, value=user.phone))
    )
    phone_counts = stores.rows(
        "conversations",
        "SELECT DISTINCT customer_account FROM threads WHERE anonymised_at IS NULL "
        "AND phone = ? ORDER BY 1",
        user.phone,
    )
    assert by_phone.customers == [row[0] for row in phone_counts], "WhatsApp and Viber ids"
    assert stores.rows("conversations", "SELECT COUNT(*) FROM operation_log")[0][0] == logged


def test_cdp_locate_names_exactly_the_customers_holding_the_subject(stores: Stores) -> None:
    user = stores.facts.profile_user
    counts = {
        row[0]: row[1]
        for row in stores.rows(
            "cdp",
            "SELECT customer_account, COUNT(*) FROM profiles WHERE anonymised_at IS NULL "
            "AND lower(email) = ? GROUP BY customer_account",
            user.email.lower(),
        )
    }
    assert len(counts) >= 2, "the seed must give the subject profiles at several customers"
    logged = stores.rows("cdp", "SELECT COUNT(*) FROM operation_log")[0][0]
    shouted = Identity(type=IdentityType.EMAIL, value=user.email.upper())

    located = stores.cdp.locate(scope("REQ-PL01", shouted))

    assert located.connector == "cdp"
    assert located.customers == sorted(counts)
    assert set(located.model_dump()) == {"connector", "customers"}, "no records, only accounts"
    assert stores.cdp.locate(profile_scope(stores, "REQ-PL02")).customers == located.customers
    assert stores.rows("cdp", "SELECT COUNT(*) FROM operation_log")[0][0] == logged


def test_locate_finds_no_customer_for_an_unknown_identity(stores: Stores) -> None:
    stranger = [
        Identity(type=IdentityType.PHONE, value="+999000000001"),
        Identity(type=IdentityType.EMAIL, value="nobody@locate.invalid"),
        Identity(type=IdentityType.CHANNEL_ID, value="line:nobody-at-all"),
    ]
    for connector in (stores.conversations, stores.cdp):
        assert connector.locate(scope("REQ-XL01", *stranger)).customers == []
        assert connector.locate(scope("REQ-XL02")).customers == []


def test_locate_uses_the_identity_first_indexes(stores: Stores) -> None:
    facts = stores.facts
    chats = conversations.locate_holders(scope("REQ-CL04", *chat_identities(facts.chat_user)))
    email = Identity(type=IdentityType.EMAIL, value=facts.profile_user.email)
    profiles = cdp.locate_holders(scope("REQ-PL03", email))
    assert chats is not None and profiles is not None

    chat_plan = explain(stores.conversations.store.engine, chats)
    profile_plan = explain(stores.cdp.store.engine, profiles)

    assert "INDEX ix_threads_locate_channel_user (channel_user=?)" in chat_plan, chat_plan
    assert "INDEX ix_profiles_locate_email (<expr>=?)" in profile_plan, profile_plan
    assert "SCAN" not in chat_plan + profile_plan


# --- sweep ---------------------------------------------------------------------------------


def dump(stores: Stores, store: str, *tables: str) -> dict[str, list[tuple[Any, ...]]]:
    return {table: stores.table(store, table) for table in tables}


def assert_swept_once(
    stores: Stores, store: str, connector: Any, call: SweepInput, first: Any
) -> None:
    """A retry is already done and changes nothing; a new sweep finds nothing left; a rule
    without a cutoff is refused."""
    tables = [
        r["name"] for r in stores.rows(store, "SELECT name FROM sqlite_master WHERE type = 'table'")
    ]
    data = [t for t in tables if t != "operation_log"]
    snapshot = dump(stores, store, *data)
    again = connector.sweep(call.model_copy(update={"as_of": NOW + timedelta(hours=1)}))
    assert again.already_done and not first.already_done
    assert again.anonymised == first.anonymised
    assert dump(stores, store, *data) == snapshot
    fresh = connector.sweep(call.model_copy(update={"sweep_id": "SWEEP-NEW"}))
    assert fresh.anonymised == dict.fromkeys(first.anonymised, 0)
    unbounded = [EraseRule(category=call.rules[0].category)]
    with pytest.raises(ConnectorInputError):
        connector.sweep(SweepInput(sweep_id="SWEEP-ALL", as_of=NOW, rules=unbounded))


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutoffs, "SWEEP_CHUNK_ROWS", 41)  # several chunks on the seeded stores


@pytest.mark.usefixtures("small_chunks")
def test_conversations_sweep_cuts_every_customers_old_records_loose(stores: Stores) -> None:
    threads = {
        t["id"]: t
        for t in stores.rows("conversations", "SELECT * FROM threads WHERE anonymised_at IS NULL")
    }
    messages = [
        m
        for m in stores.rows("conversations", "SELECT * FROM messages")
        if m["thread_id"] in threads
    ]
    ended = [t for t in threads.values() if _end(t) < CUTOFF]
    older = [m for m in messages if stored_utc(m["sent_at"]) < CUTOFF]
    newer = [m for m in messages if stored_utc(m["sent_at"]) >= CUTOFF]
    assert len({t["customer_account"] for t in ended}) > 1 and older and newer
    others_before = [t for t in threads.values() if _end(t) >= CUTOFF]
    call = SweepInput(
        sweep_id="SWEEP-C",
        as_of=NOW,
        rules=[EraseRule(category=c, before=CUTOFF) for c in CHAT_CATEGORIES],
    )

    result = stores.conversations.sweep(call)

    assert result.anonymised == {
        "contact_identifiers": len(ended),
        "traffic_data": len(older),
        "message_content": sum(1 for m in older if m["content"]),
    }
    after = {r["id"]: r for r in stores.rows("conversations", "SELECT * FROM messages")}
    for message in older:
        row = after[message["id"]]
        assert row["thread_id"] is row["content"] is row["platform_message_id"] is None
        assert row["delivered_at"] is row["read_at"] is None
        assert stored_utc(row["anonymised_at"]) == NOW
        assert stored_utc(row["sent_at"]) == stored_utc(message["sent_at"]).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        kept = ("customer_account", "channel", "direction", "status")
        assert [row[c] for c in kept] == [message[c] for c in kept]
    assert [tuple(after[m["id"]]) for m in newer] == [tuple(m) for m in newer]
    thread_rows = {r["id"]: r for r in stores.rows("conversations", "SELECT * FROM threads")}
    for thread in ended:
        row = thread_rows[thread["id"]]
        assert row["channel_user"] == keyed_hash(SECRET, thread["channel_user"], "pseudonym")
        assert row["phone"] is row["profile_name"] is None
        assert stored_utc(row["anonymised_at"]) == NOW
    assert [tuple(thread_rows[t["id"]]) for t in others_before] == [tuple(t) for t in others_before]
    assert_swept_once(stores, "conversations", stores.conversations, call, result)


@pytest.mark.usefixtures("small_chunks")
def test_cdp_sweep_deletes_old_events_and_anonymises_stale_profiles(stores: Stores) -> None:
    profiles = {
        p["id"]: p for p in stores.rows("cdp", "SELECT * FROM profiles WHERE anonymised_at IS NULL")
    }
    events = [e for e in stores.rows("cdp", "SELECT * FROM events") if e["profile_id"] in profiles]
    stale = {i for i, p in profiles.items() if stored_utc(p["updated_at"]) < CUTOFF}
    gone = {
        e["id"] for e in events if stored_utc(e["occurred_at"]) < CUTOFF or e["profile_id"] in stale
    }
    assert len({profiles[i]["customer_account"] for i in stale}) > 1
    assert len(stale) < len(profiles) and len(gone) < len(events)
    call = SweepInput(
        sweep_id="SWEEP-P",
        as_of=NOW,
        rules=[EraseRule(category=c, before=CUTOFF) for c in ("profile", "events")],
    )

    result = stores.cdp.sweep(call)

    assert result.anonymised == {"profile": len(stale), "events": len(gone)}
    remaining = {e["id"] for e in stores.rows("cdp", "SELECT id FROM events")}
    assert not remaining & gone and {e["id"] for e in events} - gone <= remaining
    for row in stores.rows("cdp", "SELECT * FROM profiles"):
        if row["id"] in stale:
            assert row["name"] is row["email"] is row["job_title"] is row["ip"] is None
            assert row["traits"] is row["external_id"] is None
            assert stored_utc(row["anonymised_at"]) == NOW
            assert row["customer_account"] == profiles[row["id"]]["customer_account"]
        elif row["id"] in profiles:
            assert tuple(row) == tuple(profiles[row["id"]])
    assert_swept_once(stores, "cdp", stores.cdp, call, result)


@pytest.mark.usefixtures("small_chunks")
def test_marketing_sweep_deletes_everyones_old_records_and_suppresses_no_one(
    stores: Stores,
) -> None:
    tables = {
        "prospect_profile": ("prospects", "created_at", CUTOFF),
        "subscriptions": ("subscriptions", "subscribed_at", CUTOFF),
        "consent_proof": (
            "consent_records",
            "coalesce(withdrawn_at, given_at)",
            FIVE_YEARS_BEFORE,
        ),
    }
    dated = {
        category: stores.rows("marketing", f"SELECT *, {column} AS dated FROM {table}")
        for category, (table, column, _) in tables.items()
    }
    old = {
        category: {r["id"] for r in found if stored_utc(r["dated"]) < tables[category][2]}
        for category, found in dated.items()
    }
    assert all(old.values()) and all(len(old[c]) < len(dated[c]) for c in tables)
    suppressed = suppressions(stores)
    call = SweepInput(
        sweep_id="SWEEP-M",
        as_of=NOW,
        rules=[EraseRule(category=c, before=before) for c, (_, _, before) in tables.items()],
    )

    result = stores.marketing.sweep(call)

    assert result.anonymised == {category: len(ids) for category, ids in old.items()}
    for category, (table, _, _) in tables.items():
        kept = {tuple(r)[: len(r) - 1] for r in dated[category] if r["id"] not in old[category]}
        assert set(stores.table("marketing", table)) == kept
    assert suppressions(stores) == suppressed
    assert_swept_once(stores, "marketing", stores.marketing, call, result)
