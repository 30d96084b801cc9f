"""Deferred erasure: what a duty or a legal hold kept is erased when the duty ends or the hold
is released, by the request's DeferredErasure workflow, against the real SMS store.

The first test crosses the real six months on the time-skipping server (every connector call
takes its "as of" time from the workflow, so store dates and skipped time agree); the hold
tests run on the dev server, where a release is acted on within seconds."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from connectors.kit.store import create_store_engine
from connectors.marketing import (
    ConsentRecord,
    MarketingConnector,
    Prospect,
    ProspectRow,
    Subscription,
)
from connectors.seeds import marketing
from connectors.seeds.population import make_population
from connectors.sms import Message
from dsr import search_attributes as sa
from dsr.assertions import Role
from dsr.database import make_engine
from dsr.holds import HoldKind, HoldSpec, place_hold, release_hold
from dsr.ledger import LedgerEntry
from dsr.models import Identity, IdentityType, RightsRequest
from dsr.register import MilestoneRecord
from dsr.retention import Period, RetainedPart, add_period
from dsr.sealedblobs import sealed_blob_store
from dsr.status import Status
from services import workflow_client as officer
from services.mail_server import MailFolder
from tests.conftest import Harness, save_history, start_harness
from tests.test_cli import cli
from tests.test_requests_e2e import answer_of, emailed_code, send_code
from workflows.deferred import DeferredOutcome, Recheck, workflow_id
from workflows.models import OfficerNote

SIX_MONTHS = Period(months=6)


def subject_messages(h: Harness) -> list[Message]:
    """The demo end user's messages at the controller, anonymised ones included (by id)."""
    engine = create_store_engine(h.settings.connector_database_url("sms"))
    with Session(engine) as session:
        return list(session.scalars(
            select(Message).where(Message.customer_account == h.facts.controller_account_id)
            .order_by(Message.id)))


def mine(h: Harness, rows: list[Message]) -> list[Message]:
    return [m for m in rows if m.end_user_phone == h.facts.end_user_phone]


async def erase_and_answer(h: Harness, request: RightsRequest) -> WorkflowHandle[Any, Any]:
    handle = await h.submit(request)
    result = await send_code(h, request.request_id, await emailed_code(h, request.request_id))
    assert result.accepted
    return handle


async def parts_of(h: Harness, request_id: str) -> list[RetainedPart]:
    handle = h.client.get_workflow_handle(workflow_id(request_id))
    return await handle.query("parts", result_type=list[RetainedPart])


# --- a duty that ends ------------------------------------------------------------------------


async def test_sms_kept_for_six_months_is_erased_the_day_after_the_duty_ends(
    time_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]
) -> None:
    async with AsyncExitStack() as stack:
        h = await start_harness(time_env, tmp_path, mail[0], mail[1], stack)
        now = await time_env.get_current_time()
        request = h.controller_erasure().model_copy(update={"received_at": now})
        rid = request.request_id
        stack.push_async_callback(_terminate, h, f"dsr-{rid}", workflow_id(rid))
        with time_env.auto_time_skipping_disabled():
            handle = await erase_and_answer(h, request)
            assert (await handle.result()).status is Status.ANSWERED
        kept = [m for m in mine(h, subject_messages(h)) if m.anonymised_at is None]
        assert kept, "the seed gives the subject messages younger than six months"
        parts = await parts_of(h, rid)
        assert {p.rule_id for p in parts} == {"sms-voice-integrity"}
        first_due = min(p.until for p in parts if p.until)
        newest = max(m.sent_at for m in kept)
        assert max(p.until for p in parts if p.until) == add_period(newest, SIX_MONTHS).date()

        # The day before the first part may go, nothing kept has changed.
        await _skip_to(time_env, datetime.combine(first_due, datetime.min.time(), UTC))
        assert [(m.id, m.content) for m in mine(h, subject_messages(h))
                if m.anonymised_at is None] == [(m.id, m.content) for m in kept]

        last_due = max(p.until for p in parts if p.until)
        await _skip_to(time_env, datetime.combine(last_due + timedelta(days=2),
                                                  datetime.min.time(), UTC))
        with time_env.auto_time_skipping_disabled():
            outcome = await _final(h, workflow_id(rid))
            await save_history(h.client.get_workflow_handle(workflow_id(rid)),
                               "deferred_erasure_after_duty")

        assert outcome.remaining == []
        erased = _by_id(subject_messages(h), kept)
        assert len(erased) == len(kept)
        assert all(m.anonymised_at is not None and m.content is None for m in erased)
        assert all(m.end_user_phone != h.facts.end_user_phone for m in erased)
        rounds = _milestones(h, rid, "deferred-erasure-")
        assert rounds and all(r.at.date() > first_due for r in rounds)
        notice = await h.mail.wait_for(to=h.facts.controller_registered_email,
                                       subject_contains="now erased", timeout=30)
        assert rid in notice["Subject"] and h.facts.end_user_phone not in notice.get_content()


async def test_a_hold_released_after_a_year_lets_the_erasure_happen(
    time_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]
) -> None:
    async with AsyncExitStack() as stack:
        h = await start_harness(time_env, tmp_path, mail[0], mail[1], stack)
        now = await time_env.get_current_time()
        engine = make_engine(h.settings.app_database_url)
        phone = Identity(type=IdentityType.PHONE, value=h.facts.end_user_phone)
        hold = place_hold(engine, h.settings.secret, HoldSpec(
            kind=HoldKind.LITIGATION, reason=f"case 2026-201 about {phone.value}",
            placed_by="counsel", identity=phone), now)
        request = h.controller_erasure().model_copy(update={"received_at": now})
        rid = request.request_id
        stack.push_async_callback(_terminate, h, f"dsr-{rid}", workflow_id(rid))
        with time_env.auto_time_skipping_disabled():
            handle = await erase_and_answer(h, request)
            assert (await handle.result()).status is Status.ANSWERED
        before = mine(h, subject_messages(h))
        assert before and all(m.anonymised_at is None for m in before)
        assert await _rule_ids(h, rid) == {hold.hold_id}
        await _until(lambda: _hold_reason(h, rid), hold.hold_id)  # its id, never its reason

        await _skip_to(time_env, now + timedelta(days=366))
        assert _same(mine(h, subject_messages(h)), before), "a year on, the hold still keeps it"

        with time_env.auto_time_skipping_disabled():
            release_hold(engine, h.settings.secret, hold.hold_id, "counsel", "judgment final",
                         await time_env.get_current_time())
            await h.client.get_workflow_handle(workflow_id(rid)).signal(
                "recheck", Recheck(reason="hold released"))
            outcome = await _final(h, workflow_id(rid))

        assert outcome.remaining == [] and outcome.erased["sms"]["phone_number"] == len(before)
        assert all(m.anonymised_at is not None for m in _by_id(subject_messages(h), before))


# --- marketing: erased at once, consent proof kept five years ------------------------------


async def test_marketing_goes_at_once_and_its_consent_proof_after_five_years(
    time_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]
) -> None:
    async with AsyncExitStack() as stack:
        h = await start_harness(time_env, tmp_path, mail[0], mail[1], stack)
        now = await time_env.get_current_time()
        store = MarketingConnector(h.settings.connector_database_url("marketing"),
                                   sealed_blob_store(h.settings), h.settings.secret)
        person = make_population(60, 4).end_users[0]  # proof on both sides of five years
        marketing.seed(store, make_population(60, 4), now=now)
        proof_before = _consents(store, person.email)
        assert {c.given_at < now - timedelta(days=5 * 365 + 2) for c in proof_before} == {
            True, False}
        request = h.request(rights=["erasure"], channel="email", last_login_at=None,
                            identities=[{"type": "email", "value": person.email}],
                            requester={"kind": "subject", "email": person.email}
                            ).model_copy(update={"received_at": now})
        rid = request.request_id
        stack.push_async_callback(_terminate, h, f"dsr-{rid}", workflow_id(rid))
        with time_env.auto_time_skipping_disabled():
            handle = await h.submit(request)
            await _until(lambda: _mark_verified(h, rid), True, seconds=30)
            # Verified by hand, not by a code to it: the officer confirms the address too.
            await _until(lambda: _officer_note(h, rid, "confirm_recipient"), True, seconds=30)
            assert (await handle.result()).status is Status.ANSWERED

        rows = _marketing_rows(store, person.email)
        assert rows["prospects"] == rows["subscriptions"] == 0, "the 12-month maximum never binds"
        young = [c for c in proof_before if c.given_at >= now - timedelta(days=5 * 365)]
        assert [c.id for c in _consents(store, person.email)] == [c.id for c in young]
        assert store.is_suppressed(person.email)
        parts = await parts_of(h, rid)
        assert {(p.connector, p.category, p.rule_id) for p in parts} == {
            ("marketing", "consent_proof", "consent-proof")}
        until = max(p.until for p in parts if p.until)
        assert until == add_period(max(c.given_at for c in young), Period(years=5)).date()

        await _skip_to(time_env, datetime.combine(until + timedelta(days=2),
                                                  datetime.min.time(), UTC))
        with time_env.auto_time_skipping_disabled():
            outcome = await _final(h, workflow_id(rid))

        assert outcome.remaining == [] and outcome.erased["marketing"]["consent_proof"]
        assert _consents(store, person.email) == []
        assert store.is_suppressed(person.email), "only the suppression entry remains"
        assert store.import_prospects([_prospect(person.email, now)]) == 0, "never re-imported"


# --- legal holds -----------------------------------------------------------------------------


async def test_two_holds_placed_from_the_cli_keep_everything_until_the_last_is_released(
    harness: Harness,
) -> None:
    h = harness
    h.log_in_cli("admin.lee", (Role.ADMINISTRATOR, Role.AUDITOR))  # holds and the ledger
    on_subject = await _hold_cli(h, "place", "--kind", "litigation", "--reason",
                                 "case 2026-114", "--phone", h.facts.end_user_phone)
    on_customer = await _hold_cli(h, "place", "--kind", "government", "--reason",
                                  "disclosure order 17", "--customer",
                                  h.facts.controller_account_id, "--product", "SMS")
    before = mine(h, subject_messages(h))
    request = h.controller_erasure()
    rid = request.request_id
    handle = await erase_and_answer(h, request)
    assert (await handle.result()).status is Status.ANSWERED

    assert _same(mine(h, subject_messages(h)), before), "the holds keep it all"
    answer = answer_of(h, rid)
    assert "legal hold" in answer and "until the hold is released" in answer
    assert "case 2026-114" not in answer and "disclosure order" not in answer
    held_by = await _rule_ids(h, rid)
    assert held_by and held_by <= {on_subject, on_customer}

    await _hold_cli(h, "release", on_subject, "--reason", "case settled")
    await _until(lambda: _rule_ids(h, rid), {on_customer})
    assert _same(mine(h, subject_messages(h)), before), "the other hold still keeps it all"

    started = datetime.now(UTC)
    await _hold_cli(h, "release", on_customer, "--reason", "order lapsed")
    await _until(lambda: _rule_ids(h, rid), {"sms-voice-integrity"})
    erased_within = datetime.now(UTC) - started

    after = subject_messages(h)
    six_months_ago = datetime.now(UTC) - timedelta(days=181)
    older = [m for m in before if m.sent_at < six_months_ago - timedelta(days=3)]
    assert older and all(m.anonymised_at is not None for m in _by_id(after, older))
    newer = [m for m in before if m.sent_at > six_months_ago + timedelta(days=3)]
    assert newer and all(m.anonymised_at is None for m in _by_id(after, newer))
    assert erased_within < timedelta(minutes=5)
    engine = make_engine(h.settings.app_database_url)
    with Session(engine) as session:
        entries = [(e.kind, e.request_id) for e in
                   session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq))]
    assert [k for k, _ in entries].count("hold_released") == 2
    assert ("milestone", rid) in entries and _milestones(h, rid, "deferred-erasure-")
    code, out, _ = await cli(h, "ledger", "verify")
    assert code == 0 and "ledger intact" in out
    await save_history(handle, "held_then_deferred")


async def _hold_cli(h: Harness, *args: str) -> str:
    code, out, err = await cli(h, "hold", *args, "--json")
    assert code == 0, err
    return str(json.loads(out)["hold_id"])


# --- helpers ---------------------------------------------------------------------------------


async def _skip_to(env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip the test server's clock to ``moment``. Its sleep call stalls once a timer fires on
    the way and the workflow continues as new, though the clock has moved on: so it is asked
    with a short deadline, and again until the clock is there."""
    for _ in range(100):
        now = await env.get_current_time()
        if now >= moment:
            return
        sleep = SleepRequest()
        sleep.duration.FromTimedelta(moment - now)
        with suppress(RPCError):
            await env.client.test_service.unlock_time_skipping_with_sleep(
                sleep, timeout=timedelta(seconds=2))
    raise AssertionError(f"the test server's clock never reached {moment}")


async def _final(h: Harness, deferred_id: str) -> DeferredOutcome:
    """The last run's outcome, once it has completed: polled from the history, since the
    time-skipping server neither follows a chain of continue-as-new runs nor describes a
    workflow whose Datetime search attribute was unset."""
    for _ in range(600):
        handle = h.client.get_workflow_handle(deferred_id, result_type=DeferredOutcome)
        history = await handle.fetch_history()
        if history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            return await handle.result(follow_runs=False)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{deferred_id} did not complete")


async def _mark_verified(h: Harness, request_id: str) -> bool:
    """Verified by an officer (the code path is tested elsewhere); False while not ready."""
    return await _officer_note(h, request_id, "mark_verified")


async def _officer_note(h: Harness, request_id: str, update: str) -> bool:
    """An officer's Update with a note; False while the request is not ready for it."""
    try:
        await h.update(request_id, update,
                             OfficerNote(officer="officer.tan", note="checked by phone"))
    except officer.OfficerError:
        return False
    return True


def _consents(store: MarketingConnector, email: str) -> list[Any]:
    """(id, given_at) of the person's consent proof."""
    with store.store.reading() as session:
        return list(session.execute(select(ConsentRecord.id, ConsentRecord.given_at).where(
            ConsentRecord.email_hash == store.identity_hash(email)).order_by(ConsentRecord.id)))


def _marketing_rows(store: MarketingConnector, email: str) -> dict[str, int]:
    with store.store.reading() as session:
        return {
            "prospects": len(session.scalars(select(Prospect).where(
                func.lower(Prospect.email) == email.lower())).all()),
            "subscriptions": len(session.scalars(select(Subscription).where(
                func.lower(Subscription.email) == email.lower())).all()),
        }


def _prospect(email: str, now: datetime) -> ProspectRow:
    return ProspectRow(email=email, name="A Person", source="web_form",
                       source_detail="newsletter signup", created_at=now)


async def _rule_ids(h: Harness, request_id: str) -> set[str]:
    return {part.rule_id for part in await parts_of(h, request_id)}


async def _hold_reason(h: Harness, request_id: str) -> Any:
    """As stored: the SDK's typed attributes do not parse the unset ``DsrEraseAt`` (an empty
    payload) the time-skipping server returns."""
    execution = WorkflowExecution(workflow_id=workflow_id(request_id))
    described = await h.client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace=h.client.namespace, execution=execution))
    field = described.workflow_execution_info.search_attributes.indexed_fields.get(
        sa.HOLD_REASON.name)
    return None if field is None else json.loads(field.data)


async def _until(probe: Any, wanted: Any, seconds: float = 60) -> None:
    last = None
    for _ in range(int(seconds * 10)):
        with suppress(RPCError):
            last = await probe()
            if last == wanted:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never reached {wanted!r} (last: {last!r})")


def _same(rows: list[Message], before: list[Message]) -> bool:
    return [(m.id, m.content, m.anonymised_at) for m in rows] == [
        (m.id, m.content, m.anonymised_at) for m in before]


def _by_id(rows: list[Message], wanted: list[Message]) -> list[Message]:
    ids = {m.id for m in wanted}
    return [m for m in rows if m.id in ids]


def _milestones(h: Harness, request_id: str, prefix: str) -> list[MilestoneRecord]:
    with Session(make_engine(h.settings.app_database_url), expire_on_commit=False) as session:
        return list(session.scalars(select(MilestoneRecord).where(
            MilestoneRecord.request_id == request_id, MilestoneRecord.key.startswith(prefix))))


async def _terminate(h: Harness, *workflow_ids: str) -> None:
    for running in workflow_ids:
        with suppress(RPCError):
            await h.client.get_workflow_handle(running).terminate("test over")
