"""Children (privacy statement, section 10): a report that a request's subject is a child starts
an erasure review of that child's data, with its own internal target (never after the legal
deadline), a ``child`` marker in status and ``list --child``, and the officer reminded from the
first day. The erasure a report adds waits for an approver's review; one the requester asked
for runs as any erasure, once verified."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from dsr.children import is_child_report, load_child_policy, reminders, review_plan
from dsr.deadline_policy import load_deadline_policy
from dsr.deadlines import Deadline, DeadlineQuery, compute_deadline
from dsr.emails import render_email
from dsr.models import Jurisdiction, Language, Right, RightsRequest
from dsr.officer_emails import (
    OfficerChildReviewContext,
)
from dsr.provenance import RuleStatus
from dsr.register import RequestRecord
from dsr.status import Status
from services.mail_server import MailFolder
from tests.conftest import Harness, save_history, start_harness
from tests.test_cli import cli
from tests.test_timers import received_now, register_row, submit
from workflows.models import ChildErasureDecision

OFFICER = "officer@group.example"
AMSTERDAM = "Europe/Amsterdam"


def legal_deadline(h: Harness, request: RightsRequest) -> Deadline:
    """The deadline of the rights the requester asked for."""
    return compute_deadline(
        DeadlineQuery(jurisdiction=request.jurisdiction, rights=request.rights,
                      received_at=request.received_at),
        load_deadline_policy(h.settings.policy_dir / "deadlines.yaml"))


async def reached(h: Harness, request_id: str, wanted: Status) -> None:
    for _ in range(600):
        if (await h.status(request_id)).status is wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{request_id} never reached {wanted}")


def child_reminder(h: Harness, request_id: str, number: int) -> EmailMessage | None:
    found = h.mail.find(header=("Message-ID", f"<child_review.{number}.{request_id}@dsr>"))
    assert len(found) <= 1, "each reminder once"
    return found[0] if found else None


def without_personal_data(mail: EmailMessage, request: RightsRequest) -> str:
    assert mail["To"] == OFFICER
    body = str(mail.get_content())
    assert request.requester.email not in body and "@" not in body
    assert all(identity.value not in body for identity in request.identities)
    return body


def decision(erase: bool) -> ChildErasureDecision:
    return ChildErasureDecision(officer="Ada", erase=erase, note="the subject is 15")


# The policy and the pure parts ---------------------------------------------------------------


def test_the_review_target_is_a_draft_and_never_after_the_deadlines_own_target() -> None:
    policy = load_child_policy()
    assert policy.age_limit.under == 18 and policy.age_limit.status is RuleStatus.CONFIRMED
    assert policy.erasure_promise.confirmed_by == "privacy-statement"
    assert policy.review_target.status is RuleStatus.DRAFT
    assert policy.review_target.source == "group internal target"
    received = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)  # 8 December in Amsterdam
    deadline = compute_deadline(DeadlineQuery(
        jurisdiction=Jurisdiction.EU, rights=[Right.ACCESS], received_at=received),
        load_deadline_policy())
    plan = review_plan(policy, deadline, AMSTERDAM, received)
    assert plan.target_on == date(2026, 12, 15) < deadline.target_on
    assert plan.target_status == "draft"
    assert [(r.at - received, r.days_left) for r in plan.reminders] == [
        (timedelta(days=d), 7 - d) for d in (0, 2, 4, 6)], "the last on the target's eve"
    longer = policy.model_copy(update={"review_target": policy.review_target.model_copy(
        update={"days": 31})})
    assert review_plan(longer, deadline, AMSTERDAM, received).target_on == deadline.target_on


def test_a_review_opened_late_still_reminds_the_officer_once() -> None:
    opened = datetime(2027, 1, 2, 9, tzinfo=UTC)
    assert [(r.at, r.days_left) for r in reminders(opened, date(2027, 1, 1), AMSTERDAM, 2)] \
        == [(opened, -1)]


def test_a_mail_subject_saying_children_is_a_child_report() -> None:
    for subject in ("Children", "RE: children's data", "Data of my child", "关于儿童的数据",
                    "未成年人信息"):
        assert is_child_report(subject), subject
    for subject in ("Childish question", "Access request", "账户数据"):
        assert not is_child_report(subject), subject


def test_the_officer_reminder_reads_in_english_and_chinese() -> None:
    context = OfficerChildReviewContext(
        request_id="R-1", target_on="2026-12-14", target_status="draft", days_left=7,
        due_on="2027-01-07", erasure="added", under_age=18)
    english = render_email(context)
    assert "target 14 December 2026 (7 days left)" in english.subject
    assert "draft target (rules unconfirmed)" in english.body
    assert "python starter.py child-review R-1 --erase --note" in english.body
    chinese = render_email(context.model_copy(update={"language": Language.ZH}))
    assert "儿童数据" in chinese.subject and "规则未经确认" in chinese.body


# The review in the workflow ------------------------------------------------------------------


async def test_a_child_report_starts_an_erasure_review_an_approver_confirms(
        harness: Harness) -> None:
    h = harness
    request = h.request(is_child=True)  # a panel login asks for access only
    other = h.request(request_id=request.request_id + "-ADULT")
    handle = await h.submit(request)
    await (await h.submit(other)).result()
    rid = request.request_id
    await reached(h, rid, Status.AWAITING_CHILD_REVIEW)

    status = await h.status(rid)
    deadline = legal_deadline(h, request)
    assert status.child is not None and status.child.erasure == "added"
    # The harness's policy is Legal's confirmed one (the shipped target is a draft: above).
    assert status.child.decision is None and status.child.target_status == "confirmed"
    assert status.child.target_on == deadline.received_on + timedelta(days=7)
    assert status.target_on == status.child.target_on, "the officers' target"
    assert status.due_at == deadline.due_at, "the legal deadline is unchanged"
    assert status.rights == ["access", "erasure"]
    assert (await h.status(other.request_id)).child is None

    first = await h.mail.wait_for(
        header=("Message-ID", f"<child_review.0.{rid}@dsr>"), timeout=20)
    body = without_personal_data(first, request)
    assert f"target {status.child.target_on.day} " in first["Subject"]
    assert "did not ask for erasure" in body

    h.log_in_cli()
    code, out, err = await cli(h, "list", "--child", "--json")
    assert code == 0, err
    listed = {row["request_id"]: row["child"] for row in json.loads(out)}
    assert listed == {rid: True}, "only the child request"
    code, out, err = await cli(h, "status", rid)
    assert code == 0 and "CHILD erasure review: awaiting an approver" in out, err

    result = await h.update(rid, "review_child_erasure", decision(erase=True))
    assert result.message.startswith("erasure confirmed")
    assert (await handle.result()).status is Status.ANSWERED
    status = await h.status(rid)
    assert status.child is not None and status.child.decision == "erase"
    assert any(key.startswith("erased ") for c in status.connectors for key in c.records)
    assert status.due_at == deadline.due_at
    assert register_row(h, rid).child and not register_row(h, other.request_id).child
    assert child_reminder(h, rid, 1) is None, "none more once reviewed"
    await save_history(handle, "child_erasure_reviewed")


async def test_an_approver_may_keep_the_data_and_the_rights_asked_go_on(
        harness: Harness) -> None:
    h = harness
    request = h.request(is_child=True)
    handle = await h.submit(request)
    rid = request.request_id
    await reached(h, rid, Status.AWAITING_CHILD_REVIEW)

    await h.update(rid, "review_child_erasure", decision(erase=False))

    assert (await handle.result()).status is Status.ANSWERED
    status = await h.status(rid)
    assert status.rights == ["access"] and status.child is not None
    assert status.child.decision == "keep"
    records = [key for c in status.connectors for key in c.records]
    assert records and not any(key.startswith("erased ") for key in records)


async def test_an_erasure_the_requester_asked_for_runs_without_the_review(
        harness: Harness) -> None:
    h = harness
    request = h.request(is_child=True, rights=["erasure"])
    handle = await h.submit(request)

    assert (await handle.result()).status is Status.ANSWERED
    status = await h.status(request.request_id)
    assert status.child is not None and status.child.erasure == "asked"
    assert status.child.decision is None
    assert status.due_at == legal_deadline(h, request).due_at
    assert child_reminder(h, request.request_id, 0) is not None, "the first day's"
    refused = await cli_refusal(h, request.request_id)
    assert "closed" in refused


async def cli_refusal(h: Harness, request_id: str) -> str:
    h.log_in_cli()
    code, _, err = await cli(h, "child-review", request_id, "--erase", "--note", "too late")
    assert code == 1
    return err


# Reminders over the days of the review -------------------------------------------------------


async def test_the_officer_is_reminded_every_other_day_until_the_target(
        time_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    async with AsyncExitStack() as stack:
        h = await start_harness(time_env, tmp_path, mail[0], mail[1], stack)
        request = await received_now(time_env, h, is_child=True)
        rid = request.request_id
        handle: WorkflowHandle[Any, Any] = await submit(stack, h, request)
        with time_env.auto_time_skipping_disabled():
            await reached(h, rid, Status.AWAITING_CHILD_REVIEW)
            status = await h.status(rid)
        assert status.child is not None
        await time_env.sleep(timedelta(days=9))
        await h.mail.wait_for(header=("Message-ID", f"<child_review.3.{rid}@dsr>"), timeout=20)

        sent = [child_reminder(h, rid, number) for number in range(5)]
        assert all(m is not None for m in sent[:4]), "days 0, 2, 4 and 6"
        assert sent[4] is None, "none after the target day"
        days_left = [int(m["Subject"].split("(")[1].split(" ")[0]) for m in sent[:4] if m]
        assert days_left[0] == 7 and days_left == sorted(days_left, reverse=True)
        assert days_left[-1] >= 1, "the last before the target day ends"
        for message in sent[:4]:
            assert message is not None
            without_personal_data(message, request)
        assert (await h.status(rid)).status is Status.AWAITING_CHILD_REVIEW

        await h.update(rid, "review_child_erasure", decision(erase=True))
        with time_env.auto_time_skipping_disabled():
            assert (await handle.result()).status is Status.ANSWERED
        assert register_row(h, rid).child


def test_the_register_keeps_only_a_marker() -> None:
    column = RequestRecord.__table__.columns["child"]
    assert str(column.type) == "BOOLEAN" and not column.nullable
