"""The Flow Builder connector on its seeded store: discover, access with step outputs, erase
by rule and of channel data only, the restriction's count, the seed and the sweep."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from dsr.connector_contract import AccessInput, EraseInput, EraseRule, FlagInput, Scope
from tests.connectors.helpers import (
    CUTOFF,
    NOW,
    assert_swept_once,
    every_identity,
    ids,
    newer,
    older,
    rows,
    scope,
    sweep_call,
    utc,
)
from tests.connectors.stores import Stores
from tests.connectors.subjects import flow_invocations

FLOW_CATEGORIES = ["invocation_identifiers", "channel_data"]


def flow_scope(stores: Stores, request_id: str = "REQ-F001") -> Scope:
    user = stores.picks.flow
    return scope(request_id, *every_identity(user), customer=user.customers[0])


# --- seed ---------------------------------------------------------------------------------


def test_flow_seed_spans_fourteen_months(stores: Stores) -> None:
    sql = "SELECT MIN(invoked_at), MAX(invoked_at) FROM invocations"
    first, last = stores.rows("flow_builder", sql)[0]
    assert NOW - timedelta(days=426) < utc(first) < NOW - timedelta(days=395)
    assert NOW - timedelta(days=30) < utc(last) <= NOW


# --- discover, access, erase, restrict ----------------------------------------------------


def test_flow_discover_counts_and_dates(stores: Stores) -> None:
    user = stores.picks.flow
    mine = flow_invocations(stores.db("flow_builder"), user, user.customers[0])

    holdings = {h.category: h for h in stores.flow.discover(flow_scope(stores)).holdings}

    assert {c: h.records for c, h in holdings.items()} == {
        "invocation_identifiers": len(mine),
        "channel_data": len(mine),
    }
    assert holdings["invocation_identifiers"].earliest == min(
        utc(r["invoked_at"]) for r in mine
    )
    assert holdings["channel_data"].latest == max(utc(r["invoked_at"]) for r in mine)


def test_flow_access_exports_exactly_the_controllers_invocations(stores: Stores) -> None:
    user, database = stores.picks.flow, stores.db("flow_builder")
    mine = flow_invocations(database, user, user.customers[0])
    assert flow_invocations(database, user, user.customers[0], other=True)

    result = stores.flow.access(AccessInput(scope=flow_scope(stores)))

    assert result.blob_ref is not None
    records = stores.export(result.blob_ref)
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
    user, database = stores.picks.flow, stores.db("flow_builder")
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
    user, database = stores.picks.flow, stores.db("flow_builder")
    mine = flow_invocations(database, user, user.customers[0])

    result = stores.flow.erase(
        EraseInput(scope=flow_scope(stores), rules=[EraseRule(category="channel_data")])
    )

    assert result.erased == {"channel_data": len(mine)} and result.retained == {"channel_data": 0}
    after = flow_invocations(database, user, user.customers[0])
    assert [r["id"] for r in after] == [r["id"] for r in mine]
    assert all(r["payload"] is r["step_outputs"] is r["anonymised_at"] is None for r in after)
    assert [r["step_results"] for r in after] == [r["step_results"] for r in mine]



def test_flow_restriction_covers_every_invocation_naming_the_person(stores: Stores) -> None:
    subject = flow_scope(stores, "REQ-S001")
    held = stores.flow.discover(subject).holdings[0].records  # naming the person

    restricted = stores.flow.restrict(FlagInput(scope=subject))

    assert restricted.records == held > 0


# --- sweep --------------------------------------------------------------------------------


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
        assert utc(after["anonymised_at"]) == NOW
        steps = json.loads(after["step_results"])
        assert steps == [
            {"step": s["step"], "status": s["status"]} for s in json.loads(before["step_results"])
        ]
        kept = ("flow_id", "invoked_at", "trigger_channel", "customer_account")
        assert [after[c] for c in kept] == [before[c] for c in kept]
    still = rows(database, f"SELECT * FROM invocations WHERE id IN ({ids(new)}) ORDER BY id")
    assert [tuple(r) for r in still] == [tuple(r) for r in new]
    assert_swept_once(stores.flow, database, call, result)

