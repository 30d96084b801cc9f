"""End to end on the Temporal dev server, with the SMTP server and SQLite stores: the paths
an officer and a requester walk through."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import zipfile
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment

from connectors.sms import Message
from dsr import register
from dsr.assertions import Role
from dsr.register import ConfirmationRecord, MilestoneRecord, RequestRecord
from dsr.sealedblobs import sealed_blob_store
from dsr.status import Status
from services import download_server as downloadserver
from services import workflow_client as officer
from services.mail_server import MailFolder
from tests import outage_connector
from tests.conftest import Harness, save_history, start_harness
from tests.test_cli import cli
from workflows.models import (
    CodeResult,
    CodeSubmission,
    ConnectorDecision,
    ConnectorResolution,
    ConnectorStatus,
    Denial,
    Extension,
    OfficerAction,
    OfficerNote,
    RequestOutcome,
)

CODE = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)


async def emailed_code(h: Harness, request_id: str, round_: int = 1) -> str:
    mail = await h.mail.wait_for(
        header=("Message-ID", f"<code.{round_}.controller.{request_id}@dsr>"), timeout=30)
    assert mail["To"] == h.facts.controller_registered_email
    match = CODE.search(mail.get_content())
    assert match is not None
    return match.group(1)


async def send_code(h: Harness, request_id: str, code: str) -> CodeResult:
    return await officer.update(h.client, request_id, "submit_code", CodeSubmission(code=code),
                                CodeResult)


def answer_of(h: Harness, request_id: str, kind: str = "answer") -> str:
    message = h.mail.find(header=("Message-ID", f"<{kind}.{request_id}@dsr>"))
    assert len(message) == 1, f"expected one {kind} email"
    return str(message[0].get_content())


def sms_rows(h: Harness, customer: str) -> list[Message]:
    engine = h.settings.connector_database_url("sms")
    from connectors.kit.store import create_store_engine

    with Session(create_store_engine(engine)) as session:
        return list(session.scalars(select(Message).where(Message.customer_account == customer)))


async def download(h: Harness, link: str) -> bytes:
    """The package as the requester gets it: the landing page, then its button's POST."""
    path = urlsplit(link).path
    app = downloadserver.make_app(h.settings, h.engine, sealed_blob_store(h.settings))
    server = TestServer(app)
    async with TestClient(server) as client:
        page = await client.get(path)
        assert page.status == 200 and f'action="{path}/download"' in await page.text()
        response = await client.post(f"{path}/download")
        assert response.status == 200
        return await response.read()


async def test_account_holder_gets_access_package_through_privacy_panel(harness: Harness) -> None:
    h = harness
    request = h.request()
    handle = await h.submit(request)
    outcome: RequestOutcome = await handle.result()

    assert outcome.status is Status.ANSWERED
    status = await h.status(request.request_id)
    done = [s.name for s in status.steps if s.status.value == "done"]
    assert done[:5] == ["intake", "deadline", "acknowledge", "verify", "discover"]
    assert {"execute", "package", "answer", "proof"} <= set(done)
    assert status.verification == {"identity-1": "privacy-panel login"}
    answer = answer_of(h, request.request_id)
    assert "Autoriteit Persoonsgegevens" in answer
    link = re.search(r"^\s+(http://\S+/packages/\S+)$", answer, re.MULTILINE)
    assert link and link[1].startswith(h.settings.public_base_url)
    # At rest the package is ciphertext, and the exports it was made from are gone.
    raw = (h.settings.blob_dir / "packages" / f"{request.request_id}.zip").read_bytes()
    assert not zipfile.is_zipfile(io.BytesIO(raw))
    exports = h.settings.blob_dir / "exports" / request.request_id
    assert not any(path.is_file() for path in exports.rglob("*"))
    with zipfile.ZipFile(io.BytesIO(await download(h, link[1]))) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        exported = json.loads(archive.read("customer_account.json"))
        assert "customer_account/invoices.csv" in archive.namelist()
    counts = manifest["products"][0]["records"]
    assert len(exported) == sum(counts.values()) > 0
    assert {r["category"] for r in exported} == set(counts)
    assert not h.mail.find(subject_contains="verification code")
    await save_history(handle, "access_panel_verified")


async def test_controller_erasure_keeps_recent_sms_and_other_customers(harness: Harness) -> None:
    h = harness
    facts = h.facts
    others_before = {c: [(m.id, m.content) for m in sms_rows(h, c)]
                     for c in facts.end_user_other_customers}
    request = h.controller_erasure()
    handle = await h.submit(request)

    result = await send_code(h, request.request_id, await emailed_code(h, request.request_id))
    assert result.accepted and result.remaining_targets == 0
    assert (await handle.result()).status is Status.ANSWERED

    mine = [m for m in sms_rows(h, facts.controller_account_id)
            if m.end_user_phone == facts.end_user_phone]
    assert len(mine) == facts.end_user_messages_newer, "only the recent messages stay readable"
    assert all(m.sent_at >= facts.six_months_before for m in mine)
    anonymised = [m for m in sms_rows(h, facts.controller_account_id) if m.anonymised_at]
    assert len(anonymised) == facts.end_user_messages_older
    assert all(m.content is None and m.end_user_phone != facts.end_user_phone
               for m in anonymised)
    for customer, rows in others_before.items():
        assert [(m.id, m.content) for m in sms_rows(h, customer)] == rows
    answer = answer_of(h, request.request_id)
    assert "What we kept, and why" in answer and "kept until" in answer
    assert "privacy statement 7.1" in answer
    await save_history(handle, "controller_erasure_code_verified")


async def test_five_wrong_codes_lock_until_the_officer_issues_a_new_code(
        harness: Harness) -> None:
    h = harness
    request = h.controller_erasure()
    handle = await h.submit(request)
    right = await emailed_code(h, request.request_id)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    results = [await send_code(h, request.request_id, wrong) for _ in range(5)]
    assert [r.attempts_left for r in results] == [4, 3, 2, 1, 0]
    assert results[-1].locked
    with pytest.raises(officer.OfficerError, match="locked"):
        await send_code(h, request.request_id, right)
    officer_mail = await h.mail.wait_for(
        header=("Message-ID", f"<locked.1.{request.request_id}@dsr>"), timeout=10)
    assert officer_mail["To"] == "officer@group.example"
    assert "@" not in officer_mail.get_content().replace("officer@group.example", "")

    await h.update(request.request_id, "new_code", OfficerAction(officer="Ada"))
    stale = await send_code(h, request.request_id, right)
    assert not stale.accepted, "round 1's code no longer counts"
    new = await emailed_code(h, request.request_id, round_=2)
    assert (await send_code(h, request.request_id, new)).accepted
    assert (await handle.result()).status is Status.ANSWERED
    await save_history(handle, "verification_locked_then_new_code")


async def test_extension_beyond_the_limit_is_refused_and_a_valid_one_notifies(
        harness: Harness) -> None:
    h = harness
    request = h.controller_erasure()
    handle = await h.submit(request)
    code = await emailed_code(h, request.request_id)  # sent once the deadline is set
    status = await h.status(request.request_id)
    assert status.due_at is not None
    received = request.received_at.date()

    from datetime import date

    def months_later(n: int) -> date:
        month = received.month - 1 + n
        return received.replace(year=received.year + month // 12, month=month % 12 + 1, day=1)

    # Safely past the limit on any day: the limit is counted from the local receipt date, and
    # rolls past a weekend (from 23:00 UTC on Nov 29 it is Monday 1 February 2027).
    with pytest.raises(officer.OfficerError, match="beyond the limit"):
        await h.update(request.request_id, "extend",
                             Extension(officer="Ada", reason="many requests at once",
                                       until=months_later(4)))
    with pytest.raises(officer.OfficerError, match="not after the current due date"):
        await h.update(request.request_id, "extend",
                             Extension(officer="Ada", reason="complex", until=received))
    result = await h.update(request.request_id, "extend",
                                  Extension(officer="Ada", reason="complex request"))
    assert result.due_at is not None and result.due_at > status.due_at
    notice = await h.mail.wait_for(
        header=("Message-ID", f"<extension.{request.request_id}@dsr>"), timeout=10)
    assert notice["To"] == h.facts.controller_registered_email
    assert "complex request" in notice.get_content()
    with pytest.raises(officer.OfficerError, match="already been extended"):
        await h.update(request.request_id, "extend",
                             Extension(officer="Ada", reason="again"))
    await send_code(h, request.request_id, code)
    await handle.result()
    record = h.engine
    with Session(record) as session:
        row = session.get(RequestRecord, request.request_id)
        assert row is not None and row.extended and row.due_at == result.due_at
    await save_history(handle, "extended")


async def test_denial_tells_the_reasons_and_where_to_complain(
        harness: Harness, tmp_path: Path) -> None:
    h = harness
    request = h.controller_erasure()
    handle = await h.submit(request)
    await emailed_code(h, request.request_id)
    await h.update(request.request_id, "deny",
                         Denial(officer="Ada", reason="the fifth identical request this month",
                                manifestly_unfounded=True))
    assert (await handle.result()).status is Status.DENIED
    denial = answer_of(h, request.request_id, "denial")
    assert "the fifth identical request this month" in denial
    assert "Autoriteit Persoonsgegevens" in denial and "judicial remedy" in denial
    assert len(sms_rows(h, h.facts.controller_account_id)) > 0
    with Session(h.engine) as session:
        assert session.get(RequestRecord, request.request_id).status == "denied"  # type: ignore[union-attr]
        proof = session.get(ConfirmationRecord, request.request_id)
        assert proof is not None
        assert h.facts.controller_registered_email.encode() not in proof.message, "sealed"
        assert b"fifth identical request" not in proof.message
    h.log_in_cli()
    code, _, err = await cli(h, "proof", request.request_id, "--out", str(tmp_path / "p.eml"))
    assert code == 0, err
    kept = (tmp_path / "p.eml").read_text()
    assert "the fifth identical request this month" in kept
    assert f"<denial.{request.request_id}@dsr>" in kept
    await save_history(handle, "denied")


async def test_an_officers_note_is_sealed_in_the_register_and_hashed_in_the_ledger(
        harness: Harness) -> None:
    h = harness
    email = h.facts.controller_registered_email
    reason = f"asked twice: {email} called to say the first stands"
    request = h.controller_erasure()
    rid = request.request_id
    handle = await h.submit(request)
    await emailed_code(h, rid)
    await h.update(rid, "deny", Denial(officer="Ada", reason=reason))
    assert (await handle.result()).status is Status.DENIED
    with sqlite3.connect(h.settings.data_dir / "dsr.db") as db:
        stored = repr([db.execute(f"SELECT * FROM {table}").fetchall()
                       for table in ("milestones", "ledger")]).lower()
    assert rid.lower() in stored
    for private in (reason, email, "asked twice", "the first stands"):
        assert private.lower() not in stored
    h.log_in_cli("audit.kim", (Role.AUDITOR,))
    code, out, err = await cli(h, "ledger", "verify")
    assert code == 0 and "ledger intact" in out, (out, err)

    # A request Temporal no longer knows (its retention passed): the CLI reads the register,
    # where the real request's sealed note, moved into this one's row, does not open.
    forgotten = h.controller_erasure().request_id
    note = f"withdrawn by {email} on the phone"
    _register_only(h, forgotten, note)
    with sqlite3.connect(h.settings.data_dir / "dsr.db") as db:
        db.execute("UPDATE milestones SET detail = (SELECT detail FROM milestones "
                   "WHERE request_id = ? AND key = 'denied') "
                   "WHERE request_id = ? AND key = 'deadline'", (rid, forgotten))
    code, out, err = await cli(h, "status", forgotten, "--json")
    assert code == 0, err
    shown = {m["step"]: m["detail"] for m in json.loads(out)["milestones"]}
    assert shown == {"cancel": {"reason": note},
                     "deadline": {"reason": "(note unreadable)", "manifestly_unfounded": False}}
    code, out, err = await cli(h, "status", forgotten)
    assert code == 0, err
    assert "(from the register)" in out and note in out and "(note unreadable)" in out


def _register_only(h: Harness, request_id: str, note: str) -> None:
    """A request closed long ago: in the register, no longer in Temporal."""
    keys = register.RegisterKeys.from_secret(h.settings.secret)
    received = datetime.now(UTC) - timedelta(days=400)
    register.record_intake(h.engine, h.controller_erasure(
        request_id=request_id, received_at=received.isoformat()), h.settings.server_keys,
        received)
    for minutes, (key, step, detail) in enumerate(
            [("deadline", "deadline", {}), ("cancelled", "cancel", {"reason": note})]):
        register.record_milestone(h.engine, register.Milestone(
            request_id=request_id, key=key, step=step, actor="Ada", detail=detail,
            at=received + timedelta(minutes=minutes), closed=step == "cancel"), keys)


async def _outage_harness(env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder],
                          stack: AsyncExitStack) -> Harness:
    entry = outage_connector.registry_entry(tmp_path.name[-8:])
    return await start_harness(
        env, tmp_path, mail[0], mail[1], stack, extra_connectors=[entry],
        connector_max_attempts=2,
        extra_workers=[outage_connector.outage_worker(entry["task_queue"])])


async def wait_for_connector(h: Harness, request_id: str, status: ConnectorStatus,
                             connector: str = "outage") -> None:
    import asyncio

    for _ in range(200):
        state = await h.status(request_id)
        if any(c.connector == connector and c.status is status for c in state.connectors):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{connector} connector never reached {status}")


async def test_cancel_after_partial_execution_reports_what_was_done(
        dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    async with AsyncExitStack() as stack:
        h = await _outage_harness(dev_env, tmp_path, mail, stack)
        request = h.controller_erasure()
        handle = await h.submit(request)
        await send_code(h, request.request_id, await emailed_code(h, request.request_id))
        await wait_for_connector(h, request.request_id, ConnectorStatus.FAILED)

        status = await h.status(request.request_id)
        assert status.status is Status.AWAITING_OFFICER
        sms = next(c for c in status.connectors if c.connector == "sms")
        assert sms.status is ConnectorStatus.DONE, "the failing connector holds up no other"
        assert status.connectors[-1].error == "erase failed: ConnectionError"
        described = await handle.describe()
        assert described.typed_search_attributes.get(
            __import__("dsr.search_attributes").search_attributes.CONNECTORS_ATTENTION
        ) == ["outage"]
        await h.mail.wait_for(
            header=("Message-ID", f"<officer_connector_failed.outage.{request.request_id}@dsr>"),
            timeout=10)

        await h.update(request.request_id, "cancel",
                             OfficerNote(officer="Ada", note="requester withdrew the request"))
        assert (await handle.result()).status is Status.CANCELLED
        cancelled = answer_of(h, request.request_id, "cancelled")
        assert "requester withdrew the request" in cancelled
        assert "- SMS: erased" in cancelled and "- Voice: could not be completed" in cancelled
        await save_history(handle, "cancelled_after_partial_execution")


async def test_officer_records_a_failing_connector_as_done_by_hand(
        dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    async with AsyncExitStack() as stack:
        h = await _outage_harness(dev_env, tmp_path, mail, stack)
        request = h.controller_erasure()
        handle = await h.submit(request)
        await send_code(h, request.request_id, await emailed_code(h, request.request_id))
        await wait_for_connector(h, request.request_id, ConnectorStatus.FAILED)
        with pytest.raises(officer.OfficerError, match="failing connectors: outage"):
            await h.update(request.request_id, "resolve_connector",
                                 ConnectorDecision(officer="Ada", connector="sms",
                                                   resolution=ConnectorResolution.SKIPPED,
                                                   reason="not failing"))
        await h.update(request.request_id, "resolve_connector",
                             ConnectorDecision(officer="Ada", connector="outage",
                                               resolution=ConnectorResolution.DONE_BY_HAND,
                                               reason="deleted in the affiliate's console"))
        outcome = await handle.result()
        assert outcome.status is Status.ANSWERED
        states = {c.connector: c.status for c in outcome.connectors}
        assert states.pop("outage") is ConnectorStatus.DONE_BY_HAND
        assert set(states.values()) == {ConnectorStatus.DONE}, "the others went on"
        assert "- Voice: handled by our privacy team" in answer_of(h, request.request_id)
        with Session(h.engine) as session:
            actors = session.scalars(select(MilestoneRecord.actor).where(
                MilestoneRecord.request_id == request.request_id)).all()
            assert "officer.ada" in actors  # who signed
        await save_history(handle, "connector_done_by_hand")


async def test_register_answers_after_the_workflow_is_gone(harness: Harness) -> None:
    h = harness
    request = h.request()
    await (await h.submit(request)).result()
    with Session(h.engine) as session:
        row = session.get(RequestRecord, request.request_id)
        assert row is not None and row.status == "answered" and row.closed_at is not None
        assert request.identities[0].value not in json.dumps(row.subject_hashes)
        steps = session.scalar(select(func.count()).select_from(MilestoneRecord).where(
            MilestoneRecord.request_id == request.request_id))
        assert steps and steps >= 5


async def test_answer_in_the_language_of_the_request(harness: Harness) -> None:
    h = harness
    request = h.request(language="zh")
    await (await h.submit(request)).result()
    acknowledgement = h.mail.find(
        header=("Message-ID", f"<acknowledgement.{request.request_id}@dsr>"))[0]
    assert "我们已收到您的数据主体请求" in str(acknowledgement["Subject"])
    answer = answer_of(h, request.request_id)
    assert "您" in answer and "荷兰" in answer


async def test_california_opt_out_needs_no_verification_and_is_confirmed(
        harness: Harness) -> None:
    h = harness
    request = h.request(
        rights=["opt_out_sale_sharing"], jurisdiction="US-CA", channel="email",
        identities=[{"type": "email", "value": h.facts.account_holder_email}],
        last_login_at=None)
    outcome = await (await h.submit(request)).result()
    assert outcome.status is Status.ANSWERED
    assert not h.mail.find(subject_contains="verification code")
    status = await h.status(request.request_id)
    assert status.verification == {}
    assert {c.status for c in status.connectors} == {ConnectorStatus.DONE}
    answer = answer_of(h, request.request_id)
    assert "We do not sell or share personal data" in answer
    assert "could not be completed" not in answer
    await save_history(h.client.get_workflow_handle(f"dsr-{request.request_id}"),
                       "california_opt_out")


async def test_a_connector_worker_absent_past_its_timeout_is_missing_until_it_returns(
        dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    from temporalio.worker import Worker

    from connectors.kit.activities import connector_activities
    from dsr import search_attributes as sa

    entry = outage_connector.standby_entry(tmp_path.name[-8:])
    async with AsyncExitStack() as stack:
        h = await start_harness(dev_env, tmp_path, mail[0], mail[1], stack,
                                extra_connectors=[entry], connector_start_timeout_seconds=1,
                                connector_missing_retry_seconds=1)
        request = h.controller_erasure()
        handle = await h.submit(request)
        await send_code(h, request.request_id, await emailed_code(h, request.request_id))
        await wait_for_connector(h, request.request_id, ConnectorStatus.MISSING, "standby")

        status = await h.status(request.request_id)
        assert status.status is Status.AWAITING_OFFICER
        assert (await handle.describe()).typed_search_attributes.get(
            sa.CONNECTORS_ATTENTION) == ["standby"]
        await h.mail.wait_for(
            header=("Message-ID", f"<officer_connector_failed.standby.{request.request_id}@dsr>"),
            timeout=10)

        await stack.enter_async_context(Worker(
            h.client, task_queue=entry["task_queue"],
            activities=connector_activities(outage_connector.StandbyConnector())))
        outcome = await handle.result()
        assert outcome.status is Status.ANSWERED
        states = {c.connector: c.status for c in outcome.connectors}
        assert states["standby"] is states["sms"] is ConnectorStatus.DONE
        assert set(states.values()) == {ConnectorStatus.DONE}
        assert not (await handle.describe()).typed_search_attributes.get(
            sa.CONNECTORS_ATTENTION)
        assert len(h.mail.find(subject_contains="connector")) <= 1, "the officer is told once"
        await save_history(handle, "connector_missing_then_back")


async def test_an_end_users_direct_request_is_referred_to_the_controlling_customers(
        harness: Harness) -> None:
    h = harness
    facts = h.facts
    holders = sorted([facts.controller_account_id, *facts.end_user_other_customers])
    before = {c: [(m.id, m.content) for m in sms_rows(h, c)] for c in holders}
    request = h.request(
        rights=["erasure"], channel="email", last_login_at=None,
        identities=[{"type": "phone", "value": facts.end_user_phone}],
        requester={"kind": "subject", "email": "maya.subject@example.org"})
    handle = await h.submit(request)
    await wait_for_status(h, request.request_id, Status.AWAITING_VERIFICATION)
    await h.update(request.request_id, "mark_verified",
                         OfficerNote(officer="Ada", note="called back on the number"))
    # Calling back the number proves the phone, not the typed email: the officer confirms it.
    await wait_for_status(h, request.request_id, Status.AWAITING_RECIPIENT)
    await h.update(request.request_id, "confirm_recipient",
                         OfficerNote(officer="Ada", note="the caller confirmed the address"))
    assert (await handle.result()).status is Status.ANSWERED

    for customer in holders:
        referral = await h.mail.wait_for(
            header=("Message-ID", f"<referral.{customer}.{request.request_id}@dsr>"), timeout=10)
        assert customer in referral.get_content()
        assert facts.end_user_phone in referral.get_content(), "the controller must act on it"
    assert {c: [(m.id, m.content) for m in sms_rows(h, c)] for c in holders} == before
    answer = answer_of(h, request.request_id)
    assert "passed your request" in answer
    with Session(h.engine) as session:
        detail = session.scalar(select(MilestoneRecord.detail).where(
            MilestoneRecord.request_id == request.request_id, MilestoneRecord.step == "refer"))
    assert detail == {"customers": holders}
    await save_history(handle, "referred_to_controllers")


async def wait_for_status(h: Harness, request_id: str, status: Status) -> None:
    import asyncio

    for _ in range(100):
        if (await h.status(request_id)).status is status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{request_id} never reached {status}")
