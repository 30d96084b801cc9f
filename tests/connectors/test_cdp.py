"""The CDP connector (the dataset connector of ``connectors/datasets/cdp.yaml``) on its seeded
store: discover, access, erase by rule (older events, then the profile), rectify, the
restriction and objection flags, and the sweep, each checked in the store's file."""

from __future__ import annotations

import sqlite3

import pytest

from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import (
    AccessInput,
    EraseInput,
    EraseRule,
    FlagInput,
    RectifyInput,
    Scope,
    SweepInput,
)
from dsr.models import Correction, Identity, IdentityType
from tests.connectors.helpers import CUTOFF, NOW, assert_swept_once, scope, utc
from tests.connectors.stores import Stores
from tests.connectors.subjects import events_sql, profile_sql


def profile_scope(stores: Stores, request_id: str = "REQ-P001") -> Scope:
    picks = stores.picks
    email = Identity(type=IdentityType.EMAIL, value=picks.profile_user.email.upper())
    return scope(request_id, email, customer=picks.profile_customer)


def cdp_rows(stores: Stores, what: str, other: bool = False) -> list[sqlite3.Row]:
    picks = stores.picks
    sql = profile_sql if what == "profiles" else events_sql
    return stores.rows("cdp", *sql(picks.profile_user, picks.profile_customer, other))


# --- seed ---------------------------------------------------------------------------------


def test_cdp_seed_shares_end_users_across_customers(stores: Stores) -> None:
    shared_profiles = stores.rows(
        "cdp",
        "SELECT lower(email) FROM profiles GROUP BY lower(email) "
        "HAVING COUNT(DISTINCT customer_account) > 1",
    )
    assert len(shared_profiles) > 5


# --- discover, access, erase, rectify, restrict, object -----------------------------------


def test_cdp_discover_counts_and_dates(stores: Stores) -> None:
    profiles, events = cdp_rows(stores, "profiles"), cdp_rows(stores, "events")

    discovery = stores.cdp.discover(profile_scope(stores))

    holdings = {holding.category: holding for holding in discovery.holdings}
    assert holdings["profile"].records == len(profiles) == 1
    assert holdings["profile"].latest == utc(profiles[0]["updated_at"])
    assert holdings["events"].records == len(events)
    assert holdings["events"].earliest == min(utc(e["occurred_at"]) for e in events)
    assert holdings["events"].latest == max(utc(e["occurred_at"]) for e in events)


def test_cdp_access_exports_only_the_customers_profile_and_events(stores: Stores) -> None:
    picks = stores.picks
    profiles, events = cdp_rows(stores, "profiles"), cdp_rows(stores, "events")
    elsewhere = cdp_rows(stores, "events", other=True)
    assert elsewhere, "the seed must give the end user another customer's profile"

    result = stores.cdp.access(AccessInput(scope=profile_scope(stores)))

    assert result.blob_ref is not None
    records = stores.export(result.blob_ref)
    profile = [r["record"] for r in records if r["category"] == "profile"]
    assert [p["id"] for p in profile] == [profiles[0]["id"]]
    assert [p["email"].lower() for p in profile] == [picks.profile_user.email]
    assert profile[0]["traits"]["plan"] and profile[0]["ip"] == picks.profile_user.ip
    exported = [r["record"] for r in records if r["category"] == "events"]
    assert {e["id"] for e in exported} == {e["id"] for e in events}
    assert not {e["id"] for e in exported} & {e["id"] for e in elsewhere}
    assert {e["profile_id"] for e in exported} == {profiles[0]["id"]}
    assert all(e["properties"] and e["occurred_at"] for e in exported)
    assert result.records == {"profile": 1, "events": len(events)}


def test_cdp_erase_by_rule_deletes_older_events_then_anonymises_the_profile(
    stores: Stores,
) -> None:
    picks = stores.picks
    profile, events = cdp_rows(stores, "profiles")[0], cdp_rows(stores, "events")
    other_profiles = cdp_rows(stores, "profiles", other=True)
    other_events = cdp_rows(stores, "events", other=True)
    older = [e for e in events if utc(e["occurred_at"]) < CUTOFF]
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
    after = stores.rows("cdp", *profile_sql(picks.profile_user, picks.profile_customer, True))
    assert [tuple(r) for r in after] == [tuple(r) for r in other_profiles]
    after_events = cdp_rows(stores, "events", other=True)
    assert [tuple(r) for r in after_events] == [tuple(r) for r in other_events]
    assert stores.cdp.discover(profile_scope(stores)).holdings == []


def test_cdp_erasing_the_profile_up_to_a_date_deletes_the_events_before_it(
    stores: Stores,
) -> None:
    """The profile (updated after the cutoff) stays as it is; its older events go, as an
    erasure of the person's profile data."""
    profile, events = cdp_rows(stores, "profiles")[0], cdp_rows(stores, "events")
    older = [e for e in events if utc(e["occurred_at"]) < CUTOFF]
    rule = EraseRule(category="profile", before=CUTOFF)

    result = stores.cdp.erase(EraseInput(scope=profile_scope(stores), rules=[rule]))

    assert result.erased == {"events": len(older), "profile": 0} and older
    assert result.retained == {"profile": 1}
    kept = stores.rows("cdp", "SELECT id FROM events WHERE profile_id = ?", profile["id"])
    assert {e["id"] for e in kept} == {e["id"] for e in events} - {e["id"] for e in older}
    assert tuple(cdp_rows(stores, "profiles")[0]) == tuple(profile)


def test_cdp_rectify_corrects_name_email_and_job_title(stores: Stores) -> None:
    others = cdp_rows(stores, "profiles", other=True)
    profile = cdp_rows(stores, "profiles")[0]
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
    assert row[0]["updated_at"] == profile["updated_at"], "the dataset form keeps its date"
    after = stores.rows(
        "cdp", *profile_sql(stores.picks.profile_user, stores.picks.profile_customer, True)
    )
    assert [tuple(r) for r in after] == [tuple(r) for r in others]
    bad = [Correction(field="email", value="not-an-address")]
    with pytest.raises(ConnectorInputError, match="email is malformed") as refused:
        stores.cdp.rectify(RectifyInput(scope=profile_scope(stores, "REQ-P003"), corrections=bad))
    assert "not-an-address" not in str(refused.value)


def test_cdp_restrict_lift_and_object(stores: Stores) -> None:
    flags = "SELECT processing_restricted, objected_at FROM profiles WHERE id = ?"
    profile_id = cdp_rows(stores, "profiles")[0]["id"]
    events = cdp_rows(stores, "events")
    others = cdp_rows(stores, "profiles", other=True)

    restricted = stores.cdp.restrict(FlagInput(scope=profile_scope(stores)))

    assert restricted.records == 1 + len(events), "the profile and every event of it"
    assert tuple(stores.rows("cdp", flags, profile_id)[0]) == (1, None)
    stores.cdp.restrict(FlagInput(scope=profile_scope(stores), lift=True))
    assert tuple(stores.rows("cdp", flags, profile_id)[0]) == (0, None)

    objected = stores.cdp.object(FlagInput(scope=profile_scope(stores, "REQ-P004")))

    assert objected.records == 1
    assert utc(stores.rows("cdp", flags, profile_id)[0]["objected_at"]) == NOW
    assert [tuple(r) for r in cdp_rows(stores, "profiles", other=True)] == [
        tuple(r) for r in others
    ]
    with pytest.raises(ConnectorInputError, match="cannot lift object"):
        stores.cdp.object(FlagInput(scope=profile_scope(stores, "REQ-P005"), lift=True))


def test_cdp_restriction_stays_with_a_rectified_email(stores: Stores) -> None:
    picks = stores.picks
    corrected = "anna.m@new.example.org"
    flag = "SELECT processing_restricted FROM profiles WHERE id = ?"
    profile_id = cdp_rows(stores, "profiles")[0]["id"]
    stores.cdp.restrict(FlagInput(scope=profile_scope(stores, "REQ-P007")))
    assert restricted(stores, picks.profile_customer, picks.profile_user.email)

    rectified = stores.cdp.rectify(
        RectifyInput(
            scope=profile_scope(stores, "REQ-P008"),
            corrections=[Correction(field="email", value=corrected)],
        )
    )

    assert rectified.updated == {"email": 1}
    assert stores.rows("cdp", flag, profile_id)[0][0] == 1, "the flag stays on the profile"
    assert restricted(stores, picks.profile_customer, corrected.upper())
    assert restricted(stores, picks.profile_customer, picks.profile_user.email)
    other = next(c for c in picks.profile_user.customers if c != picks.profile_customer)
    assert not restricted(stores, other, picks.profile_user.email)
    assert not restricted(stores, other, corrected)


def restricted(stores: Stores, customer: str, email: str) -> bool:
    return stores.cdp.is_restricted(Identity(type=IdentityType.EMAIL, value=email), customer)


# --- sweep --------------------------------------------------------------------------------


@pytest.mark.usefixtures("small_chunks")
def test_cdp_sweep_deletes_old_events_and_anonymises_stale_profiles(stores: Stores) -> None:
    profiles = {
        p["id"]: p for p in stores.rows("cdp", "SELECT * FROM profiles WHERE anonymised_at IS NULL")
    }
    events = [e for e in stores.rows("cdp", "SELECT * FROM events") if e["profile_id"] in profiles]
    stale = {i for i, p in profiles.items() if utc(p["updated_at"]) < CUTOFF}
    gone = {
        e["id"] for e in events if utc(e["occurred_at"]) < CUTOFF or e["profile_id"] in stale
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
            assert utc(row["anonymised_at"]) == NOW
            assert row["customer_account"] == profiles[row["id"]]["customer_account"]
        elif row["id"] in profiles:
            assert tuple(row) == tuple(profiles[row["id"]])
    assert_swept_once(stores.cdp, stores.db("cdp"), call, result)

