"""Periods that take days, months and years, crossed on the time-skipping test server: the
verification code expiring, the officer's reminders and the overdue notice, the UK clock
stopping for a clarification, the five-year purge of proof (its Schedule, on the dev server:
``tests/test_schedules.py``).

Each request is received at the test server's own clock, which earlier tests have moved ahead
of the wall clock (the server also jumps years ahead when it is left idle with skipping
unlocked, so a wait that needs no time passing has auto-skipping disabled)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, suppress
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.proof import PurgeResult
from dsr import search_attributes as sa
from dsr.deadline_policy import load_deadline_policy
from dsr.deadlines import DeadlineQuery, compute_deadline
from dsr.ledger import LedgerEntry
from dsr.models import RightsRequest
from dsr.register import ConfirmationRecord, MilestoneRecord, RequestRecord
from dsr.status import Status
from services.mail_server import MailFolder
from tests.conftest import Harness, save_history, start_harness
from workflows.models import OfficerAction, OfficerNote, RequestStatus, StepStatus, UpdateResult
from workflows.purge import ConfirmationPurgeWorkflow

OFFICER = "officer@group.example"
MARGIN = timedelta(minutes=5)


async def received_now(env: WorkflowEnvironment, h: Harness, **fields: Any) -> RightsRequest:
    """A request received now by the test server's clock (intake refuses a received_at ahead
    of the wall clock, so the validated request is moved to the server's time)."""
    now = await env.get_current_time()
    request = h.request(**fields)
    login = {"last_login_at": now} if request.last_login_at else {}
    return request.model_copy(update={"received_at": now} | login)


async def submit(stack: AsyncExitStack, h: Harness,
                 request: RightsRequest) -> WorkflowHandle[Any, Any]:
    """Start the request; a test that fails leaves no workflow open (its timers would stop
    the shared server from skipping time once this test's workers are gone)."""
    handle = await h.submit(request)

    async def terminate() -> None:
        with suppress(RPCError):
            await handle.terminate("test over")

    stack.push_async_callback(terminate)
    return handle


async def wait_for_status(h: Harness, request_id: str, wanted: Status) -> RequestStatus:
    for _ in range(300):
        status = await h.status(request_id)
        if status.status is wanted:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{request_id} never reached {wanted} (last: {status.status})")


async def sleep_until(env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip the server's clock to ``moment``."""
    await env.sleep(moment - await env.get_current_time())


def message(h: Harness, message_id: str) -> EmailMessage | None:
    found = h.mail.find(header=("Message-ID", message_id))
    assert len(found) <= 1, f"{message_id} sent more than once"
    return found[0] if found else None


def deadline_notices(h: Harness) -> list[EmailMessage]:
    """The officer's emails but the one an access answer sends with its recipients available
    on request (officer_answer_notes): that one is about the answer, not the deadline."""
    return [m for m in h.mail.find(to=OFFICER)
            if not m["Message-ID"].startswith("<officer_answer_notes.")]


async def officer_mail(h: Harness, number: int) -> EmailMessage:
    """The officer's ``number``-th notice (1-based), waiting for it to arrive."""
    for _ in range(400):
        found = deadline_notices(h)
        if len(found) >= number:
            return found[number - 1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the officer got {len(found)} notices, not {number}")


def register_row(h: Harness, request_id: str) -> RequestRecord:
    with Session(h.engine, expire_on_commit=False) as session:
        row = session.get(RequestRecord, request_id)
    assert row is not None
    return row


def milestones(h: Harness, request_id: str, prefix: str) -> list[MilestoneRecord]:
    with Session(h.engine, expire_on_commit=False) as session:
        return list(session.scalars(select(MilestoneRecord).where(
            MilestoneRecord.request_id == request_id,
            MilestoneRecord.key.startswith(prefix)).order_by(MilestoneRecord.id)))


async def officer_update(h: Harness, request_id: str, name: str, payload: Any) -> UpdateResult:
    return await h.update(request_id, name, payload)


def assert_officer_mail_without_personal_data(mail: EmailMessage, h: Harness,
                                              request: RightsRequest) -> str:
    assert mail["To"] == OFFICER
    body = str(mail.get_content())
    assert "@" not in body, "an officer notice names no address"
    assert request.requester.email not in body
    assert all(identity.value not in body for identity in request.identities)
    return body


# 1. Verification expiry ----------------------------------------------------------------------


async def test_unanswered_code_expires_and_the_request_closes_unverified(
        time_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    async with AsyncExitStack() as stack:
        h = await start_harness(time_env, tmp_path, mail[0], mail[1], stack)
        address = h.facts.account_holder_email
        request = await received_now(
            time_env, h, channel="email", last_login_at=None,
            identities=[{"type": "email", "value": address}],
            requester={"kind": "subject", "email": address})
        handle = await submit(stack, h, request)
        rid = request.request_id

        code = await h.mail.wait_for(
            header=("Message-ID", f"<code.1.identity-1.{rid}@dsr>"), timeout=20)
        assert code["To"] == address
        assert h.settings.code_validity_hours == 72

        outcome = await handle.result()  # nobody answers: the server skips past the expiry

        assert outcome.status is Status.UNVERIFIED
        assert outcome.answered_at is not None
        assert outcome.answered_at - request.received_at >= timedelta(hours=72)
        assert outcome.answered_at - request.received_at < timedelta(hours=73)
        notice = message(h, f"<unverified.{rid}@dsr>")
        assert notice is not None and notice["To"] == address
        assert "could not verify your identity in time" in notice.get_content()
        assert not h.mail.find(to=OFFICER), "72 hours: no reminder yet"
        row = register_row(h, rid)
        assert row.status == "unverified" and row.closed_at is not None and not row.overdue
        status = await h.status(rid)
        steps = {s.name: s for s in status.steps}
        assert steps["verify"].status is StepStatus.FAILED
        assert steps["verify"].detail == "not verified in time"
        assert steps["discover"].status is StepStatus.PENDING, "nothing looked up"
        assert status.verification == {"identity-1": "pending"}
        assert status.connectors == []
        await save_history(handle, "unverified")


# 2. Reminders and overdue --------------------------------------------------------------------


@pytest.mark.parametrize("jurisdiction", ["EU", "US-CA"])
async def test_officer_is_reminded_7_days_and_1_day_before_then_told_it_is_overdue(
        time_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder],
        jurisdiction: str) -> None:
    async with AsyncExitStack() as stack:
        h = await start_harness(time_env, tmp_path, mail[0], mail[1], stack,
                                approval_required_for=["access"])
        request = await received_now(time_env, h, jurisdiction=jurisdiction)
        rid = request.request_id
        handle = await submit(stack, h, request)
        status = await wait_for_status(h, rid, Status.AWAITING_APPROVAL)
        deadline = compute_deadline(DeadlineQuery(
            jurisdiction=request.jurisdiction, rights=request.rights,
            received_at=request.received_at), load_deadline_policy(
            h.settings.policy_dir / "deadlines.yaml"))
        assert status.due_at == deadline.due_at, "the end of the due day, local time"
        due, due_on = deadline.due_at, deadline.due_on
        in_words = f"due on {due_on.day} {due_on:%B %Y}"
        seven, one, overdue = (f"<remind_7_days.{due_on}.{rid}@dsr>",
                               f"<remind_1_day.{due_on}.{rid}@dsr>",
                               f"<officer_overdue.{rid}@dsr>")

        await sleep_until(time_env, due - timedelta(days=7) - MARGIN)
        await asyncio.sleep(0.5)
        assert not h.mail.find(to=OFFICER), "no reminder before its time"

        await sleep_until(time_env, due - timedelta(days=7) + MARGIN)
        reminder = await officer_mail(h, 1)
        assert reminder["Message-ID"] == seven
        body = assert_officer_mail_without_personal_data(reminder, h, request)
        assert f"{in_words}: 7 days left" in body

        await sleep_until(time_env, due - timedelta(days=1) + MARGIN)
        reminder = await officer_mail(h, 2)
        assert reminder["Message-ID"] == one
        body = assert_officer_mail_without_personal_data(reminder, h, request)
        assert f"{in_words}: 1 day left" in body
        assert not (await h.status(rid)).overdue

        await sleep_until(time_env, due + MARGIN)
        notice = await officer_mail(h, 3)
        assert notice["Message-ID"] == overdue
        assert f"OVERDUE since {due_on.day} {due_on:%B %Y}" in notice["Subject"]
        assert_officer_mail_without_personal_data(notice, h, request)
        status = await h.status(rid)
        assert status.overdue and status.status is Status.AWAITING_APPROVAL
        described = await handle.describe()
        assert described.typed_search_attributes.get(sa.OVERDUE) is True
        row = register_row(h, rid)
        assert row.overdue and row.status == "awaiting_approval" and row.closed_at is None
        assert [m.key for m in milestones(h, rid, "overdue-")] == [f"overdue-{due_on}"]

        await officer_update(h, rid, "approve", OfficerAction(officer="Ada"))
        with time_env.auto_time_skipping_disabled():  # no more time needs to pass
            outcome = await handle.result()

        assert outcome.status is Status.ANSWERED
        assert message(h, f"<answer.{rid}@dsr>") is not None
        row = register_row(h, rid)
        assert row.status == "answered" and row.overdue and row.closed_at is not None
        assert len(deadline_notices(h)) == 3, "each reminder once, the notice once"
        if jurisdiction == "EU":
            await save_history(handle, "overdue_then_approved")


# 3. Clarification: the UK clock stops, the EU clock does not ---------------------------------


async def test_clarification_stops_the_clock_in_the_uk_but_not_in_the_eu(
        time_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    async with AsyncExitStack() as stack:
        h = await start_harness(time_env, tmp_path, mail[0], mail[1], stack,
                                approval_required_for=["access"])
        uk = await received_now(time_env, h, jurisdiction="UK")
        eu = await received_now(time_env, h, jurisdiction="EU")
        handles = {r.request_id: await submit(stack, h, r) for r in (uk, eu)}
        before = {r.request_id: await wait_for_status(h, r.request_id, Status.AWAITING_APPROVAL)
                  for r in (uk, eu)}
        question = "Which of your two accounts do you mean?"

        for r in (uk, eu):
            result = await officer_update(h, r.request_id, "request_scope_clarification",
                                          OfficerNote(officer="Ada", note=question))
            assert ("clock is stopped" in result.message) is (r is uk)
            assert (await h.status(r.request_id)).status is Status.AWAITING_CLARIFICATION
        await time_env.sleep(timedelta(days=10))
        received = {r.request_id: await officer_update(
            h, r.request_id, "clarification_received",
            OfficerNote(officer="Ada", note="the requester named the account"))
            for r in (uk, eu)}

        policy = load_deadline_policy(h.settings.policy_dir / "deadlines.yaml")
        for r in (uk, eu):
            rid = r.request_id
            asked = milestones(h, rid, "clarification-asked-")
            answered = milestones(h, rid, "clarification-received-")
            assert len(asked) == len(answered) == 1
            paused = answered[0].detail["paused_days"]
            expected = compute_deadline(DeadlineQuery(
                jurisdiction=r.jurisdiction, rights=r.rights, received_at=r.received_at,
                paused_days=paused), policy)
            after = await h.status(rid)
            assert after.status is Status.AWAITING_APPROVAL, "back where it was"
            assert after.due_at == received[rid].due_at == expected.due_at
            assert register_row(h, rid).due_at == expected.due_at
            clarification = message(h, f"<clarification.{asked[0].at:%Y-%m-%d}.{rid}@dsr>")
            assert clarification is not None and clarification["To"] == r.requester.email
            assert question in clarification.get_content()
            paused_words = "paused until we receive your reply"
            assert (paused_words in clarification.get_content()) is (r is uk)
            if r is uk:
                # UK GDPR: the clock stops for the days waited; a weekend or bank holiday
                # at the end rolls the due date to the next working day.
                assert paused == 10
                old, new = before[rid], after
                assert old.target_on is not None and new.target_on is not None
                assert new.target_on - old.target_on == timedelta(days=10)
                assert new.due_at is not None and old.due_at is not None
                assert new.due_at > old.due_at
            else:
                assert paused == 0, "the EU clock does not stop"
                assert after.due_at == before[rid].due_at and after.target_on == \
                    before[rid].target_on

        for rid, handle in handles.items():
            await officer_update(h, rid, "approve", OfficerAction(officer="Ada"))
            with time_env.auto_time_skipping_disabled():
                assert (await handle.result()).status is Status.ANSWERED
        assert not deadline_notices(h), "no reminder within the first weeks"
        await save_history(handles[uk.request_id], "clarification_uk_clock_stopped")
        await save_history(handles[eu.request_id], "clarification_eu")


async def test_a_uk_question_not_about_what_the_request_covers_stops_no_clock(
        time_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    """UK GDPR Art. 12A: the clock stops only for clarification of what the request covers."""
    async with AsyncExitStack() as stack:
        h = await start_harness(time_env, tmp_path, mail[0], mail[1], stack,
                                approval_required_for=["access"])
        request = await received_now(time_env, h, jurisdiction="UK")
        rid = request.request_id
        handle = await submit(stack, h, request)
        before = await wait_for_status(h, rid, Status.AWAITING_APPROVAL)
        result = await officer_update(h, rid, "request_clarification", OfficerNote(
            note="May we send the answer by post as well?"))
        assert "clock is stopped" not in result.message
        await time_env.sleep(timedelta(days=10))
        await officer_update(h, rid, "clarification_received", OfficerNote(note="yes"))

        after = await h.status(rid)
        assert after.due_at == before.due_at and after.target_on == before.target_on
        await officer_update(h, rid, "approve", OfficerAction())
        with time_env.auto_time_skipping_disabled():
            assert (await handle.result()).status is Status.ANSWERED


async def test_a_uk_period_starts_once_identity_is_confirmed(
        time_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    """UK GDPR Art. 12A: waiting for identity defers the start of the month."""
    async with AsyncExitStack() as stack:
        h = await start_harness(time_env, tmp_path, mail[0], mail[1], stack,
                                approval_required_for=["access"])
        request = await received_now(
            time_env, h, jurisdiction="UK", channel="email", last_login_at=None,
            identities=[{"type": "email", "value": h.facts.account_holder_email}])
        rid = request.request_id
        handle = await submit(stack, h, request)
        received = await wait_for_status(h, rid, Status.AWAITING_VERIFICATION)
        await time_env.sleep(timedelta(days=2))  # within the code's 72 hours
        await officer_update(h, rid, "mark_verified", OfficerNote(note="passport checked"))

        verified = await wait_for_status(h, rid, Status.AWAITING_APPROVAL)
        policy = load_deadline_policy(h.settings.policy_dir / "deadlines.yaml")
        expected = compute_deadline(DeadlineQuery(
            jurisdiction=request.jurisdiction, rights=request.rights,
            received_at=request.received_at,
            verified_at=request.received_at + timedelta(days=2)), policy)
        assert verified.due_at == expected.due_at and verified.target_on == expected.target_on
        assert received.target_on is not None and verified.target_on is not None
        assert verified.target_on > received.target_on
        assert register_row(h, rid).due_at == expected.due_at
        await officer_update(h, rid, "cancel", OfficerNote(note="test over"))
        with time_env.auto_time_skipping_disabled():
            assert (await handle.result()).status is Status.CANCELLED
        await save_history(handle, "uk_period_from_verification")


async def test_approval_given_while_a_clarification_is_awaited_waits_for_the_answer(
        time_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    async with AsyncExitStack() as stack:
        h = await start_harness(time_env, tmp_path, mail[0], mail[1], stack,
                                approval_required_for=["access"])
        request = await received_now(time_env, h, jurisdiction="UK")
        rid = request.request_id
        handle = await submit(stack, h, request)
        await wait_for_status(h, rid, Status.AWAITING_APPROVAL)
        await officer_update(h, rid, "request_scope_clarification",
                             OfficerNote(note="Which account do you mean?"))
        await time_env.sleep(timedelta(days=3))

        await officer_update(h, rid, "approve", OfficerAction(officer="Bo"))
        await asyncio.sleep(1)
        status = await h.status(rid)
        assert status.status is Status.AWAITING_CLARIFICATION, "nothing runs before the answer"
        assert status.connectors, "data was looked up before the approval"
        assert all(not c.records for c in status.connectors), "nothing exported yet"
        assert message(h, f"<answer.{rid}@dsr>") is None

        result = await officer_update(h, rid, "clarification_received",
                                      OfficerNote(officer="Ada", note="the work account"))
        assert result.due_at is not None and status.due_at is not None
        assert result.due_at > status.due_at, "the UK clock restarted three days later"
        with time_env.auto_time_skipping_disabled():
            assert (await handle.result()).status is Status.ANSWERED
        assert message(h, f"<answer.{rid}@dsr>") is not None


# 4. Proof is purged after five years ---------------------------------------------------------


async def purge(env: WorkflowEnvironment, h: Harness, run: str) -> PurgeResult:
    """One run of the purge, as the Schedule starts it, at the server's current time."""
    with env.auto_time_skipping_disabled():
        return await env.client.execute_workflow(
            ConfirmationPurgeWorkflow.run, id=f"purge-{run}-{h.settings.task_queue}",
            task_queue=h.settings.task_queue)


async def test_confirmation_is_kept_five_years_then_purged(
        time_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    async with AsyncExitStack() as stack:
        h = await start_harness(time_env, tmp_path, mail[0], mail[1], stack)
        request = await received_now(time_env, h)
        rid = request.request_id
        handle = await submit(stack, h, request)
        with time_env.auto_time_skipping_disabled():  # answered at once, no time passes
            outcome = await handle.result()
        assert outcome.status is Status.ANSWERED and outcome.answered_at is not None
        with Session(h.engine) as session:
            proof = session.get(ConfirmationRecord, rid)
            assert proof is not None and proof.message_id == f"<answer.{rid}@dsr>"
            assert proof.sent_at <= outcome.answered_at
            kept_for = proof.retain_until - proof.sent_at
            assert proof.retain_until.year == proof.sent_at.year + 5
            assert timedelta(days=5 * 365) < kept_for <= timedelta(days=5 * 365 + 2), "5 years"

        kept = await purge(time_env, h, "now")
        assert rid not in kept.request_ids and kept.purged == 0
        with Session(h.engine) as session:
            assert session.get(ConfirmationRecord, rid) is not None

        await time_env.sleep(timedelta(days=5 * 366))
        purged = await purge(time_env, h, "in-five-years")

        assert purged.request_ids == [rid] and purged.purged == 1
        # The register row is proof too: five years after the request closed it goes, with
        # its milestones; the ledger (no personal data) keeps the record of both purges.
        assert purged.register_request_ids == [rid]
        with Session(h.engine) as session:
            assert session.get(ConfirmationRecord, rid) is None
            assert session.get(RequestRecord, rid) is None
            entries = list(session.scalars(select(LedgerEntry).where(
                LedgerEntry.request_id == rid, LedgerEntry.kind == "purge")
                .order_by(LedgerEntry.seq)))
        assert milestones(h, rid, "") == []
        assert [e.detail["purged"] for e in entries] == ["confirmation", "register", "package"]
        assert all(e.actor == "confirmation-purge-schedule" for e in entries)
        assert all(e.at > proof.retain_until for e in entries)
