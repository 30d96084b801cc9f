"""The answer goes only to a verified recipient (dsr.recipients), end to end on the dev
server: an address nobody verified waits for an officer, who confirms it with the CLI; a
verified email, a customer's registered contact and an account's registered contact get the
answer without waiting."""

from __future__ import annotations

import re
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsr.register import MilestoneRecord
from dsr.status import Status
from tests.conftest import Harness, save_history
from tests.test_cli import cli
from tests.test_requests_e2e import send_code, wait_for_status
from workflows.models import OfficerNote, StepStatus

ATTACKER = "attacker@evil.example"
CODE = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)


def mail_of(h: Harness, kind: str, request_id: str) -> list[EmailMessage]:
    return h.mail.find(header=("Message-ID", f"<{kind}.{request_id}@dsr>"))


def milestones(h: Harness, request_id: str) -> dict[str, str]:
    with Session(h.engine) as session:
        rows = session.execute(select(MilestoneRecord.key, MilestoneRecord.actor).where(
            MilestoneRecord.request_id == request_id)).all()
    return {key: actor for key, actor in rows}


async def test_an_address_nobody_verified_gets_no_answer_until_an_officer_confirms_it(
        harness: Harness) -> None:
    """The attack: the victim's email as the identity, the attacker's as the requester's;
    the victim's identity verified by hand by an officer."""
    h = harness
    victim = h.facts.account_holder_email
    request = h.request(channel="email", last_login_at=None,
                        identities=[{"type": "email", "value": victim}],
                        requester={"kind": "subject", "email": ATTACKER})
    rid = request.request_id
    handle = await h.submit(request)
    await wait_for_status(h, rid, Status.AWAITING_VERIFICATION)
    await h.update(rid, "mark_verified",
                         OfficerNote(officer="Ada", note="identity document checked"))

    await wait_for_status(h, rid, Status.AWAITING_RECIPIENT)
    notice = await h.mail.wait_for(
        header=("Message-ID", f"<officer_confirm_recipient.{rid}@dsr>"), timeout=10)
    assert notice["To"] == h.settings.officer_address
    assert "@" not in notice.get_content(), "the officer's notice names no address"
    status = await h.status(rid)
    answer_step = next(s for s in status.steps if s.name == "answer")
    assert answer_step.status is StepStatus.RUNNING
    assert answer_step.detail and "confirm-recipient" in answer_step.detail
    assert not mail_of(h, "answer", rid), "no answer sent"
    assert [m["Message-ID"] for m in h.mail.find(to=ATTACKER)] == [
        f"<acknowledgement.{rid}@dsr>"], "only the acknowledgement, which discloses nothing"
    h.log_in_cli()
    code, out, err = await cli(h, "status", rid)
    assert code == 0, err
    assert "awaiting_recipient" in out and "starter.py confirm-recipient" in out
    assert ATTACKER not in out and victim not in out

    code, out, err = await cli(h, "confirm-recipient", rid, "--note",
                               "called the requester back: the address is theirs")
    assert code == 0, err
    assert out.strip() == f"{rid}: the requester's address is confirmed; the answer is being sent"
    assert (await handle.result()).status is Status.ANSWERED
    [answer] = mail_of(h, "answer", rid)
    assert answer["To"] == ATTACKER, "where the officer confirmed"
    assert milestones(h, rid)["recipient-confirmed"] == "officer.ada"  # who signed
    steps = {s.name: s for s in (await h.status(rid)).steps}
    assert steps["answer"].detail == (
        f"<answer.{rid}@dsr> to the requester's email, confirmed by an officer")
    await save_history(handle, "recipient_confirmed_by_officer")


async def test_a_requester_whose_email_is_verified_by_code_gets_the_answer_at_once(
        harness: Harness) -> None:
    h = harness
    address = h.facts.account_holder_email
    request = h.request(channel="email", last_login_at=None,
                        identities=[{"type": "email", "value": address}],
                        requester={"kind": "subject", "email": address.upper()})
    rid = request.request_id
    handle = await h.submit(request)
    mail = await h.mail.wait_for(header=("Message-ID", f"<code.1.identity-1.{rid}@dsr>"),
                                 timeout=30)
    assert mail["To"] == address
    found = CODE.search(mail.get_content())
    assert found is not None
    assert (await send_code(h, rid, found.group(1))).accepted

    assert (await handle.result()).status is Status.ANSWERED
    [answer] = mail_of(h, "answer", rid)
    assert answer["To"] == address.upper()
    assert not mail_of(h, "officer_confirm_recipient", rid)
    assert "awaiting-recipient" not in milestones(h, rid)


async def test_a_controllers_api_request_is_answered_at_its_registered_address(
        harness: Harness) -> None:
    h = harness
    typed = "privacy-desk@customer.example"
    request = h.controller_erasure(channel="api", requester={
        "kind": "controller", "email": typed, "customer_account": h.facts.controller_account_id})
    rid = request.request_id
    handle = await h.submit(request)

    assert (await handle.result()).status is Status.ANSWERED
    [answer] = mail_of(h, "answer", rid)
    assert answer["To"] == h.facts.controller_registered_email != typed
    assert [m["To"] for m in mail_of(h, "acknowledgement", rid)] == [typed]
    steps = {s.name: s for s in (await h.status(rid)).steps}
    assert steps["answer"].detail == f"<answer.{rid}@dsr> to the customer's registered contact"


async def test_an_account_holders_answer_goes_to_the_accounts_registered_contact(
        harness: Harness) -> None:
    h = harness
    request = h.request(requester={"kind": "subject", "email": "someone.else@example.org"})
    rid = request.request_id
    assert (await (await h.submit(request)).result()).status is Status.ANSWERED
    [answer] = mail_of(h, "answer", rid)
    assert answer["To"] == h.facts.account_holder_email
