"""Retention without a request: the daily sweep's plan from the retention policy, the sweep
run on the dev server against real connector workers and seeded stores, and the purge of the
request register once the proof period has passed (the Schedules: ``tests/test_schedules.py``)."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

import worker
from activities.sweep import SweepReport, category_periods, plan_sweep
from connectors.builtin import BUILTIN
from connectors.sms import Message, SmsConnector
from dsr import ledger
from dsr.connector_contract import EraseRule
from dsr.connector_registry import load_registry
from dsr.database import make_engine
from dsr.holds import Hold, HoldKind
from dsr.ledger import LedgerEntry
from dsr.register import MilestoneRecord, RequestRecord
from dsr.retention import (
    Period,
    RetentionPolicy,
    erasable_before,
    load_retention_policy,
)
from dsr.retention_periods import subtract_period
from dsr.sealedblobs import sealed_blob_store
from services.mail_server import MailFolder
from tests import conftest
from tests.conftest import ROOT, Harness, legal_confirmed_policy, save_history, start_harness
from workflows.purge import ConfirmationPurgeWorkflow
from workflows.sweep import RetentionSweepWorkflow, SweepRequest

AS_OF = datetime(2026, 8, 31, 12, 0, tzinfo=UTC)
SIX_MONTHS, ONE_YEAR, TWO_YEARS = Period(months=6), Period(years=1), Period(years=2)
PHONE = "+447700900999"  # a drama number: fictional
Milestones = list[tuple[str, dict[str, Any]]]


def _plan(
    policy: RetentionPolicy | None = None, holds: list[Hold] | None = None
) -> dict[str, list[EraseRule]]:
    registry = load_registry(ROOT / "connectors" / "registry.yaml")
    parts = plan_sweep(policy or load_retention_policy(), registry, AS_OF, holds or [])
    return {part.connector: part.rules for part in parts}


def _rules(rules: list[EraseRule], category: str) -> dict[str | None, datetime | None]:
    """Per country (None: the default rule), the cutoff of one category's rules."""
    found: dict[str | None, datetime | None] = {}
    for rule in rules:
        if rule.category != category:
            continue
        countries: list[str | None] = [*rule.countries_ended] if rule.countries_ended else [None]
        for country in countries:
            assert country not in found, f"two rules for {category} in {country}"
            found[country] = rule.before
    return found


# 1. The plan ---------------------------------------------------------------------------------


def test_an_entry_without_keeps_country_gets_the_longest_period_of_any_country() -> None:
    """Rules confined to countries only reach a store that keeps the country: for any other,
    each category gets one rule, the longest period of any country (never early)."""
    registry = load_registry(ROOT / "connectors" / "registry.yaml")
    sms = registry.get("sms")
    assert sms.keeps_country
    unaware = registry.model_copy(update={"connectors": [
        sms.model_copy(update={"keeps_country": False})]})
    rules = plan_sweep(load_retention_policy(), unaware, AS_OF, [])[0].rules
    assert _rules(rules, "traffic_data") == {None: erasable_before(AS_OF, TWO_YEARS)}
    assert _rules(rules, "message_content") == {None: erasable_before(AS_OF, SIX_MONTHS)}


def test_sms_is_swept_after_six_months_and_traffic_after_the_longer_duty_in_italy_and_poland(
) -> None:
    """National telecom duties cover traffic and location data (and the numbers), never the
    messages' content, which goes after six months wherever the message ended."""
    sms = _plan()["sms"]
    for category in ("phone_number", "traffic_data", "location_data"):
        assert _rules(sms, category) == {
            None: erasable_before(AS_OF, SIX_MONTHS),
            "IT": erasable_before(AS_OF, TWO_YEARS),
            "PL": erasable_before(AS_OF, ONE_YEAR),
        }
    assert _rules(sms, "message_content") == {None: erasable_before(AS_OF, SIX_MONTHS)}
    # On 2026-08-31 a message of 2026-02-28 is past its six months (they ended 2026-08-28).
    assert erasable_before(AS_OF, SIX_MONTHS) == datetime(2026, 3, 1, tzinfo=UTC)
    assert all(rule.countries_ended in (None, ["IT"], ["PL"]) for rule in sms)


def test_marketing_financial_records_and_the_contract() -> None:
    """With the Dutch seven years Legal has confirmed (shipped as a draft, which never makes
    an erasure earlier: tests/test_retention_entity.py)."""
    plan = _plan(load_retention_policy(legal_confirmed_policy() / "retention.yaml"))
    marketing = {rule.category: rule.before for rule in plan["marketing"]}
    assert marketing == {
        "prospect_profile": erasable_before(AS_OF, ONE_YEAR),
        "subscriptions": erasable_before(AS_OF, ONE_YEAR),
        # keep_at_most 12 months, but must_keep 5 years as proof of consent: the duty binds
        "consent_proof": erasable_before(AS_OF, Period(years=5)),
    }
    account = {
        (rule.category, tuple(rule.countries_ended or ())): rule.before
        for rule in plan["customer_account"]
    }
    # The Dutch contracting entity's seven years; ten where no entity's country is known.
    assert account == {
        ("billing_details", ()): datetime(2016, 8, 31, tzinfo=UTC),
        ("billing_details", ("NL",)): datetime(2019, 8, 31, tzinfo=UTC),
        ("invoices", ()): datetime(2016, 8, 31, tzinfo=UTC),
        ("invoices", ("NL",)): datetime(2019, 8, 31, tzinfo=UTC),
    }, "account_profile is kept for the contract: no period, never swept"
    assert plan["inbox"] == [] and plan["numbers"] == [], "no retention period: not swept"
    assert set(plan) == {
        name
        for name in BUILTIN
        if "sweep" in load_registry(ROOT / "connectors" / "registry.yaml").get(name).operations
    }


def test_a_connector_that_keeps_no_country_gets_the_longest_country_period() -> None:
    data = load_retention_policy().model_dump(mode="json")
    data["rules"].append(
        {
            "id": "widget-traffic",
            "kind": "must_keep", "status": "draft", "source": "test",
            "covers": {"widget": ["traffic_data"]},
            "period": {"months": 3},
            "basis": {"en": "test"},
            "overrides": [{"country": "IT", "period": {"months": 9}, "status": "draft",
                           "source": "test"}],
        }
    )
    policy = RetentionPolicy.model_validate(data)
    assert category_periods(policy, "widget", "traffic_data") == (
        Period(months=3),
        {"IT": Period(months=9)},
    )
    widget = _plan(policy)["widget"]
    assert widget == [
        EraseRule(category="traffic_data", before=erasable_before(AS_OF, Period(months=9)))
    ], "never confined to countries (the widget refuses that), never early"


def test_a_category_under_a_legal_hold_is_not_swept() -> None:
    by_product = Hold(
        hold_id="HOLD-1", kind=HoldKind.LITIGATION, product="SMS", category="message_content"
    )
    of_a_subject = Hold(
        hold_id="HOLD-2", kind=HoldKind.GOVERNMENT, identity_hash="ab" * 32, category="invoices"
    )
    registry = load_registry(ROOT / "connectors" / "registry.yaml")
    parts = {
        p.connector: p
        for p in plan_sweep(load_retention_policy(), registry, AS_OF, [by_product, of_a_subject])
    }
    assert parts["sms"].held == {"message_content": ["HOLD-1"]}
    assert "message_content" not in {rule.category for rule in parts["sms"].rules}
    assert parts["voice"].held == {}, "another product"
    # A sweep reaches every subject: it cannot leave one subject's invoices out.
    assert parts["customer_account"].held == {"invoices": ["HOLD-2"]}
    assert {rule.category for rule in parts["customer_account"].rules} == {"billing_details"}


# 2. The sweep on the dev server with real connector workers ----------------------------------


def _sms(h: Harness) -> SmsConnector:
    return SmsConnector(
        h.settings.connector_database_url("sms"), sealed_blob_store(h.settings), h.settings.secret
    )


def _add_messages(h: Harness, now: datetime) -> None:
    """Messages on both sides of each country's period, well clear of the boundaries."""
    ages = {"IT": (25, 13), "PL": (13, 11), "NL": (7, 5)}  # months: one past, one within
    with _sms(h).store.writing() as session:
        for country, months in ages.items():
            for age in months:
                session.add(
                    Message(
                        customer_account=h.facts.controller_account_id,
                        end_user_phone=PHONE,
                        direction="outbound",
                        sender_id="TEST",
                        content=f"{country} {age} months",
                        sent_at=now - timedelta(days=age * 30.5),
                        status="delivered",
                        operator="op",
                        route="route",
                        segments=1,
                        country_ended=country,
                        cell_id="cell",
                        latitude=1.0,
                        longitude=2.0,
                        anonymised_at=None,
                    )
                )


def _messages(h: Harness) -> dict[int, dict[str, Any]]:
    with _sms(h).store.reading() as session:
        return {
            m.id: {
                "sent_at": m.sent_at,
                "country": m.country_ended,
                "phone": m.end_user_phone,
                "content": m.content,
                "anonymised_at": m.anonymised_at,
                "cell": m.cell_id,
            }
            for m in session.scalars(select(Message))
        }


def _past_six_months(row: dict[str, Any], as_of: datetime) -> bool:
    return bool(row["sent_at"] < erasable_before(as_of, SIX_MONTHS))


def _past_retention(row: dict[str, Any], as_of: datetime) -> bool:
    period = {"IT": TWO_YEARS, "PL": ONE_YEAR}.get(row["country"], SIX_MONTHS)
    return bool(row["sent_at"] < erasable_before(as_of, period))


def _sweep_entries(h: Harness) -> list[LedgerEntry]:
    with Session(h.engine) as session:
        return list(
            session.scalars(
                select(LedgerEntry).where(LedgerEntry.kind == "sweep").order_by(LedgerEntry.seq)
            )
        )


async def _run_sweep(
    h: Harness, request: SweepRequest | None = None, history: str | None = None
) -> SweepReport:
    handle = await h.client.start_workflow(
        RetentionSweepWorkflow.run,
        request,
        id=f"sweep-{uuid.uuid4().hex[:8]}",
        task_queue=h.settings.task_queue,
    )
    report = await handle.result()
    if history:
        await save_history(handle, history)
    return report


async def test_the_sweep_anonymises_exactly_what_is_past_retention_and_once(
    harness: Harness,
) -> None:
    h = harness
    _add_messages(h, datetime.now(UTC))
    before = _messages(h)

    report = await _run_sweep(h, history="retention_sweep")

    assert report.as_of == datetime.combine(report.as_of.date(), datetime.min.time(), UTC)
    assert report.sweep_id == f"retention-sweep-{report.as_of.date().isoformat()}"
    assert report.failed == {} and report.held == {}
    assert set(report.anonymised) == {"sms", "voice", "customer_account", "marketing"}
    assert {"inbox", "numbers", "email"} <= set(report.not_swept)
    expected = {i for i, row in before.items() if _past_retention(row, report.as_of)}
    after = _messages(h)
    anonymised = {i for i, row in after.items() if row["anonymised_at"] is not None}
    assert anonymised == expected, "exactly the messages past their country's period"
    assert 0 < len(expected) < len(before)
    for i in expected:
        assert after[i]["phone"] != before[i]["phone"] and after[i]["content"] is None
        assert after[i]["cell"] is None and after[i]["anonymised_at"] == report.as_of
    for i in set(before) - expected:
        if _past_six_months(before[i], report.as_of):  # kept for Italy's or Poland's duty
            assert after[i] == before[i] | {"content": None}, "only the content goes"
        else:
            assert after[i] == before[i], "within retention: untouched"
    ours = {row["content"] for i, row in before.items() if row["phone"] == PHONE and i in expected}
    assert ours == {"IT 25 months", "PL 13 months", "NL 7 months"}
    counts = report.anonymised["sms"]
    assert counts["phone_number"] == counts["traffic_data"] == len(expected)
    assert report.anonymised["customer_account"]["invoices"] > 0, "12 years seeded, 10 kept"
    assert report.already_done == []

    entries = _sweep_entries(h)
    assert len(entries) == 1 and entries[0].request_id is None
    assert entries[0].detail["anonymised"] == report.model_dump(mode="json")["anonymised"]
    assert entries[0].detail["sweep_id"] == report.sweep_id
    assert entries[0].detail["total"] == report.total
    text = json.dumps(entries[0].detail)
    assert PHONE not in text and h.facts.end_user_phone not in text, "no personal data"

    # The same sweep again (a retry, a second run the same day): nothing changes.
    again = await _run_sweep(h, SweepRequest(as_of=report.as_of, sweep_id=report.sweep_id))

    assert _messages(h) == after
    assert sorted(again.already_done) == sorted(report.anonymised)
    assert again.anonymised == report.anonymised, "the recorded counts, not a second sweep"
    assert len(_sweep_entries(h)) == 1, "the ledger records the sweep once"
    verified = ledger.verify(
        h.engine, ledger.ledger_key(h.settings.secret), ledger.anchors_path(h.settings)
    )
    assert verified.ok, verified.describe()


async def test_a_connector_whose_worker_is_down_is_reported_and_the_others_are_swept(
    dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]
) -> None:
    async with AsyncExitStack() as stack:
        running = tuple(name for name in BUILTIN if name != "voice")
        h = await start_harness(
            dev_env,
            tmp_path,
            mail[0],
            mail[1],
            stack,
            in_process=running,
            connector_start_timeout_seconds=1,
        )
        report = await _run_sweep(h)

    assert report.failed == {"voice": "worker unavailable: no worker picked the sweep up"}
    assert "voice" not in report.anonymised
    assert report.anonymised["sms"]["phone_number"] > 0
    assert _sweep_entries(h)[0].detail["failed"] == report.failed


async def test_a_sweep_as_of_a_time_to_come_is_refused(harness: Harness) -> None:
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    before = _messages(harness)
    with pytest.raises(WorkflowFailureError) as failure:
        await _run_sweep(harness, SweepRequest(as_of=tomorrow))
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "SweepInFuture"
    assert _messages(harness) == before


# 4. The request register is purged once the proof period has passed ----------------------------


def _register(
    session: Session,
    request_id: str,
    closed_at: datetime | None,
    milestones: list[tuple[str, dict[str, Any]]],
) -> None:
    session.add(
        RequestRecord(
            request_id=request_id,
            rights=["erasure"],
            jurisdiction="EU",
            channel="email",
            requester_kind="subject",
            customer_account=None,
            language="en",
            subject_hashes=["cd" * 32],
            status="answered" if closed_at else "in_progress",
            received_at=(closed_at or datetime.now(UTC)) - timedelta(days=20),
            closed_at=closed_at,
            updated_at=closed_at or datetime.now(UTC),
        )
    )
    session.flush()
    session.add_all(
        MilestoneRecord(
            request_id=request_id,
            key=key,
            step=key.split("-")[0],
            at=closed_at or datetime.now(UTC),
            actor="orchestrator",
            detail=detail,
        )
        for key, detail in milestones
    )


async def test_the_register_is_purged_five_years_after_the_request_closed(
    dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]
) -> None:
    settings = conftest.test_settings(tmp_path, mail[0])
    engine = make_engine(settings.app_database_url)
    five_years_ago = subtract_period(datetime.now(UTC), Period(years=5))
    old, recent = five_years_ago - timedelta(days=1), five_years_ago + timedelta(days=1)
    answered: Milestones = [("received", {}), ("answer", {"message_id": "<answer@dsr>"})]
    kept: Milestones = [
        ("legal_hold_check", {"retained": ["customer_account/invoices: financial"]})
    ]
    finished: Milestones = [*kept, ("deferred-erasure-1", {"erased": {}, "still_kept": 0})]
    with Session(engine) as session, session.begin():
        _register(session, "R-OLD", old, answered)
        _register(session, "R-RECENT", recent, answered)
        _register(session, "R-OPEN", None, [("received", {})])
        _register(session, "R-OLD-DEFERRED", old, [*answered, *kept])
        _register(session, "R-OLD-DEFERRED-DONE", old, [*answered, *finished])

    async with AsyncExitStack() as stack:
        executor = stack.enter_context(ThreadPoolExecutor(max_workers=4))
        await stack.enter_async_context(
            worker.orchestrator_worker(dev_env.client, settings, executor)
        )
        result = await dev_env.client.execute_workflow(
            ConfirmationPurgeWorkflow.run,
            id=f"purge-{uuid.uuid4().hex[:8]}",
            task_queue=settings.task_queue,
        )

    assert result.register_request_ids == ["R-OLD", "R-OLD-DEFERRED-DONE"]
    assert result.register_purged == 2
    with Session(engine) as session:
        rows = set(session.scalars(select(RequestRecord.request_id)))
        left = {m.request_id for m in session.scalars(select(MilestoneRecord))}
        entries = list(
            session.scalars(
                select(LedgerEntry).where(LedgerEntry.kind == "purge").order_by(LedgerEntry.seq)
            )
        )
    assert rows == {"R-RECENT", "R-OPEN", "R-OLD-DEFERRED"}, (
        "5 years − 1 day, open, or a deferred erasure still to do: kept"
    )
    assert left == rows, "the purged requests' milestones went with them"
    register = [(e.request_id, e.detail) for e in entries if e.detail["purged"] == "register"]
    assert register == [
        (
            "R-OLD",
            {
                "purged": "register",
                "milestones": 2,
                "reason": "request register retention ended",
                "rule": "request-confirmation",
            },
        ),
        (
            "R-OLD-DEFERRED-DONE",
            {
                "purged": "register",
                "milestones": 4,
                "reason": "request register retention ended",
                "rule": "request-confirmation",
            },
        ),
        (None, {"purged": "register", "count": 2, "rule": "request-confirmation"}),
    ]
    verified = ledger.verify(
        engine, ledger.ledger_key(settings.secret), ledger.anchors_path(settings)
    )
    assert verified.ok, verified.describe()
    assert verified.last_anchor_seq == verified.last_seq, "anchored after the purge"
