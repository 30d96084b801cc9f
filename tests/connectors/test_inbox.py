"""The Inbox connector: discover per category, access, erase by rule and of agent notes only,
rectify of name and email, what a restriction counts, the seed and the sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import (
    AccessInput,
    EraseInput,
    EraseRule,
    FlagInput,
    RectifyInput,
    Scope,
)
from dsr.models import Correction
from tests.connectors.helpers import (
    CUTOFF,
    NOW,
    assert_swept_once,
    every_identity,
    ids,
    newer,
    older,
    phone_only,
    rows,
    scope,
    sweep_call,
    utc,
)
from tests.connectors.stores import Stores
from tests.connectors.subjects import inbox_conversations, inbox_messages

INBOX_CATEGORIES = ["contact_identifiers", "conversation_content", "agent_notes"]


def inbox_scope(stores: Stores, request_id: str = "REQ-I001") -> Scope:
    user = stores.picks.inbox
    return scope(request_id, *every_identity(user), customer=user.customers[0])


# --- seed ---------------------------------------------------------------------------------


def test_inbox_seed_spans_fourteen_months(stores: Stores) -> None:
    sql = "SELECT MIN(opened_at), MAX(opened_at) FROM conversations"
    first, last = stores.rows("inbox", sql)[0]
    assert NOW - timedelta(days=426) < utc(first) < NOW - timedelta(days=395)
    assert NOW - timedelta(days=30) < utc(last) <= NOW


# --- discover, access, erase, rectify, restrict -------------------------------------------


def test_inbox_discover_counts_and_dates_per_category(stores: Stores) -> None:
    user, database = stores.picks.inbox, stores.db("inbox")
    mine = inbox_conversations(database, user, user.customers[0])
    content = inbox_messages(database, mine, internal=False)
    notes = inbox_messages(database, mine, internal=True)

    holdings = {h.category: h for h in stores.inbox.discover(inbox_scope(stores)).holdings}

    assert {c: h.records for c, h in holdings.items()} == {
        "contact_identifiers": len(mine),
        "conversation_content": len(content),
        "agent_notes": len(notes),
    }
    assert holdings["contact_identifiers"].earliest == min(utc(r["opened_at"]) for r in mine)
    assert holdings["contact_identifiers"].latest == max(utc(r["opened_at"]) for r in mine)
    assert holdings["conversation_content"].latest == max(utc(r["sent_at"]) for r in content)
    assert holdings["agent_notes"].earliest == min(utc(r["sent_at"]) for r in notes)
    by_phone = scope("REQ-I002", *phone_only(user), customer=user.customers[0])
    phone_rows = [r for r in mine if r["contact_phone"] == user.phone]
    found = {h.category: h.records for h in stores.inbox.discover(by_phone).holdings}
    assert found["contact_identifiers"] == len(phone_rows) < len(mine)


def test_inbox_access_exports_exactly_the_controllers_conversations(stores: Stores) -> None:
    user, database = stores.picks.inbox, stores.db("inbox")
    mine = inbox_conversations(database, user, user.customers[0])
    elsewhere = inbox_conversations(database, user, user.customers[0], other=True)
    assert elsewhere, "the subject must also be another customer's end user"

    result = stores.inbox.access(AccessInput(scope=inbox_scope(stores)))

    assert result.blob_ref is not None
    records = stores.export(result.blob_ref)
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
    user, database = stores.picks.inbox, stores.db("inbox")
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
    user, database = stores.picks.inbox, stores.db("inbox")
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
    user, database = stores.picks.inbox, stores.db("inbox")
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



def test_inbox_restriction_covers_every_conversation_naming_the_person(stores: Stores) -> None:
    subject = inbox_scope(stores, "REQ-S001")
    held = stores.inbox.discover(subject).holdings[0].records  # naming the person

    restricted = stores.inbox.restrict(FlagInput(scope=subject))

    assert restricted.records == held > 0


# --- sweep --------------------------------------------------------------------------------


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
        assert utc(after["anonymised_at"]) == NOW
        kept = ("channel", "agent_id", "opened_at", "closed_at", "customer_account")
        assert [after[c] for c in kept] == [before[c] for c in kept]
    assert inbox_messages(database, old) == []
    still = rows(database, f"SELECT * FROM conversations WHERE id IN ({ids(new)}) ORDER BY id")
    assert [tuple(r) for r in still] == [tuple(r) for r in new]
    assert [tuple(m) for m in inbox_messages(database, new)] == [tuple(m) for m in kept_messages]
    assert_swept_once(stores.inbox, database, call, result)

