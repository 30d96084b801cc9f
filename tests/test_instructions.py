"""A recipient with no API (an approved sub-processor): instructed by email, reminded while
its confirmation is awaited, done when an officer records the confirmation."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from dsr import search_attributes as sa
from dsr.status import Status
from services.mail_server import MailFolder
from tests.conftest import Harness, save_history, start_harness
from tests.test_requests_e2e import answer_of, emailed_code, send_code, wait_for_connector
from workflows.models import ConnectorStatus, InstructionConfirmation

ACME = "privacy@acme-analytics.example"


def acme_entry(remind_after_hours: int = 168) -> dict[str, Any]:
    return {"name": "acme_analytics", "affiliate": "sub-processor",
            "products": ["Acme Analytics"], "role": "end_user", "identity_types": ["phone"],
            "operations": ["erase", "restrict"],
            "instruct_by_email": {"email": ACME, "remind_after_hours": remind_after_hours}}


async def instructed_erasure(h: Harness) -> Any:
    request = h.controller_erasure()
    handle = await h.submit(request)
    await send_code(h, request.request_id, await emailed_code(h, request.request_id))
    await wait_for_connector(h, request.request_id, ConnectorStatus.AWAITING_CONFIRMATION,
                             "acme_analytics")
    return request, handle


async def test_a_recipient_is_instructed_by_email_and_confirmed_by_an_officer(
        dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    async with AsyncExitStack() as stack:
        h = await start_harness(dev_env, tmp_path, mail[0], mail[1], stack,
                                extra_connectors=[acme_entry()])
        request, handle = await instructed_erasure(h)
        instruction = await h.mail.wait_for(
            header=("Message-ID", f"<instruction.acme_analytics.{request.request_id}@dsr>"),
            timeout=10)
        assert instruction["To"] == ACME
        assert h.facts.end_user_phone in instruction.get_content()
        assert h.facts.controller_account_id in instruction.get_content()
        status = await h.status(request.request_id)
        assert status.status is Status.AWAITING_OFFICER
        attention = (await handle.describe()).typed_search_attributes.get(
            sa.CONNECTORS_ATTENTION)
        assert attention == ["acme_analytics"]

        await h.update(request.request_id, "confirm_instruction",
                             InstructionConfirmation(officer="Ada", connector="acme_analytics",
                                                     note="Acme confirmed erasure on 2 Dec"))
        outcome = await handle.result()

    assert outcome.status is Status.ANSWERED
    states = {c.connector: c for c in outcome.connectors}
    assert states["acme_analytics"].status is ConnectorStatus.CONFIRMED
    assert states["sms"].status is ConnectorStatus.DONE
    assert "instructed by email, and they confirmed it was done" in answer_of(
        h, request.request_id)
    await save_history(handle, "recipient_instructed_and_confirmed")


async def test_the_officer_is_reminded_while_a_confirmation_is_awaited(
        time_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    async with AsyncExitStack() as stack:
        h = await start_harness(time_env, tmp_path, mail[0], mail[1], stack,
                                extra_connectors=[acme_entry(remind_after_hours=48)])
        request, handle = await instructed_erasure(h)
        reminder = f"<instruction_reminder.acme_analytics.1.{request.request_id}@dsr>"
        assert not h.mail.find(header=("Message-ID", reminder))
        await time_env.sleep(timedelta(hours=49))
        sent = await h.mail.wait_for(header=("Message-ID", reminder), timeout=10)
        assert sent["To"] == "officer@group.example"
        assert "confirm-instruction" in sent.get_content()
        assert h.facts.end_user_phone not in sent.get_content()
        await h.update(request.request_id, "confirm_instruction",
                             InstructionConfirmation(officer="Ada", connector="acme_analytics",
                                                     note="confirmed after the reminder"))
        assert (await handle.result()).status is Status.ANSWERED
