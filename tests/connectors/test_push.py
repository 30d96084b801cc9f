"""The Push connector (Pusher Beams and Channels) on its seeded store: discover, access, a
customer's own user ids, erase by rule of devices and connections, and the sweep."""

from __future__ import annotations

from typing import Any

import pytest

from connectors import push
from dsr.connector_contract import AccessInput, EraseInput, EraseRule
from dsr.hashing import keyed_hash
from tests.connectors.helpers import (
    CHANNEL,
    CUTOFF,
    EMAIL,
    SECRET,
    assert_holding,
    assert_swept_once,
    by_id,
    changed_ids,
    day,
    marks,
    sweep_call,
    utc,
)
from tests.connectors.stores import Stores, erase_by_rule, holding_map


def push_rows(stores: Stores, customer: str, user_id: str) -> dict[str, list[dict[str, Any]]]:
    devices = stores.query(
        "push",
        "SELECT * FROM beams_devices WHERE customer_account = ? AND user_id = ? ORDER BY id",
        customer,
        user_id,
    )
    connections = stores.query(
        "push",
        "SELECT * FROM channel_connections WHERE customer_account = ? AND user_id = ? ORDER BY id",
        customer,
        user_id,
    )
    ids = [row["id"] for row in connections]
    events = stores.query(
        "push", f"SELECT * FROM client_events WHERE connection_id IN ({marks(ids)})", *ids
    )
    return {"devices": devices, "connections": connections, "events": events}


# --- discover, access, erase --------------------------------------------------------------


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
        row = stores.query(
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


# --- sweep --------------------------------------------------------------------------------


@pytest.mark.usefixtures("small_chunks")
def test_push_sweep_erases_every_customers_old_devices_and_connections(stores: Stores) -> None:
    devices = stores.query("push", "SELECT * FROM beams_devices")
    connections = by_id(
        stores.query("push", "SELECT * FROM channel_connections WHERE anonymised_at IS NULL")
    )
    events = [
        e
        for e in stores.query("push", "SELECT * FROM client_events")
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
    call = sweep_call(push.CATEGORIES)

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
    for row in stores.query(
        "push", f"SELECT * FROM channel_connections WHERE id IN ({marks(list(old))})", *old
    ):
        was = connections[row["id"]]
        assert row["user_id"] == keyed_hash(SECRET, was["user_id"], "pseudonym")
        assert row["socket_id"] is row["channel_name"] is row["ip"] is None
        assert utc(row["connected_at"]) == day(was["connected_at"])
    assert all(after["client_events"][i][3] is None for i in old_content)
    assert_swept_once(stores.connectors["push"], stores.db("push"), call, result)

