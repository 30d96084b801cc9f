"""The Conversations connector (WhatsApp, Line, Messenger...): discover, access, erase by rule
and without a cutoff, what a restriction counts, locate by phone, the seed and the sweep."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

import pytest

from dsr.connector_contract import AccessInput, EraseInput, EraseRule, FlagInput, Scope, SweepInput
from dsr.hashing import keyed_hash
from dsr.models import Identity, IdentityType
from tests.connectors.helpers import CUTOFF, NOW, SECRET, assert_swept_once, scope, utc
from tests.connectors.stores import Stores
from tests.connectors.subjects import chat_identities, chat_threads_sql, thread_end

CHAT_CATEGORIES = ["contact_identifiers", "traffic_data", "message_content"]


def chat_scope(stores: Stores, request_id: str = "REQ-C001") -> Scope:
    picks = stores.picks
    return scope(request_id, *chat_identities(picks.chat_user), customer=picks.chat_customer)


def chat_threads(stores: Stores, other: bool = False) -> list[sqlite3.Row]:
    picks = stores.picks
    return stores.rows(
        "conversations", *chat_threads_sql(picks.chat_user, picks.chat_customer, other)
    )


def chat_messages(stores: Stores, threads: list[sqlite3.Row]) -> list[sqlite3.Row]:
    ids = ",".join(str(thread["id"]) for thread in threads)
    return stores.rows(
        "conversations", f"SELECT * FROM messages WHERE thread_id IN ({ids}) ORDER BY id"
    )


# --- seed ---------------------------------------------------------------------------------


def test_conversations_seed_spans_fourteen_months_and_shares_end_users(stores: Stores) -> None:
    shared_chats = stores.rows(
        "conversations",
        "SELECT channel_user FROM threads GROUP BY channel_user "
        "HAVING COUNT(DISTINCT customer_account) > 1",
    )
    assert len(shared_chats) > 5
    sent = [utc(r[0]) for r in stores.rows("conversations", "SELECT sent_at FROM messages")]
    assert NOW - timedelta(days=430) < min(sent) < NOW - timedelta(days=365) < max(sent) < NOW


# --- discover, access, erase, restrict ----------------------------------------------------


def test_conversations_discover_counts_and_dates(stores: Stores) -> None:
    threads = chat_threads(stores)
    messages = chat_messages(stores, threads)
    assert len(threads) >= 2

    discovery = stores.conversations.discover(chat_scope(stores))

    holdings = {holding.category: holding for holding in discovery.holdings}
    contact = holdings["contact_identifiers"]
    assert contact.records == len(threads)
    assert contact.earliest == min(thread_end(t) for t in threads)
    assert contact.latest == max(thread_end(t) for t in threads)
    assert holdings["traffic_data"].records == len(messages)
    assert holdings["traffic_data"].earliest == min(utc(m["sent_at"]) for m in messages)
    assert holdings["traffic_data"].latest == max(utc(m["sent_at"]) for m in messages)
    with_content = [m for m in messages if m["content"] is not None]
    assert holdings["message_content"].records == len(with_content)


def test_conversations_access_exports_only_the_customers_records(stores: Stores) -> None:
    picks = stores.picks
    threads, elsewhere = chat_threads(stores), chat_threads(stores, other=True)
    messages = chat_messages(stores, threads)
    assert elsewhere, "the seed must give the end user another customer's threads"

    result = stores.conversations.access(AccessInput(scope=chat_scope(stores)))

    assert result.blob_ref == "blob:exports/REQ-C001/conversations.jsonl"
    records = stores.export(result.blob_ref)
    assert {r["customer_account"] for r in records} == {picks.chat_customer}
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
        picks.chat_user.phone,
        None,
    }


def test_conversations_erase_by_rule_cuts_older_records_loose_and_keeps_the_rest(
    stores: Stores,
) -> None:
    threads, elsewhere = chat_threads(stores), chat_threads(stores, other=True)
    messages = chat_messages(stores, threads)
    other_messages = chat_messages(stores, elsewhere)
    ended = [t for t in threads if thread_end(t) < CUTOFF]
    older = [m for m in messages if utc(m["sent_at"]) < CUTOFF]
    newer = [m for m in messages if utc(m["sent_at"]) >= CUTOFF]
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
        assert utc(row["sent_at"]).time() == datetime.min.time()
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


def test_conversations_restrict_and_lift(stores: Stores) -> None:
    picks = stores.picks
    subject = chat_scope(stores, "REQ-C003")
    line = Identity(type=IdentityType.CHANNEL_ID, value=picks.chat_user.channel_ids["line"])

    restricted = stores.conversations.restrict(FlagInput(scope=subject))
    retried = stores.conversations.restrict(FlagInput(scope=subject))

    assert restricted.records == len(chat_messages(stores, chat_threads(stores)))
    assert retried.already_done and retried.records == restricted.records
    assert stores.conversations.is_restricted(picks.chat_customer, line)
    other = next(c for c in picks.chat_user.customers if c != picks.chat_customer)
    assert not stores.conversations.is_restricted(other, line)
    stored = stores.rows("conversations", "SELECT * FROM restrictions")
    assert len(stored) == 3
    values = {value for row in stored for value in tuple(row)}
    assert not values & {identity.value for identity in chat_identities(picks.chat_user)}

    lifted = stores.conversations.restrict(FlagInput(scope=subject, lift=True))

    assert not lifted.already_done
    assert not stores.conversations.is_restricted(picks.chat_customer, line)


# --- locate -------------------------------------------------------------------------------


def test_conversations_locate_by_phone_finds_the_whatsapp_and_viber_holders(
    stores: Stores,
) -> None:
    user = stores.picks.chat_user
    by_phone = stores.conversations.locate(
        scope("REQ-CL03", Identity(type=IdentityType.PHONE, value=user.phone))
    )
    phone_counts = stores.rows(
        "conversations",
        "SELECT DISTINCT customer_account FROM threads WHERE anonymised_at IS NULL "
        "AND phone = ? ORDER BY 1",
        user.phone,
    )
    assert len(phone_counts) >= 2, "the seed must give the subject threads at several customers"
    assert by_phone.customers == [row[0] for row in phone_counts], "WhatsApp and Viber ids"


# --- sweep --------------------------------------------------------------------------------


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
    ended = [t for t in threads.values() if thread_end(t) < CUTOFF]
    older = [m for m in messages if utc(m["sent_at"]) < CUTOFF]
    newer = [m for m in messages if utc(m["sent_at"]) >= CUTOFF]
    assert len({t["customer_account"] for t in ended}) > 1 and older and newer
    others_before = [t for t in threads.values() if thread_end(t) >= CUTOFF]
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
        assert utc(row["anonymised_at"]) == NOW
        assert utc(row["sent_at"]) == utc(message["sent_at"]).replace(
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
        assert utc(row["anonymised_at"]) == NOW
    assert [tuple(thread_rows[t["id"]]) for t in others_before] == [tuple(t) for t in others_before]
    assert_swept_once(stores.conversations, stores.db("conversations"), call, result)

