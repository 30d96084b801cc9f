"""The Omnichannel Widget connector (the dataset connector of
``connectors/datasets/widget.yaml``) on its seeded store: sessions found by any identity, erase
by rule cutting older sessions loose, rectify of the preferred channel, and the sweep, each
checked in the store's file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from connectors.builtin import BUILTIN
from connectors.kit.errors import ConnectorInputError
from dsr.blobstore import LocalBlobStore
from dsr.connector_contract import AccessInput, EraseInput, EraseRule, RectifyInput
from dsr.models import Correction, Identity
from dsr.serverkeys import ServerKeys
from tests.connectors.helpers import (
    CHANNEL,
    CUTOFF,
    EMAIL,
    NOW,
    PHONE,
    SECRET,
    Subject,
    assert_holding,
    assert_swept_once,
    changed_ids,
    day,
    marks,
    query,
    sweep_call,
    utc,
)
from tests.connectors.stores import Stores, holding_map

CATEGORIES = ("contact_identifiers", "traffic_data")
# What cutting a session loose clears (its day, duration and page count stay).
CLEARED = ("email", "phone", "channel_id", "preferred_channel", "ip", "pages")


def widget_sessions(stores: Stores, customer: str, subject: Subject) -> list[dict[str, Any]]:
    channels = [value for kind, value in subject.identities if kind is CHANNEL]
    return stores.query(
        "widget",
        "SELECT * FROM widget_sessions WHERE customer_account = ? AND (lower(email) = ? "
        f"OR phone = ? OR channel_id IN ({marks(channels)})) AND anonymised_at IS NULL "
        "ORDER BY id",
        customer,
        subject.value(EMAIL),
        subject.value(PHONE),
        *channels,
    )


# --- discover, access, erase, rectify -----------------------------------------------------


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
    assert {r["record"]["id"] for r in records} == {s["id"] for s in sessions}
    traffic = {r["record"]["id"]: r["record"] for r in records if r["category"] == "traffic_data"}
    assert {i: t["pages"] for i, t in traffic.items()} == {
        s["id"]: json.loads(s["pages"]) for s in sessions}
    assert {i: t["duration_seconds"] for i, t in traffic.items()} == {
        s["id"]: s["duration_seconds"] for s in sessions}
    contact = {r["record"]["id"]: r["record"] for r in records
               if r["category"] == "contact_identifiers"}
    assert {i: (c["email"], c["phone"], c["channel_id"]) for i, c in contact.items()} == {
        s["id"]: (s["email"], s["phone"], s["channel_id"]) for s in sessions}


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
        row = stores.query("widget", "SELECT * FROM widget_sessions WHERE id = ?", session["id"])
        assert all(row[0][field] is None for field in CLEARED)
        assert utc(row[0]["started_at"]) == day(session["started_at"])
        assert (row[0]["duration_seconds"], row[0]["page_count"]) == (
            session["duration_seconds"],
            session["page_count"],
        )
    after = stores.dump("widget")
    changed = changed_ids(before, after)
    assert changed["widget_sessions"] == {s["id"] for s in older}
    assert {c: widget_sessions(stores, c, subject) for c in subject.others} == elsewhere


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
    rows = stores.query(
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


# --- sweep --------------------------------------------------------------------------------


@pytest.mark.usefixtures("small_chunks")
def test_widget_sweep_cuts_every_customers_old_sessions_loose(stores: Stores) -> None:
    sessions = stores.query("widget", "SELECT * FROM widget_sessions WHERE anonymised_at IS NULL")
    old = [s for s in sessions if utc(s["started_at"]) < CUTOFF]
    assert len({s["customer_account"] for s in old}) > 1 and len(old) < len(sessions)
    before = stores.dump("widget")
    call = sweep_call(CATEGORIES)

    result = stores.connectors["widget"].sweep(call)

    assert result.anonymised == {"contact_identifiers": len(old), "traffic_data": len(old)}
    changed = changed_ids(before, stores.dump("widget"))
    assert changed["widget_sessions"] == {s["id"] for s in old}
    for session in old:
        row = stores.query("widget", "SELECT * FROM widget_sessions WHERE id = ?", session["id"])
        assert all(row[0][field] is None for field in CLEARED)
        assert utc(row[0]["started_at"]) == day(session["started_at"])
        assert utc(row[0]["anonymised_at"]) == NOW
        kept = ("customer_account", "duration_seconds", "page_count")
        assert [row[0][c] for c in kept] == [session[c] for c in kept]
    assert_swept_once(stores.connectors["widget"], stores.db("widget"), call, result)



# --- a store the hand-written connector kept ------------------------------------------------


def test_widget_keeps_the_restrictions_the_hand_written_connector_placed(tmp_path: Path) -> None:
    """A store from before the dataset file: its ``restrictions`` are adopted, once."""
    database = tmp_path / "widget.db"
    identity = Identity(type=EMAIL, value="Ana@Example.com")
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE TABLE restrictions (id INTEGER PRIMARY KEY, customer_account VARCHAR(64), "
            "identity_hash VARCHAR(64), request_id VARCHAR(64), since DATETIME, "
            "lifted_at DATETIME)")
        connection.execute(
            "INSERT INTO restrictions VALUES (1, 'CUST-0001', ?, 'REQ-OLD', "
            "'2026-01-01 10:00:00.000000', NULL)",
            (ServerKeys(SECRET).identities.tag(identity.normalised),))
    blobs = LocalBlobStore(tmp_path / "blobs")

    for _ in range(2):
        connector: Any = BUILTIN["widget"](f"sqlite:///{database}", blobs, SECRET)
        assert connector.is_restricted(identity, "CUST-0001")
        assert not connector.is_restricted(identity, "CUST-0002")
        connector.store.engine.dispose()
    own = query(database, "SELECT * FROM dsr_connector_widget_restrictions")
    assert [row["request_id"] for row in own] == ["REQ-OLD"], "adopted once"
