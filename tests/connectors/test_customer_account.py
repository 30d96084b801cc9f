"""The customer account connector (the group's own data): discover, access, erase keeping the
books, rectify, the restriction flag, the registered contact and the sweep."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import pytest

from connectors.customer_account import RegisteredContactInput
from connectors.kit import cutoffs
from connectors.kit.activities import connector_activities
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
from tests.connectors.helpers import NOW, defn_name, scope, utc
from tests.connectors.stores import Stores


def holder_scope(stores: Stores, request_id: str = "REQ-0101") -> Scope:
    facts = stores.facts
    return scope(
        request_id,
        (IdentityType.ACCOUNT_ID, facts.account_holder_account_id),
        (IdentityType.EMAIL, facts.account_holder_email.upper()),
    )


def account_rows(stores: Stores, sql: str, *params: Any) -> list[sqlite3.Row]:
    return stores.rows("customer_account", sql, *params)


def test_account_discover_and_access_cover_the_holders_account_only(stores: Stores) -> None:
    facts = stores.facts
    holder = facts.account_holder_account_id
    contacts = account_rows(stores, "SELECT * FROM contacts WHERE account_id = ?", holder)
    invoices = account_rows(stores, "SELECT * FROM invoices WHERE account_id = ?", holder)

    discovery = stores.accounts.discover(holder_scope(stores))
    result = stores.accounts.access(AccessInput(scope=holder_scope(stores)))

    holdings = {holding.category: holding for holding in discovery.holdings}
    assert holdings["account_profile"].records == len(contacts) + 1  # and the registered address
    assert holdings["billing_details"].records == 1
    assert holdings["invoices"].records == len(invoices)
    assert holdings["invoices"].earliest == min(utc(i["issued_at"]) for i in invoices)
    assert holdings["invoices"].latest == max(utc(i["issued_at"]) for i in invoices)
    assert holdings["invoices"].earliest < NOW - timedelta(days=365 * 8)
    assert result.records == {h.category: h.records for h in discovery.holdings}
    assert result.blob_ref is not None
    records = stores.export(result.blob_ref)
    assert {record["account_id"] for record in records} == {holder}
    billing = [r for r in records if r["category"] == "billing_details"]
    assert billing[0]["bank_iban"]


def test_account_email_alone_finds_that_persons_contacts_only(stores: Stores) -> None:
    colleague = account_rows(
        stores,
        "SELECT * FROM contacts WHERE account_id = ? AND email != ? ORDER BY id LIMIT 1",
        stores.facts.controller_account_id,
        stores.facts.controller_registered_email,
    )[0]
    subject = scope("REQ-0102", (IdentityType.EMAIL, colleague["email"].title()))

    discovery = stores.accounts.discover(subject)

    assert [(h.category, h.records) for h in discovery.holdings] == [("account_profile", 1)]


def test_account_erase_by_rule_keeps_the_books(stores: Stores) -> None:
    facts = stores.facts
    holder, other = facts.account_holder_account_id, facts.controller_account_id
    cutoff = NOW - timedelta(days=365 * 7)
    invoices = account_rows(stores, "SELECT * FROM invoices WHERE account_id = ?", holder)
    older = [i for i in invoices if utc(i["issued_at"]) < cutoff]
    untouched = account_rows(stores, "SELECT * FROM invoices WHERE account_id = ?", other)
    rules = [
        EraseRule(category="invoices", before=cutoff),
        EraseRule(category="billing_details"),
        EraseRule(category="account_profile"),
    ]
    call = EraseInput(scope=holder_scope(stores), rules=rules)

    result = stores.accounts.erase(call)
    retry = stores.accounts.erase(call)

    assert result.erased["invoices"] == len(older) > 0
    assert result.retained["invoices"] == len(invoices) - len(older) > 0
    assert result.erased["billing_details"] == 1 and result.retained["billing_details"] == 0
    assert result.retained["account_profile"] == 0
    assert retry.already_done and retry.erased == result.erased
    after = {i["id"]: i for i in account_rows(stores, "SELECT * FROM invoices")}
    for invoice in invoices:
        kept = after[invoice["id"]]
        assert (kept["amount_cents"], kept["issued_at"]) == (
            invoice["amount_cents"],
            invoice["issued_at"],
        )
        redacted = invoice in older
        assert (kept["billing_email"] == "[redacted]") is redacted
        assert (kept["billing_name"] == "[redacted]") is redacted
    assert [tuple(after[i["id"]]) for i in untouched] == [tuple(i) for i in untouched]
    billing = account_rows(stores, "SELECT * FROM billing_profiles WHERE account_id = ?", holder)
    assert billing[0]["bank_iban"] is None and billing[0]["anonymised_at"] is not None
    names = account_rows(stores, "SELECT name FROM contacts WHERE account_id = ?", holder)
    assert {row["name"] for row in names} == {None}
    assert account_rows(stores, "SELECT name FROM contacts WHERE account_id = ?", other)[0][0]


def test_account_rectify_changes_values_and_reports_unsupported_fields(stores: Stores) -> None:
    facts = stores.facts
    corrections = [
        Correction(field="name", value="Lars M. Lim"),
        Correction(field="email", value="lars.lim@new-domain.example.org"),
        Correction(field="billing_name", value="Kestrel Bank AG"),
        Correction(field="shoe_size", value="44"),
    ]

    result = stores.accounts.rectify(
        RectifyInput(scope=holder_scope(stores), corrections=corrections)
    )

    assert result.unsupported_fields == ["shoe_size"]
    assert result.updated == {"name": 1, "email": 2, "billing_name": 1}
    holder = facts.account_holder_account_id
    account = account_rows(stores, "SELECT * FROM accounts WHERE account_id = ?", holder)[0]
    assert account["registered_email"] == "lars.lim@new-domain.example.org"
    contact = account_rows(
        stores, "SELECT * FROM contacts WHERE email = ?", "lars.lim@new-domain.example.org"
    )
    assert [row["name"] for row in contact] == ["Lars M. Lim"]
    billing = account_rows(stores, "SELECT * FROM billing_profiles WHERE account_id = ?", holder)
    assert billing[0]["billing_name"] == "Kestrel Bank AG"
    with pytest.raises(ConnectorInputError, match="email is malformed"):
        stores.accounts.rectify(
            RectifyInput(
                scope=holder_scope(stores, "REQ-0103"),
                corrections=[Correction(field="email", value="not-an-address")],
            )
        )


def test_account_restrict_and_lift(stores: Stores) -> None:
    holder = stores.facts.account_holder_account_id
    flag = "SELECT processing_restricted FROM accounts WHERE account_id = ?"

    restricted = stores.accounts.restrict(FlagInput(scope=holder_scope(stores)))
    assert restricted.records == 1
    assert account_rows(stores, flag, holder)[0][0] == 1

    stores.accounts.restrict(FlagInput(scope=holder_scope(stores), lift=True))
    assert account_rows(stores, flag, holder)[0][0] == 0


def test_account_restriction_stays_with_a_rectified_email(stores: Stores) -> None:
    facts = stores.facts
    old = Identity(type=IdentityType.EMAIL, value=facts.account_holder_email)
    corrected = Identity(type=IdentityType.EMAIL, value="Lars.Lim@new-domain.example.org")
    other = Identity(type=IdentityType.EMAIL, value=facts.controller_registered_email)
    stores.accounts.restrict(FlagInput(scope=holder_scope(stores, "REQ-0104")))
    assert stores.accounts.is_restricted(old)

    stores.accounts.rectify(
        RectifyInput(
            scope=holder_scope(stores, "REQ-0105"),
            corrections=[Correction(field="email", value=corrected.value.lower())],
        )
    )

    assert stores.accounts.is_restricted(corrected)
    assert not stores.accounts.is_restricted(old)
    assert not stores.accounts.is_restricted(other)


def test_account_registered_contact(stores: Stores) -> None:
    facts = stores.facts
    call = RegisteredContactInput(account_id=facts.controller_account_id)
    contact = stores.accounts.registered_contact(call)
    assert contact.email == facts.controller_registered_email
    missing = stores.accounts.registered_contact(RegisteredContactInput(account_id="CUST-9999"))
    assert missing.email is None
    assert "customer_account.registered_contact" in {
        defn_name(fn) for fn in connector_activities(stores.accounts)
    }


# --- sweep --------------------------------------------------------------------------------


def test_account_sweep_anonymises_every_accounts_old_records_once(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cutoffs, "SWEEP_CHUNK_ROWS", 5)
    cutoff = NOW - timedelta(days=365 * 5)
    tables = {
        "accounts": "created_at",
        "contacts": "created_at",
        "billing_profiles": "updated_at",
        "invoices": "issued_at",
    }
    key = {"accounts": "account_id", "billing_profiles": "account_id"}
    before = {
        table: {
            row[key.get(table, "id")]: row for row in account_rows(stores, f"SELECT * FROM {table}")
        }
        for table in tables
    }

    def old(table: str) -> set[Any]:
        held = "registered_email" if table == "accounts" else "anonymised_at"
        return {
            k
            for k, row in before[table].items()
            if utc(row[tables[table]]) < cutoff
            and (row[held] is not None if table == "accounts" else row[held] is None)
        }

    expected = {table: old(table) for table in tables}
    assert all(expected.values()) and any(
        len(before[table]) > len(expected[table]) for table in tables
    )
    rules = [
        EraseRule(category=category, before=cutoff)
        for category in ("account_profile", "billing_details", "invoices")
    ]
    call = SweepInput(sweep_id="SWEEP-ACC", as_of=NOW, rules=rules)

    result = stores.accounts.sweep(call)

    assert result.anonymised == {
        "account_profile": len(expected["accounts"]) + len(expected["contacts"]),
        "billing_details": len(expected["billing_profiles"]),
        "invoices": len(expected["invoices"]),
    }
    after = {
        table: {
            row[key.get(table, "id")]: row for row in account_rows(stores, f"SELECT * FROM {table}")
        }
        for table in tables
    }
    for table in tables:
        for k, row in after[table].items():
            if k not in expected[table]:
                assert tuple(row) == tuple(before[table][k]), table
            elif table == "accounts":
                assert row["registered_email"] is None and row["company_name"]
            elif table == "contacts":
                assert row["name"] is row["email"] is row["phone"] is row["signature"] is None
                assert utc(row["anonymised_at"]) == NOW
            elif table == "billing_profiles":
                assert row["bank_iban"] is row["billing_name"] is None
            else:
                assert row["billing_email"] == row["billing_name"] == "[redacted]"
                assert row["amount_cents"] == before[table][k]["amount_cents"]

    def snapshot() -> dict[str, list[tuple[Any, ...]]]:
        return {t: [tuple(r) for r in account_rows(stores, f"SELECT * FROM {t}")] for t in tables}

    unchanged = snapshot()
    again = stores.accounts.sweep(call)
    assert again.already_done and again.anonymised == result.anonymised
    assert snapshot() == unchanged
    fresh = stores.accounts.sweep(call.model_copy(update={"sweep_id": "SWEEP-ACC-2"}))
    assert fresh.anonymised == dict.fromkeys(result.anonymised, 0)
    with pytest.raises(ConnectorInputError):
        stores.accounts.sweep(
            SweepInput(sweep_id="SWEEP-X", as_of=NOW, rules=[EraseRule(category="invoices")])
        )

