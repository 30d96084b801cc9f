"""A request that claims its door verified the requester (a privacy-panel login time, a
customer's API call) starts only with that door's signed assertion over the request. Without
one, from another door, over other arguments, or signed by an officer, the product's client
refuses it before starting anything, and a start sent past that client (with the payload keys)
fails at intake: nothing registered, no email, no connector asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from dsr.assertions import Role, sign_action
from dsr.models import RightsRequest
from dsr.status import Status
from services import workflow_client as officer
from tests.conftest import Harness
from tests.test_foreign_payloads import app_tables, events_of
from workflows.models import RequestInput
from workflows.request import RightsRequestWorkflow

REFUSED = "needs the assertion of the door that verified it"


async def started_past_the_client(h: Harness, start: RequestInput) -> str:
    """What a process holding the payload keys but no door's key can do."""
    handle = await h.client.start_workflow(
        RightsRequestWorkflow.run, start, id=officer.workflow_id(start.request.request_id),
        task_queue=h.settings.task_queue)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "NotVouched", cause
    history = await handle.fetch_history()
    assert not events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    return cause.message


def assert_nothing_of(h: Harness, request: RightsRequest) -> None:
    assert not [m for m in h.mail.messages() if request.request_id in str(m["Message-ID"])]
    assert request.request_id not in app_tables(h)


async def test_a_panel_login_or_an_api_call_without_its_door_starts_nothing(
        harness: Harness) -> None:
    h = harness
    panel = h.request(rights=["erasure"])
    api = h.controller_erasure(channel="api")
    for request in (panel, api):
        with pytest.raises(officer.OfficerError, match=REFUSED):
            await officer.submit(h.client, h.settings, request)
        assert not await officer.is_open(h.client, request.request_id)
        message = await started_past_the_client(h, RequestInput(request=request))
        assert REFUSED in message and "no assertion" in message
        assert_nothing_of(h, request)


async def test_another_doors_an_officers_or_a_stale_assertion_is_refused(
        harness: Harness) -> None:
    h = harness
    cases: dict[str, RequestInput] = {}
    api = h.controller_erasure(channel="api")
    cases["vouches for api, not privacy_panel"] = RequestInput(
        request=(panel := h.request(rights=["erasure"])),
        door=h.door("api").sign(officer.workflow_id(panel.request_id), "submit", panel))
    moved = h.request(rights=["erasure"])
    signed_before = h.door("privacy_panel").sign(officer.workflow_id(moved.request_id),
                                                 "submit", moved)
    assert moved.last_login_at is not None
    later_login = moved.model_copy(
        update={"last_login_at": moved.last_login_at + timedelta(minutes=1)})
    cases["made for other arguments"] = RequestInput(request=later_login, door=signed_before)
    clerk = h.officer("officer.clerk", [Role.OFFICER])
    cases["needs the role door, not 'officer'"] = RequestInput(request=api, door=sign_action(
        clerk.key, clerk.credential, namespace=clerk.namespace,
        target=officer.workflow_id(api.request_id), action="submit", arguments=api,
        role=Role.OFFICER, now=datetime.now(UTC)))
    for reason, start in cases.items():
        assert reason in await started_past_the_client(h, start), reason
        assert_nothing_of(h, start.request)


async def test_a_request_its_door_vouches_for_is_answered_without_a_code(
        harness: Harness) -> None:
    h = harness
    request = h.controller_erasure(channel="api")
    handle = await h.submit(request)  # the harness signs as the API door
    assert (await handle.result()).status is Status.ANSWERED
    status = await h.status(request.request_id)
    assert status.verification == {"controller": "customer's authenticated API call"}
