"""The SMS and customer account connectors against real SQLite stores seeded with demo data."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from connectors.customer_account import (
    CustomerAccountConnector,
    RegisteredContactInput,
    accounts_query,
    resolve_subject,
    sources,
)
from connectors.kit import cutoffs
from connectors.kit.activities import connector_activities
from connectors.kit.errors import ConnectorInputError
from connectors.seed import DemoFacts, seed_stores
from connectors.sms import SmsConnector, subject_messages
from dsr.blobstore import LocalBlobStore
from dsr.connector_contract import (
    AccessInput,
    AccessResult,
    EraseInput,
    EraseRule,
    FlagInput,
    RectifyInput,
    Scope,
    SweepInput,
)
from dsr.connector_registry import load_registry
from dsr.hashing import keyed_hash
from dsr.models import Correction, Identity, IdentityType

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
SECRET = b"test-secret-not-for-production"
REGISTRY = Path(__file__).parent.parent / "connectors" / "registry.yaml"
SMS_CATEGORIES = ["phone_number", "traffic_data", "location_data", "message_content"]


@dataclass
class Stores:
    sms: SmsConnector
    accounts: CustomerAccountConnector
    blobs: LocalBlobStore
    facts: DemoFacts
    folder: Path


def _connectors(folder: Path) -> tuple[SmsConnector, CustomerAccountConnector, LocalBlobStore]:
    blobs = LocalBlobStore(folder / "blobs")
    sms = SmsConnector(f"sqlite:///{folder / 'connectors' / 'sms.db'}", blobs, SECRET)
    url = f"sqlite:///{folder / 'connectors' / 'customer_account.db'}"
    return sms, CustomerAccountConnector(url, blobs, SECRET), blobs


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoFacts]:
    """Seed once; each test gets its own copy of the store files."""
    folder = tmp_path_factory.mktemp("seeded")
    sms, accounts, _ = _connectors(folder)
    facts = seed_stores(sms, accounts, people=80, now=NOW)
    sms.store.engine.dispose()
    accounts.store.engine.dispose()
    return folder, facts


@pytest.fixture
def stores(seeded: tuple[Path, DemoFacts], tmp_path: Path) -> Stores:
    template, facts = seeded
    shutil.copytree(template / "connectors", tmp_path / "connectors")
    sms, accounts, blobs = _connectors(tmp_path)
    return Stores(sms, accounts, blobs, facts, tmp_path)


def scope(
    request_id: str, *identities: tuple[IdentityType, str], customer: str | None = None
) -> Scope:
    return Scope(
        request_id=request_id,
        identities=[Identity(type=kind, value=value) for kind, value in identities],
        customer_account=customer,
        as_of=NOW,
    )


def end_user_scope(stores: Stores, request_id: str = "REQ-0001") -> Scope:
    facts = stores.facts
    phone = (IdentityType.PHONE, facts.end_user_phone)
    return scope(request_id, phone, customer=facts.controller_account_id)


def holder_scope(stores: Stores, request_id: str = "REQ-0101") -> Scope:
    facts = stores.facts
    return scope(
        request_id,
        (IdentityType.ACCOUNT_ID, facts.account_holder_account_id),
        (IdentityType.EMAIL, facts.account_holder_email.upper()),
    )


def rows(database: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(sql, params).fetchall()


def sms_rows(stores: Stores, where: str, *params: Any) -> list[sqlite3.Row]:
    database = stores.folder / "connectors" / "sms.db"
    return rows(database, f"SELECT * FROM messages WHERE {where} ORDER BY id", *params)


def by_ids(selected: list[sqlite3.Row]) -> str:
    return f"id IN ({','.join(str(row['id']) for row in selected)})"


def account_rows(stores: Stores, sql: str, *params: Any) -> list[sqlite3.Row]:
    return rows(stores.folder / "connectors" / "customer_account.db", sql, *params)


def stored_utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def read_export(stores: Stores, ref: str) -> list[dict[str, Any]]:
    with stores.blobs.open_reader(ref) as file:
        return [json.loads(line) for line in file]


# --- seed ----------------------------------------------------------------------------------


def test_seed_gives_the_demo_what_it_needs_and_reseeding_does_not_duplicate(
    stores: Stores,
) -> None:
    facts = stores.facts
    assert facts.end_user_messages_older >= 1 and facts.end_user_messages_newer >= 1
    assert facts.end_user_other_customers, "the end user must also be another customer's"
    before = sms_rows(stores, "1=1")

    again = seed_stores(stores.sms, stores.accounts, people=80, now=NOW)

    assert again == facts
    assert [tuple(row) for row in sms_rows(stores, "1=1")] == [tuple(row) for row in before]
    shared = rows(
        stores.folder / "connectors" / "sms.db",
        "SELECT end_user_phone FROM messages GROUP BY end_user_phone "
        "HAVING COUNT(DISTINCT customer_account) > 1",
    )
    assert len(shared) > 5
    emails = [row["email"] for row in account_rows(stores, "SELECT email FROM contacts")]
    assert all(email.split("@")[1].rsplit(".", 1)[-1] in ("com", "org", "net") for email in emails)
    assert all(".example." in email for email in emails)


# --- SMS -----------------------------------------------------------------------------------


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
    assert holdings["phone_number"].earliest == min(stored_utc(r["sent_at"]) for r in mine)
    assert holdings["phone_number"].latest == max(stored_utc(r["sent_at"]) for r in mine)
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
    records = read_export(stores, result.blob_ref)
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
    older = [r for r in mine if stored_utc(r["sent_at"]) < cutoff]
    newer = [r for r in mine if stored_utc(r["sent_at"]) >= cutoff]
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
        assert stored_utc(row["sent_at"]).time() == datetime.min.time()
        assert row["country_ended"] and row["status"] and row["segments"] >= 1
    still = sms_rows(stores, by_ids(newer))
    assert [tuple(r) for r in still] == [tuple(r) for r in newer]
    elsewhere_after = sms_rows(
        stores, "customer_account != ? AND end_user_phone = ?", controller, phone
    )
    assert [tuple(r) for r in elsewhere_after] == [tuple(r) for r in elsewhere_before]
    again = stores.sms.discover(end_user_scope(stores))
    assert {h.category: h.records for h in again.holdings}["phone_number"] == len(newer)


def test_sms_erase_retry_is_already_done_and_changes_nothing(stores: Stores) -> None:
    call = EraseInput(
        scope=end_user_scope(stores),
        rules=[
            EraseRule(category=c, before=stores.facts.six_months_before) for c in SMS_CATEGORIES
        ],
    )
    first = stores.sms.erase(call)
    snapshot = [tuple(row) for row in sms_rows(stores, "1=1")]

    retry = stores.sms.erase(call.model_copy(update={"scope": end_user_scope(stores)}))

    assert retry.already_done and not first.already_done
    assert (retry.erased, retry.retained) == (first.erased, first.retained)
    assert [tuple(row) for row in sms_rows(stores, "1=1")] == snapshot


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


def test_sms_finds_nothing_without_a_customer_account(stores: Stores) -> None:
    facts = stores.facts
    no_customer = scope("REQ-0002", (IdentityType.PHONE, facts.end_user_phone))
    snapshot = [tuple(row) for row in sms_rows(stores, "1=1")]

    assert stores.sms.discover(no_customer).holdings == []
    access = stores.sms.access(AccessInput(scope=no_customer))
    erase = stores.sms.erase(
        EraseInput(scope=no_customer, rules=[EraseRule(category="phone_number")])
    )
    restrict = stores.sms.restrict(FlagInput(scope=no_customer))

    assert access.blob_ref is None and access.records == {}
    assert erase.erased == {} and restrict.records == 0
    assert [tuple(row) for row in sms_rows(stores, "1=1")] == snapshot


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
    stored = rows(stores.folder / "connectors" / "sms.db", "SELECT * FROM restrictions")
    assert len(stored) == 1 and facts.end_user_phone not in tuple(stored[0])

    lifted = stores.sms.restrict(FlagInput(scope=subject, lift=True))

    assert not lifted.already_done
    assert not stores.sms.is_restricted(facts.controller_account_id, facts.end_user_phone)


def test_sms_refuses_an_unknown_category(stores: Stores) -> None:
    call = EraseInput(scope=end_user_scope(stores), rules=[EraseRule(category="call_recordings")])
    with pytest.raises(ConnectorInputError, match="call_recordings"):
        stores.sms.erase(call)


def test_sms_subject_lookup_uses_the_composite_index(stores: Stores) -> None:
    facts = stores.facts
    statement = subject_messages(facts.controller_account_id, [facts.end_user_phone])

    plan = explain(stores.sms.store.engine, statement)

    assert "USING INDEX ix_messages_subject (customer_account=? AND end_user_phone=?)" in plan


def explain(engine: Any, statement: Any) -> str:
    sql = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        steps = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
    return "\n".join(step[-1] for step in steps)


# --- customer account ----------------------------------------------------------------------


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
    assert holdings["invoices"].earliest == min(stored_utc(i["issued_at"]) for i in invoices)
    assert holdings["invoices"].latest == max(stored_utc(i["issued_at"]) for i in invoices)
    assert holdings["invoices"].earliest < NOW - timedelta(days=365 * 8)
    assert result.records == {h.category: h.records for h in discovery.holdings}
    assert result.blob_ref is not None
    records = read_export(stores, result.blob_ref)
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
    older = [i for i in invoices if stored_utc(i["issued_at"]) < cutoff]
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


def test_account_lookups_use_the_email_and_account_indexes(stores: Stores) -> None:
    engine = stores.accounts.store.engine
    by_email = accounts_query(set(), {stores.facts.controller_registered_email})
    assert "USING INDEX ix_accounts_registered_email" in explain(engine, by_email)
    with stores.accounts.store.reading() as session:
        subject = resolve_subject(session, holder_scope(stores))
    plans = {
        source.model.__tablename__: explain(engine, select(source.model).where(*source.where))
        for source in sources(subject)
    }
    assert "ix_contacts_account_id" in plans["contacts"]
    assert "USING INDEX ix_contacts_email" in plans["contacts"]
    assert "ix_invoices_account_id" in plans["invoices"]
    assert "(account_id=?)" in plans["accounts"] and "(account_id=?)" in plans["billing_profiles"]
    assert not [plan for plan in plans.values() if "SCAN" in plan]


# --- Temporal activities -------------------------------------------------------------------


def test_activities_are_named_and_cover_the_registry(stores: Stores) -> None:
    registry = load_registry(REGISTRY)
    for connector in (stores.sms, stores.accounts):
        names = {defn_name(fn) for fn in connector_activities(connector)}
        entry = registry.get(connector.name)
        expected = {f"{connector.name}.{operation.value}" for operation in entry.operations}
        assert expected <= names
    assert "customer_account.registered_contact" in {
        defn_name(fn) for fn in connector_activities(stores.accounts)
    }


def defn_name(fn: Any) -> str:
    return fn.__temporal_activity_definition.name


async def test_activities_run_in_a_thread_and_heartbeat_per_chunk(stores: Stores) -> None:
    activities = {defn_name(fn): fn for fn in connector_activities(stores.sms)}
    environment = ActivityEnvironment()
    beats: list[Any] = []
    environment.on_heartbeat = lambda *details: beats.append(details)

    result = await environment.run(
        activities["sms.access"], AccessInput(scope=end_user_scope(stores))
    )

    assert result.blob_ref and result.records["phone_number"] > 0
    assert beats and beats[-1][0]["records"] == sum(result.records.values())
    with pytest.raises(ApplicationError) as refused:
        await environment.run(
            activities["sms.erase"],
            EraseInput(scope=end_user_scope(stores), rules=[EraseRule(category="x")]),
        )
    assert refused.value.non_retryable


def test_blob_store_refuses_escaping_keys_and_leaves_no_half_blob(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    for key in ("../outside", "/etc/passwd", "exports/../../x", "a//b", ""):
        with pytest.raises(ValueError):
            blobs.ref(key)
    with pytest.raises(RuntimeError), blobs.open_writer("exports/REQ-1/sms.jsonl") as file:
        file.write(b"half")
        raise RuntimeError("crash")
    assert not blobs.exists("blob:exports/REQ-1/sms.jsonl")
    assert list((tmp_path / "blobs").rglob("*.partial")) == []
    with blobs.open_writer("exports/REQ-1/sms.jsonl") as file:
        file.write(b"whole\n")
    assert blobs.path("blob:exports/REQ-1/sms.jsonl").read_bytes() == b"whole\n"


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


# --- sweep ---------------------------------------------------------------------------------


def test_sms_sweep_anonymises_every_customers_old_messages_once(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cutoffs, "SWEEP_CHUNK_ROWS", 37)  # several chunks
    cutoff = stores.facts.six_months_before
    before = sms_rows(stores, "1=1")
    old = [r for r in before if stored_utc(r["sent_at"]) < cutoff and not r["anonymised_at"]]
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
        assert stored_utc(row["anonymised_at"]) == NOW
        assert stored_utc(row["sent_at"]) == stored_utc(was["sent_at"]).replace(
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
            if stored_utc(row[tables[table]]) < cutoff
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
                assert stored_utc(row["anonymised_at"]) == NOW
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
