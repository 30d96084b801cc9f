"""The Voice connector on its seeded store: discover with countries ended, access with
recordings, erase by rule and by country, the restriction's count, the seed and the sweep."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.seeds import voice
from dsr.connector_contract import AccessInput, EraseInput, EraseRule, FlagInput, Scope, SweepInput
from dsr.hashing import keyed_hash
from tests.connectors.helpers import (
    CUTOFF,
    NOW,
    POPULATION,
    SECRET,
    Row,
    assert_swept_once,
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
from tests.connectors.subjects import voice_calls

VOICE_CATEGORIES = ["phone_number", "traffic_data", "location_data", "call_recordings"]


def voice_scope(stores: Stores, request_id: str = "REQ-V001") -> Scope:
    user = stores.picks.voice
    return scope(request_id, *phone_only(user), customer=user.customers[0])


def recordings(database: Path, refs: list[str]) -> list[Row]:
    marks = ",".join("?" for _ in refs) or "NULL"
    return rows(database, f"SELECT * FROM recordings WHERE ref IN ({marks}) ORDER BY ref", *refs)


def end_in_italy(database: Path, calls: list[Row]) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute(f"UPDATE calls SET country_ended = 'IT' WHERE id IN ({ids(calls)})")


# --- seed ---------------------------------------------------------------------------------


def test_voice_seed_spans_fourteen_months_and_shares_end_users(stores: Stores) -> None:
    sql = "SELECT MIN(started_at), MAX(started_at) FROM calls"
    first, last = stores.rows("voice", sql)[0]
    assert NOW - timedelta(days=426) < utc(first) < NOW - timedelta(days=395)
    assert NOW - timedelta(days=30) < utc(last) <= NOW
    shared = stores.rows(
        "voice",
        "SELECT end_user_phone FROM calls GROUP BY end_user_phone "
        "HAVING COUNT(DISTINCT customer_account) > 1",
    )
    assert len(shared) == sum(1 for u in POPULATION.end_users if len(u.customers) > 1)


# --- discover, access, erase, restrict ----------------------------------------------------


def test_voice_discover_counts_dates_and_countries_ended(stores: Stores) -> None:
    user = stores.picks.voice
    mine = voice_calls(stores.db("voice"), user, user.customers[0])

    discovery = stores.voice.discover(voice_scope(stores))

    holdings = {h.category: h for h in discovery.holdings}
    assert list(holdings) == VOICE_CATEGORIES
    assert holdings["phone_number"].records == holdings["traffic_data"].records == len(mine)
    assert holdings["traffic_data"].earliest == min(utc(r["started_at"]) for r in mine)
    assert holdings["traffic_data"].latest == max(utc(r["started_at"]) for r in mine)
    assert holdings["traffic_data"].countries_ended == sorted({r["country_ended"] for r in mine})
    newest = {
        country: max(utc(r["started_at"]) for r in mine if r["country_ended"] == country)
        for country in {r["country_ended"] for r in mine}
    }
    assert holdings["traffic_data"].latest_by_country == newest
    assert holdings["location_data"].records == sum(1 for r in mine if r["cell_id"])
    recorded = [r for r in mine if r["recording_ref"]]
    assert holdings["call_recordings"].records == len(recorded)
    assert holdings["call_recordings"].earliest == min(
        utc(r["started_at"]) for r in recorded
    )


def test_voice_access_exports_exactly_the_controllers_calls(stores: Stores) -> None:
    user = stores.picks.voice
    mine = voice_calls(stores.db("voice"), user, user.customers[0])
    elsewhere = voice_calls(stores.db("voice"), user, user.customers[0], other=True)
    assert elsewhere, "the subject's number must also be another customer's"

    result = stores.voice.access(AccessInput(scope=voice_scope(stores)))

    assert result.blob_ref == "blob:exports/REQ-V001/voice.jsonl"
    records = stores.export(result.blob_ref)
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
    user, database = stores.picks.voice, stores.db("voice")
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
        assert utc(call["started_at"]) == utc(before["started_at"]).replace(
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
    user, database = stores.picks.voice, stores.db("voice")
    before = voice_calls(database, user, user.customers[0])
    rules = [EraseRule(category="call_recordings")]

    result = stores.voice.erase(EraseInput(scope=voice_scope(stores), rules=rules))

    after = voice_calls(database, user, user.customers[0])
    assert result.erased == {"call_recordings": sum(1 for r in before if r["recording_ref"])}
    assert result.retained == {"call_recordings": 0}
    assert [r["id"] for r in after] == [r["id"] for r in before]
    assert {r["recording_ref"] for r in after} == {None}
    assert all(r["anonymised_at"] is None for r in after)


def test_voice_erase_rules_confined_to_countries_reach_only_their_calls(stores: Stores) -> None:
    user, database = stores.picks.voice, stores.db("voice")
    mine = voice_calls(database, user, user.customers[0])
    end_in_italy(database, mine[::2])  # every other call ended in Italy
    italian, other = mine[::2], mine[1::2]
    italy_cutoff = CUTOFF - timedelta(days=120)  # Italy keeps traffic data for less long
    reached = [r for r in italian if utc(r["started_at"]) < italy_cutoff]
    reached += older(other, "started_at")
    assert reached and [r for r in italian if italy_cutoff <= utc(r["started_at"]) < CUTOFF]
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



def test_voice_restriction_covers_every_call_of_the_number(stores: Stores) -> None:
    subject = voice_scope(stores, "REQ-S001")
    held = stores.voice.discover(subject).holdings[0].records  # naming the person

    restricted = stores.voice.restrict(FlagInput(scope=subject))

    assert restricted.records == held > 0


# --- sweep --------------------------------------------------------------------------------


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
        assert utc(swept["anonymised_at"]) == NOW
        assert swept["recording_ref"] is swept["cell_id"] is swept["route"] is None
        assert utc(swept["started_at"]) == utc(before["started_at"]).replace(
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
    user, database = stores.picks.voice, stores.db("voice")
    end_in_italy(database, voice_calls(database, user, user.customers[0])[::2])
    calls = rows(database, "SELECT * FROM calls ORDER BY id")
    italy_cutoff = CUTOFF - timedelta(days=120)
    reached = {
        r["id"]
        for r in calls
        if utc(r["started_at"]) < (italy_cutoff if r["country_ended"] == "IT" else CUTOFF)
    }
    rules = [
        EraseRule(category="traffic_data", before=italy_cutoff, countries_ended=["IT"]),
        EraseRule(category="traffic_data", before=CUTOFF, countries_ended=list(voice.COUNTRIES)),
    ]

    result = stores.voice.sweep(SweepInput(sweep_id="SWEEP-VC", as_of=NOW, rules=rules))

    assert result.anonymised["traffic_data"] == len(reached)
    swept = rows(database, "SELECT id FROM calls WHERE anonymised_at IS NOT NULL")
    assert {r["id"] for r in swept} == reached

