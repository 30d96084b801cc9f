"""The contract every product connector keeps in finding data: registry entry and activities,
deterministic seeds, subject lookups and locate on their indexes, locate naming the holders."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from connectors import (
    conversations_store,
    email_store,
    flow_builder,
    inbox_store,
    marketing_store,
    push_store,
)
from connectors.customer_account import accounts_query, resolve_subject, sources
from connectors.kit.activities import connector_activities
from connectors.numbers import PhoneNumber
from connectors.seeds.stores import POPULATION_SEEDS
from connectors.sms import subject_messages
from connectors.voice_store import subject_calls
from dsr.connector_contract import AccessInput, EraseInput, EraseRule, Operation
from dsr.models import Identity
from tests.connectors.helpers import (
    CHANNEL,
    CONNECTORS,
    EMAIL,
    NOW,
    PHONE,
    POPULATION,
    REGISTRY,
    Subject,
    defn_name,
    dump,
    explain,
    marks,
    store_table,
)
from tests.connectors.stores import Stores
from tests.connectors.subjects import FLOW_MATCH, INBOX_MATCH, person_hash

HOLDING = [name for name in CONNECTORS if REGISTRY.get(name).categories]
LOCATING = [name for name in CONNECTORS if Operation.LOCATE in REGISTRY.get(name).operations]
# The group's own data (the group is controller); every other connector holds end-user data.
GROUP_DATA = {"customer_account", "marketing"}


# --- the registry and the activities ------------------------------------------------------


@pytest.mark.parametrize("name", CONNECTORS)
def test_registry_entry_matches_the_connectors_activities(stores: Stores, name: str) -> None:
    entry, connector = REGISTRY.get(name), stores.connectors[name]
    names = {defn_name(fn) for fn in connector_activities(connector)}

    assert names == {f"{name}.{method}" for method in connector.activities}
    served = {f"{name}.{operation.value}" for operation in entry.operations}
    operations = {operation.value for operation in Operation}
    # Beyond the operations the registry names, only helpers that are no operation
    # (customer_account.registered_contact).
    assert names - served == {f"{name}.{m}" for m in connector.activities if m not in operations}
    assert served <= names
    assert entry.task_queue == f"dsr-connector-{name}"
    assert entry.role.value == ("group" if name in GROUP_DATA else "end_user")


@pytest.mark.parametrize("name", HOLDING)
async def test_access_runs_as_an_activity_with_heartbeats(stores: Stores, name: str) -> None:
    subject = stores.subjects[name]
    activities = {defn_name(fn): fn for fn in connector_activities(stores.connectors[name])}
    environment = ActivityEnvironment()
    beats: list[Any] = []
    environment.on_heartbeat = lambda *details: beats.append(details)

    result = await environment.run(
        activities[f"{name}.access"], AccessInput(scope=subject.scope("REQ-H001"))
    )

    assert result.blob_ref and sum(result.records.values()) > 0
    assert beats and beats[-1][0]["records"] == sum(result.records.values())
    with pytest.raises(ApplicationError) as refused:
        await environment.run(
            activities[f"{name}.erase"],
            EraseInput(scope=subject.scope("REQ-H002"), rules=[EraseRule(category="x")]),
        )
    assert refused.value.non_retryable


# --- seeds --------------------------------------------------------------------------------

# Seeds that count the rows of one table (the others count every row they write).
SEED_COUNTS = {"conversations": "messages", "cdp": "events"}


@pytest.mark.parametrize("name", list(POPULATION_SEEDS))
def test_seed_is_deterministic_and_shares_end_users_between_customers(
    stores: Stores, name: str
) -> None:
    """Every store seeded from the shared population (SMS and customer accounts are seeded
    together: tests/connectors/test_sms.py)."""
    before = dump(stores.db(name))

    again = POPULATION_SEEDS[name](stores.connectors[name], POPULATION, now=NOW)

    data = {t: r for t, r in before.items() if t not in ("operation_log", "restrictions")}
    assert again == stores.written[name]
    counted = [data[SEED_COUNTS[name]]] if name in SEED_COUNTS else list(data.values())
    assert again == sum(len(r) for r in counted)
    assert dump(stores.db(name)) == before
    if name in HOLDING and name not in GROUP_DATA:
        assert stores.subjects[name].others, "the same end user must be held by another customer"


# --- subject lookups ----------------------------------------------------------------------

# Each lookup of the subject, with the index steps its query plan must show.
Lookups = list[tuple[Any, list[str]]]


def _phone_lookups(table: str, lookup: Any) -> Callable[[Stores, Subject], Lookups]:
    def lookups(stores: Stores, subject: Subject) -> Lookups:
        steps = [f"USING INDEX ix_{table}_subject (customer_account=? AND end_user_phone=?)"]
        return [(lookup(subject.controller, [subject.value(PHONE)]), steps)]

    return lookups


def _numbers_lookups(stores: Stores, subject: Subject) -> Lookups:
    statement = PhoneNumber.__table__.select().where(
        PhoneNumber.customer_account == subject.controller,
        PhoneNumber.number == subject.value(PHONE),
    )
    return [(statement, ["USING INDEX ix_numbers_customer (customer_account=? AND number=?)"])]


def _account_lookups(stores: Stores, subject: Subject) -> Lookups:
    by_email = accounts_query(set(), {stores.facts.controller_registered_email})
    with stores.accounts.store.reading() as session:
        found = resolve_subject(session, subject.scope())
    steps = {
        "contacts": ["ix_contacts_account_id", "USING INDEX ix_contacts_email"],
        "invoices": ["ix_invoices_account_id"],
        "accounts": ["(account_id=?)"],
        "billing_profiles": ["(account_id=?)"],
    }
    return [(by_email, ["USING INDEX ix_accounts_registered_email"])] + [
        (select(source.model).where(*source.where), steps[source.model.__tablename__])
        for source in sources(found)
    ]


def _contact_steps(table: str) -> list[str]:
    return [
        "MULTI-INDEX OR",
        f"USING INDEX ix_{table}_phone (customer_account=? AND contact_phone=?)",
        f"USING INDEX ix_{table}_email (customer_account=? AND contact_email=?)",
        f"ix_{table}_channel_id (customer_account=? AND contact_channel_id=?)",
    ]


def _inbox_lookups(stores: Stores, subject: Subject) -> Lookups:
    found = inbox_store.subject_of(subject.scope())
    email_only = Identity(type=EMAIL, value=subject.value(EMAIL).lower())
    by_email = inbox_store.subject_of(
        subject.scope().model_copy(update={"identities": [email_only]})
    )
    assert found is not None and by_email is not None
    steps = _contact_steps("conversations")
    messages = select(inbox_store.Message).where(
        *inbox_store.subject_messages(found, "agent_notes")
    )
    return [
        (inbox_store.subject_conversations(found), steps),
        (inbox_store.subject_conversations(by_email), [steps[2]]),
        (messages, ["USING INDEX ix_messages_conversation (conversation_id=?)"]),
    ]


def _flow_lookups(stores: Stores, subject: Subject) -> Lookups:
    found = flow_builder.subject_of(subject.scope())
    assert found is not None
    return [(flow_builder.subject_invocations(found), _contact_steps("invocations"))]


def _conversations_lookups(stores: Stores, subject: Subject) -> Lookups:
    found = conversations_store.resolve_subject(subject.scope())
    assert found is not None
    index = "USING INDEX ix_threads_subject (customer_account=? AND channel_user=?)"
    return [
        (conversations_store.subject_threads(found), [index]),
        (
            conversations_store.subject_messages(found),
            [index, "USING INDEX ix_messages_thread (thread_id=?)"],
        ),
    ]


def _dataset_lookups(
    name: str, steps: dict[str, list[str]]
) -> Callable[[Stores, Subject], Lookups]:
    """A dataset connector's lookups, as its engine makes them (``Reach.sources``): the
    subject's rows found by identity, then those reached from them; ``steps`` by the
    ``table.column`` each looks up by."""

    def lookups(stores: Stores, subject: Subject) -> Lookups:
        reach, scope = stores.connectors[name].reach, subject.scope()
        with stores.connectors[name].store.reading() as session:
            found = reach.subject_rows(session, scope) or {}
        made = [(f"{table}.{lookup.column}", reach.rows_statement(table, lookup.where))
                for table in reach.order for lookup in reach.sources(table, scope, found)]
        assert {column for column, _ in made} == set(steps), "a lookup of every column"
        return [(statement, steps[column]) for column, statement in made]

    return lookups


def _marketing_lookups(stores: Stores, subject: Subject) -> Lookups:
    found = marketing_store.Subject((subject.value(EMAIL).lower(),), (person_hash(),))
    steps = {
        "prospect_profile": "USING INDEX ix_prospects_email (<expr>=?)",
        "subscriptions": "USING INDEX ix_subscriptions_email (<expr>=?)",
        "consent_proof": "USING INDEX ix_consent_records_email_hash (email_hash=?)",
    }
    return [
        (marketing_store.subject_rows(source), [steps[category]])
        for category, source in marketing_store.sources(found).items()
    ]


def _email_lookups(stores: Stores, subject: Subject) -> Lookups:
    found = email_store.email_subject(subject.scope())
    assert found is not None
    return [
        (
            email_store.subject_recipients(subject.controller, [subject.value(EMAIL)]),
            ["ix_recipients_subject (customer_account=? AND <expr>=?)"],
        ),
        (
            select(email_store.Send).where(*email_store.part(found, "message_content").where),
            ["ix_sends_recipient (recipient_id=?)", "ix_recipients_subject"],
        ),
    ]


def _push_lookups(stores: Stores, subject: Subject) -> Lookups:
    customer, address = subject.controller, subject.value(EMAIL)
    return [
        (
            push_store.subject_devices(customer, [address]),
            ["ix_beams_devices_subject (customer_account=? AND user_id=?)"],
        ),
        (
            push_store.subject_connections(customer, [address]),
            ["ix_channel_connections_subject (customer_account=? AND user_id=?)"],
        ),
    ]


SUBJECT_LOOKUPS: dict[str, Callable[[Stores, Subject], Lookups]] = {
    "sms": _phone_lookups("messages", subject_messages),
    "voice": _phone_lookups("calls", subject_calls),
    "numbers": _numbers_lookups,
    "customer_account": _account_lookups,
    "inbox": _inbox_lookups,
    "flow_builder": _flow_lookups,
    "conversations": _conversations_lookups,
    "cdp": _dataset_lookups("cdp", {
        "profiles.email": ["USING INDEX ix_profiles_subject (customer_account=? AND <expr>=?)"],
        "events.profile_id": ["INDEX ix_events_profile (profile_id=?)"],  # covering: key, date
    }),
    "marketing": _marketing_lookups,
    "email": _email_lookups,
    "video": _dataset_lookups("video", {
        "visitors.email": ["ix_visitors_email (customer_account=? AND <expr>=?)"],
        "visitors.phone": ["ix_visitors_phone (customer_account=? AND <expr>=?)"],
        "meetings.id": ["SEARCH meetings USING INTEGER PRIMARY KEY (rowid=?)"],
    }),
    "widget": _dataset_lookups("widget", {
        "widget_sessions.email": ["ix_widget_sessions_email (customer_account=? AND <expr>=?)"],
        "widget_sessions.phone": ["ix_widget_sessions_phone (customer_account=? AND <expr>=?)"],
        "widget_sessions.channel_id": [
            "ix_widget_sessions_channel (customer_account=? AND channel_id=?)"],
    }),
    "push": _push_lookups,
}


@pytest.mark.parametrize("name", CONNECTORS)
def test_subject_lookups_use_the_composite_indexes(stores: Stores, name: str) -> None:
    assert name in SUBJECT_LOOKUPS, f"name {name}'s subject lookups in SUBJECT_LOOKUPS"
    engine = stores.connectors[name].store.engine
    for statement, steps in SUBJECT_LOOKUPS[name](stores, stores.subjects[name]):
        plan = explain(engine, statement)
        for step in steps:
            assert step in plan, plan
        assert "SCAN" not in plan.replace("SCAN CONSTANT ROW", ""), plan


# --- locate: which customers hold an end user who wrote to the group directly -------------

STRANGER = Subject(
    (
        (EMAIL, "nobody@locate.invalid"),
        (PHONE, "+999000000001"),
        (CHANNEL, "pusher:nobody-at-all"),
        (CHANNEL, "line:nobody-at-all"),
        (CHANNEL, "whatsapp:999000000001"),
    ),
    "nobody",
    (),
)
# The identity-first indexes each connector's locate must use.
LOCATE_INDEXES = {
    "sms": ["ix_messages_phone (end_user_phone=?)"],
    "voice": ["ix_calls_locate_phone (end_user_phone=?)"],
    "inbox": [
        "ix_conversations_locate_phone (contact_phone=?)",
        "ix_conversations_locate_email (contact_email=?)",
        "ix_conversations_locate_channel_id (contact_channel_id=?)",
    ],
    "flow_builder": [
        "ix_invocations_locate_phone (contact_phone=?)",
        "ix_invocations_locate_email (contact_email=?)",
        "ix_invocations_locate_channel_id (contact_channel_id=?)",
    ],
    "conversations": ["ix_threads_locate_channel_user (channel_user=?)"],
    "cdp": ["ix_profiles_locate_email (<expr>=?)"],
    "email": ["ix_recipients_locate_email (<expr>=?)"],
    "video": ["ix_visitors_locate_email (<expr>=?)", "ix_visitors_locate_phone (<expr>=?)"],
    "widget": [
        "ix_widget_sessions_locate_email (<expr>=?)",
        "ix_widget_sessions_locate_phone (<expr>=?)",
        "ix_widget_sessions_locate_channel (channel_id=?)",
    ],
    "push": [
        "ix_beams_devices_locate_user (user_id=?)",
        "ix_channel_connections_locate_user (user_id=?)",
    ],
}


def holders(stores: Stores, name: str, subject: Subject) -> dict[str, int]:
    """The subject's live rows per customer, counted independently of the connector."""
    values = [value for _, value in subject.identities]
    channels = [value for kind, value in subject.identities if kind is CHANNEL]
    live = "anonymised_at IS NULL"
    if name in ("sms", "voice"):
        table = "messages" if name == "sms" else "calls"
        sql, params = f"SELECT customer_account FROM {table} WHERE end_user_phone = ?", values
    elif name in ("inbox", "flow_builder"):
        table, match = ("conversations", INBOX_MATCH) if name == "inbox" else (
            "invocations", FLOW_MATCH)
        sql = f"SELECT customer_account FROM {table} WHERE {match}"
        params = [subject.value(PHONE), subject.value(EMAIL).lower(), *channels]
    elif name == "conversations":
        sql = "SELECT customer_account FROM threads WHERE (phone = ? OR channel_user IN (?, ?))"
        params = [subject.value(PHONE), *channels]
    elif name in ("cdp", "email"):
        table = "profiles" if name == "cdp" else "recipients"
        sql = f"SELECT customer_account FROM {table} WHERE lower(email) = ?"
        params = [subject.value(EMAIL).lower()]
    elif name == "video":
        sql = "SELECT customer_account FROM visitors WHERE (lower(email) = ? OR phone = ?)"
        params = [subject.value(EMAIL).lower(), subject.value(PHONE)]
    elif name == "widget":
        sql = (
            "SELECT customer_account FROM widget_sessions"
            f" WHERE (lower(email) = ? OR phone = ? OR channel_id IN ({marks(channels)}))"
        )
        params = [subject.value(EMAIL).lower(), subject.value(PHONE), *channels]
    elif name == "push":
        value = subject.value(EMAIL)
        found = stores.query(
            name,
            "SELECT customer_account FROM beams_devices WHERE user_id IN (?, ?) UNION ALL"
            f" SELECT customer_account FROM channel_connections WHERE user_id IN (?, ?) AND {live}",
            value,
            value.lower(),
            value,
            value.lower(),
        )
        return dict(Counter(row["customer_account"] for row in found))
    else:
        raise AssertionError(f"no independent count of {name}'s holders: add it here")
    found = stores.query(name, f"{sql} AND {live}", *params)
    return dict(Counter(row["customer_account"] for row in found))


def operation_log_size(stores: Stores, name: str) -> int:
    log = store_table(name, "operation_log")
    return int(stores.rows(name, f"SELECT COUNT(*) FROM {log}")[0][0])


@pytest.mark.parametrize("name", LOCATING)
def test_locate_names_exactly_the_customers_holding_the_subject(stores: Stores, name: str) -> None:
    subject = stores.subjects[name]
    counts = holders(stores, name, subject)
    assert len(counts) >= 2, "the seed must give the subject records at several customers"
    logged = operation_log_size(stores, name)

    located = stores.connectors[name].locate(subject.scope("REQ-L001", customer=False))

    assert located.connector == name
    assert located.customers == sorted(c for c, n in counts.items() if n > 0)
    assert {subject.controller, *subject.others} <= set(located.customers)
    assert set(located.model_dump()) == {"connector", "customers"}, "no records, only accounts"
    confined = stores.connectors[name].locate(subject.scope("REQ-L002"))
    assert confined.customers == located.customers, "the scope's customer is ignored"
    assert operation_log_size(stores, name) == logged, "read-only: not in the operation log"


@pytest.mark.parametrize("name", LOCATING)
def test_locate_finds_no_customer_for_an_unknown_identity(stores: Stores, name: str) -> None:
    connector = stores.connectors[name]
    assert connector.locate(STRANGER.scope("REQ-L003", customer=False)).customers == []
    nobody = Subject((), "nobody", ())
    assert connector.locate(nobody.scope("REQ-L004", customer=False)).customers == []


@pytest.mark.parametrize("name", LOCATING)
def test_locate_uses_the_identity_first_indexes(stores: Stores, name: str) -> None:
    connector = stores.connectors[name]
    statement = connector.holders(stores.subjects[name].scope(customer=False))

    plan = explain(connector.store.engine, statement)

    assert name in LOCATE_INDEXES, f"name {name}'s locate indexes in LOCATE_INDEXES"
    for index in LOCATE_INDEXES[name]:
        assert f"INDEX {index}" in plan, plan
    # No store table is scanned (a union's subquery may be).
    tables = connector.schema.metadata.tables
    assert not [
        step for step in plan.split("\n") for table in tables
        if step == f"SCAN {table}" or step.startswith(f"SCAN {table} ")
    ], plan
