"""The Marketing connector (the group's prospects, lists and consent proof): erase with
suppression, re-import, rectify, restrict, object, withdraw consent, opt out, seed and sweep."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import pytest

from connectors.kit.errors import ConnectorInputError
from connectors.marketing import ProspectRow
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
from tests.connectors.helpers import (
    CUTOFF,
    FIVE_YEARS_BEFORE,
    NOW,
    POPULATION,
    assert_swept_once,
    scope,
    utc,
)
from tests.connectors.stores import Stores
from tests.connectors.subjects import marketing_person, person_hash

MARKETING_CATEGORIES = ["prospect_profile", "subscriptions", "consent_proof"]


def marketing_scope(request_id: str = "REQ-M001", email: str | None = None) -> Scope:
    # A customer account in the scope plays no part: the group's own data.
    value = email or marketing_person().email.upper()
    identity = Identity(type=IdentityType.EMAIL, value=value)
    return scope(request_id, identity, customer="CUST-0001")


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


# --- seed ---------------------------------------------------------------------------------


def test_marketing_seed_holds_old_proof_and_prospects_from_both_sources(stores: Stores) -> None:
    proofs = stores.rows(
        "marketing", "SELECT coalesce(withdrawn_at, given_at) AS dated FROM consent_records"
    )
    assert sum(utc(p["dated"]) < FIVE_YEARS_BEFORE for p in proofs) >= 2
    created = [
        utc(r[0]) for r in stores.rows("marketing", "SELECT created_at FROM prospects")
    ]
    assert NOW - timedelta(days=3 * 366) < min(created) < NOW - timedelta(days=2 * 365)
    sources = {r[0] for r in stores.rows("marketing", "SELECT source FROM prospects")}
    assert sources == {"web_form", "enrichment"}


# --- discover, access, erase, rectify, restrict, object, withdraw, opt out ----------------


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
        dates = [utc(row[column]) for row in held[category]]
        assert holdings[category].records == len(dates) > 0
        assert (holdings[category].earliest, holdings[category].latest) == (min(dates), max(dates))
    proof = holdings["consent_proof"]
    assert proof.earliest is not None and proof.latest is not None
    assert proof.earliest < FIVE_YEARS_BEFORE < proof.latest


def test_marketing_access_exports_exactly_the_persons_records(stores: Stores) -> None:
    held = marketing_rows(stores)

    result = stores.marketing.access(AccessInput(scope=marketing_scope()))

    assert result.blob_ref == "blob:exports/REQ-M001/marketing.jsonl"
    records = stores.export(result.blob_ref)
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
    old_proof = [p for p in held["consent_proof"] if utc(p["dated"]) < FIVE_YEARS_BEFORE]
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
    assert utc(prospect["objected_at"]) == NOW
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
            assert utc(proof["withdrawn_at"]) == NOW
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
        expected = NOW if earlier["id"] in active else utc(earlier["unsubscribed_at"])
        assert utc(subscription["unsubscribed_at"]) == expected
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


# --- sweep --------------------------------------------------------------------------------


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
        category: {r["id"] for r in found if utc(r["dated"]) < tables[category][2]}
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
    assert_swept_once(stores.marketing, stores.db("marketing"), call, result)

