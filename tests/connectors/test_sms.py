"""The SMS connector on its seeded store: the demo's seed, discover, access, erase by rule,
restriction counts, locate against the demo facts, a real worker, and the sweep."""

from __future__ import annotations

import shutil
import sqlite3
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from connectors.kit import cutoffs
from connectors.kit.activities import connector_activities
from connectors.kit.errors import ConnectorInputError
from connectors.seeds.demo import seed_stores
from dsr.connector_contract import (
    AccessInput,
    AccessResult,
    EraseInput,
    EraseRule,
    FlagInput,
    Scope,
    SweepInput,
)
from dsr.hashing import keyed_hash
from dsr.models import IdentityType
from tests.connectors.helpers import NOW, PEOPLE, SECRET, scope, utc
from tests.connectors.stores import Stores

SMS_CATEGORIES = ["phone_number", "traffic_data", "location_data", "message_content"]


def end_user_scope(stores: Stores, request_id: str = "REQ-0001") -> Scope:
    facts = stores.facts
    phone = (IdentityType.PHONE, facts.end_user_phone)
    return scope(request_id, phone, customer=facts.controller_account_id)


def sms_rows(stores: Stores, where: str, *params: Any) -> list[sqlite3.Row]:
    return stores.rows("sms", f"SELECT * FROM messages WHERE {where} ORDER BY id", *params)


def by_ids(selected: list[sqlite3.Row]) -> str:
    return f"id IN ({','.join(str(row['id']) for row in selected)})"


def account_rows(stores: Stores, sql: str, *params: Any) -> list[sqlite3.Row]:
    return stores.rows("customer_account", sql, *params)


# --- seed ---------------------------------------------------------------------------------


def test_seed_gives_the_demo_what_it_needs_and_reseeding_does_not_duplicate(
    stores: Stores,
) -> None:
    facts = stores.facts
    assert facts.end_user_messages_older >= 1 and facts.end_user_messages_newer >= 1
    assert facts.end_user_other_customers, "the end user must also be another customer's"
    before = sms_rows(stores, "1=1")

    again = seed_stores(stores.sms, stores.accounts, people=PEOPLE, now=NOW)

    assert again == facts
    assert [tuple(row) for row in sms_rows(stores, "1=1")] == [tuple(row) for row in before]
    shared = stores.rows(
        "sms",
        "SELECT end_user_phone FROM messages GROUP BY end_user_phone "
        "HAVING COUNT(DISTINCT customer_account) > 1",
    )
    assert len(shared) > 5
    emails = [row["email"] for row in account_rows(stores, "SELECT email FROM contacts")]
    assert all(email.split("@")[1].rsplit(".", 1)[-1] in ("com", "org", "net") for email in emails)
    assert all(".example." in email for email in emails)


# --- discover, access, erase, restrict ----------------------------------------------------


def test_sms_discover_counts_and_dates(stores: Stores) -> None:
    facts = stores.facts
    mine = sms_rows(
        stores,
        "customer_account = ? AND end_user_phone = ?",
        facts.controller_account_id,
        facts.end_user_phone,
    )

    discovery = stores.sms.discover(end_user_scope(stores))

    holdings = {holding.category: holding for holding in discovery.holdings}
    total = facts.end_user_messages_older + facts.end_user_messages_newer
    assert holdings["phone_number"].records == holdings["traffic_data"].records == total
    assert holdings["phone_number"].earliest == min(utc(r["sent_at"]) for r in mine)
    assert holdings["phone_number"].latest == max(utc(r["sent_at"]) for r in mine)
    assert holdings["phone_number"].countries_ended == sorted({r["country_ended"] for r in mine})
    with_content = [r for r in mine if r["content"] is not None]
    assert holdings["message_content"].records == len(with_content)
    located = sum(1 for r in mine if r["cell_id"] is not None)
    assert ("location_data" in holdings) == bool(located)
    assert (holdings["location_data"].records if located else 0) == located


def test_sms_access_exports_only_the_controllers_records(stores: Stores) -> None:
    facts = stores.facts
    mine = sms_rows(
        stores,
        "customer_account = ? AND end_user_phone = ?",
        facts.controller_account_id,
        facts.end_user_phone,
    )
    elsewhere = sms_rows(
        stores,
        "customer_account != ? AND end_user_phone = ?",
        facts.controller_account_id,
        facts.end_user_phone,
    )
    assert elsewhere, "the seed must give the end user another customer's messages"

    result = stores.sms.access(AccessInput(scope=end_user_scope(stores)))

    assert result.blob_ref == "blob:exports/REQ-0001/sms.jsonl"
    records = stores.export(result.blob_ref)
    exported_ids = {record["message_id"] for record in records}
    assert exported_ids == {row["id"] for row in mine}
    assert not exported_ids & {row["id"] for row in elsewhere}
    assert {record["customer_account"] for record in records} == {facts.controller_account_id}
    counts = {c: sum(1 for r in records if r["category"] == c) for c in result.records}
    assert counts == result.records
    assert result.records["phone_number"] == len(mine)
    contents = {r["content"] for r in records if r["category"] == "message_content"}
    assert contents == {row["content"] for row in mine if row["content"] is not None}


def test_sms_erase_by_rule_anonymises_older_rows_and_keeps_newer_and_other_customers(
    stores: Stores,
) -> None:
    facts = stores.facts
    cutoff = facts.six_months_before
    controller, phone = facts.controller_account_id, facts.end_user_phone
    elsewhere_before = sms_rows(
        stores, "customer_account != ? AND end_user_phone = ?", controller, phone
    )
    mine = sms_rows(stores, "customer_account = ? AND end_user_phone = ?", controller, phone)
    older = [r for r in mine if utc(r["sent_at"]) < cutoff]
    newer = [r for r in mine if utc(r["sent_at"]) >= cutoff]
    rules = [EraseRule(category=category, before=cutoff) for category in SMS_CATEGORIES]

    result = stores.sms.erase(EraseInput(scope=end_user_scope(stores), rules=rules))

    assert result.erased["phone_number"] == result.erased["traffic_data"] == len(older)
    assert result.erased["message_content"] == sum(1 for r in older if r["content"])
    assert result.erased["location_data"] == sum(1 for r in older if r["cell_id"])
    assert result.retained["phone_number"] == len(newer)
    assert result.retained["message_content"] == sum(1 for r in newer if r["content"])
    pseudonym = keyed_hash(SECRET, phone, "pseudonym")
    for row in sms_rows(stores, by_ids(older)):
        assert row["end_user_phone"] == pseudonym
        assert row["content"] is row["cell_id"] is row["latitude"] is row["longitude"] is None
        assert row["operator"] is row["route"] is None
        assert row["anonymised_at"] is not None
        assert utc(row["sent_at"]).time() == datetime.min.time()
        assert row["country_ended"] and row["status"] and row["segments"] >= 1
    still = sms_rows(stores, by_ids(newer))
    assert [tuple(r) for r in still] == [tuple(r) for r in newer]
    elsewhere_after = sms_rows(
        stores, "customer_account != ? AND end_user_phone = ?", controller, phone
    )
    assert [tuple(r) for r in elsewhere_after] == [tuple(r) for r in elsewhere_before]
    again = stores.sms.discover(end_user_scope(stores))
    assert {h.category: h.records for h in again.holdings}["phone_number"] == len(newer)


def test_sms_erase_content_only_keeps_the_number_and_the_traffic(stores: Stores) -> None:
    facts = stores.facts
    call = EraseInput(scope=end_user_scope(stores), rules=[EraseRule(category="message_content")])

    result = stores.sms.erase(call)

    mine = sms_rows(
        stores,
        "customer_account = ? AND end_user_phone = ?",
        facts.controller_account_id,
        facts.end_user_phone,
    )
    assert len(mine) == facts.end_user_messages_older + facts.end_user_messages_newer
    assert all(r["content"] is None and r["anonymised_at"] is None for r in mine)
    assert result.retained == {"message_content": 0}
    assert set(result.erased) == {"message_content"}


def test_sms_restrict_and_lift(stores: Stores) -> None:
    facts = stores.facts
    subject = end_user_scope(stores, "REQ-0003")

    restricted = stores.sms.restrict(FlagInput(scope=subject))
    retried = stores.sms.restrict(FlagInput(scope=subject))

    assert restricted.records == facts.end_user_messages_older + facts.end_user_messages_newer
    assert retried.already_done and retried.records == restricted.records
    assert stores.sms.is_restricted(facts.controller_account_id, facts.end_user_phone)
    other = facts.end_user_other_customers[0]
    assert not stores.sms.is_restricted(other, facts.end_user_phone)
    stored = stores.rows("sms", "SELECT * FROM restrictions")
    assert len(stored) == 1 and facts.end_user_phone not in tuple(stored[0])

    lifted = stores.sms.restrict(FlagInput(scope=subject, lift=True))

    assert not lifted.already_done
    assert not stores.sms.is_restricted(facts.controller_account_id, facts.end_user_phone)


def test_sms_locate_names_every_customer_holding_the_number_and_nothing_else(
    stores: Stores,
) -> None:
    facts = stores.facts
    located = stores.sms.locate(scope("REQ-0301", (IdentityType.PHONE, facts.end_user_phone)))
    holders = sorted([facts.controller_account_id, *facts.end_user_other_customers])
    assert located.customers == holders
    assert set(located.model_dump()) == {"connector", "customers"}, "no records, only accounts"
    held = {row["end_user_phone"] for row in sms_rows(stores, "1=1")}
    stranger = next(f"+447700900{n:03d}" for n in range(1000) if f"+447700900{n:03d}" not in held)
    assert stores.sms.locate(scope("REQ-0302", (IdentityType.PHONE, stranger))).customers == []


# --- a real worker ------------------------------------------------------------------------


@workflow.defn(sandboxed=False)
class ExportForTest:
    @workflow.run
    async def run(self, call: AccessInput) -> AccessResult:
        return await workflow.execute_activity(
            "sms.access",
            call,
            result_type=AccessResult,
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


async def test_access_activity_heartbeats_through_a_real_worker(stores: Stores) -> None:
    # The SDK's own download fails offline; the binary comes with the virtualenv.
    server = shutil.which("temporal-test-server") or shutil.which(
        "temporal-test-server", path=str(Path(sys.executable).parent)
    )
    if server is None:
        pytest.skip("temporal-test-server is not installed")
    async with (
        await WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter, test_server_existing_path=server
        ) as environment,
        Worker(
            environment.client,
            task_queue="dsr-connector-sms",
            workflows=[ExportForTest],
            activities=connector_activities(stores.sms),
        ),
    ):
        result = await environment.client.execute_workflow(
            ExportForTest.run,
            AccessInput(scope=end_user_scope(stores)),
            id="export-REQ-0001",
            task_queue="dsr-connector-sms",
        )
    assert result.blob_ref == "blob:exports/REQ-0001/sms.jsonl"
    assert stores.blobs.exists(result.blob_ref)


# --- sweep --------------------------------------------------------------------------------


def test_sms_sweep_anonymises_every_customers_old_messages_once(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cutoffs, "SWEEP_CHUNK_ROWS", 37)  # several chunks
    cutoff = stores.facts.six_months_before
    before = sms_rows(stores, "1=1")
    old = [r for r in before if utc(r["sent_at"]) < cutoff and not r["anonymised_at"]]
    newer = [r for r in before if r not in old]
    assert len({r["customer_account"] for r in old}) > 1 and newer
    rules = [EraseRule(category=category, before=cutoff) for category in SMS_CATEGORIES]
    call = SweepInput(sweep_id="SWEEP-1", as_of=NOW, rules=rules)

    result = stores.sms.sweep(call)

    assert not result.already_done
    assert result.anonymised == {
        "phone_number": len(old),
        "traffic_data": len(old),
        "message_content": sum(1 for r in old if r["content"] is not None),
        "location_data": sum(1 for r in old if r["cell_id"] or r["latitude"] is not None),
    }
    for was, row in zip(old, sms_rows(stores, by_ids(old)), strict=True):
        assert row["end_user_phone"] == keyed_hash(SECRET, was["end_user_phone"], "pseudonym")
        assert row["content"] is row["cell_id"] is row["latitude"] is row["longitude"] is None
        assert row["operator"] is row["route"] is None
        assert utc(row["anonymised_at"]) == NOW
        assert utc(row["sent_at"]) == utc(was["sent_at"]).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        assert (row["customer_account"], row["status"]) == (was["customer_account"], was["status"])
    assert [tuple(r) for r in sms_rows(stores, by_ids(newer))] == [tuple(r) for r in newer]

    snapshot = [tuple(row) for row in sms_rows(stores, "1=1")]
    again = stores.sms.sweep(call.model_copy(update={"as_of": NOW + timedelta(hours=1)}))
    assert again.already_done and again.anonymised == result.anonymised
    assert [tuple(row) for row in sms_rows(stores, "1=1")] == snapshot
    # A new sweep finds nothing left before the cutoff: anonymised rows are not counted again.
    fresh = stores.sms.sweep(call.model_copy(update={"sweep_id": "SWEEP-2"}))
    assert fresh.anonymised == dict.fromkeys(SMS_CATEGORIES, 0)
    with pytest.raises(ConnectorInputError):
        stores.sms.sweep(
            SweepInput(sweep_id="SWEEP-3", as_of=NOW, rules=[EraseRule(category="phone_number")])
        )

