"""What the officer's CLI does against Temporal: start requests, send Updates, ask status.

Errors are ``OfficerError`` with a message an officer can act on; none quotes personal data.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from dsr import search_attributes as sa
from dsr.credentials import CredentialError, Signer
from dsr.models import RightsRequest
from dsr.settings import Settings
from workflows.deferred import WORKFLOW_NAME as DEFERRED_WORKFLOW
from workflows.deferred import DeferredErasureWorkflow, Recheck
from workflows.models import OfficerPayload, RequestInput, RequestOutcome, RequestStatus
from workflows.request import RightsRequestWorkflow

Result = TypeVar("Result", bound=BaseModel)
Payload = TypeVar("Payload", bound=OfficerPayload)


class OfficerError(Exception):
    """A refusal or failure the officer can act on."""


def workflow_id(request_id: str) -> str:
    return f"dsr-{request_id}"


def describe_errors(error: ValidationError, what: str = "the request") -> str:
    """One line per bad field, naming the field and the rule, never the value given (nor a
    key that is not a field name: a key can be personal data too)."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        parts = [str(part) if isinstance(part, int) or _FIELD_NAME.fullmatch(str(part))
                 else "(unknown field)" for part in problem["loc"]]
        field = ".".join(parts) or what.removeprefix("the ")
        lines.append(f"  {field}: {problem['msg']}")
    return f"{what} is invalid:\n" + "\n".join(lines)


_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")


def _initial_search_attributes(request: RightsRequest) -> TypedSearchAttributes:
    return TypedSearchAttributes([
        SearchAttributePair(sa.STATUS, "received"),
        SearchAttributePair(sa.JURISDICTION, request.jurisdiction.value),
        SearchAttributePair(sa.CHANNEL, request.channel.value),
        SearchAttributePair(sa.REQUESTER, request.requester.kind.value),
        SearchAttributePair(sa.RIGHTS, [right.value for right in request.rights]),
        SearchAttributePair(sa.RECEIVED_AT, request.received_at),
        SearchAttributePair(sa.OVERDUE, False),
    ])


async def submit(
    client: Client, settings: Settings, request: RightsRequest, submitted_by: str | None = None,
    door: Signer | None = None, now: datetime | None = None,
) -> WorkflowHandle[Any, RequestOutcome]:
    """Start the request's workflow; ``submitted_by`` is the officer entering it (by default
    the configured officer). A request its door says it verified (a panel login, an API call)
    is signed by ``door``, and refused here without it: the workflow would refuse it too."""
    start = RequestInput(request=request, submitted_by=submitted_by or settings.officer_name)
    if request.vouched_by_door:
        if door is None:
            raise OfficerError(
                f"a {request.channel.value} request claiming a verified requester needs the "
                "assertion of the door that verified it: it comes through that door, or "
                "enter it with the channel it came by (email or post) to verify it here")
        start.door = door.sign(workflow_id(request.request_id), "submit", request, now)
    try:
        return await client.start_workflow(
            RightsRequestWorkflow.run,
            start,
            id=workflow_id(request.request_id),
            # A request id is for good: an answered, denied or cancelled request submitted
            # again must not run again (erase again, email the requester again).
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            task_queue=settings.task_queue,
            search_attributes=_initial_search_attributes(request),
            static_summary=f"{', '.join(r.value for r in request.rights)} "
                           f"({request.jurisdiction.value})",
        )
    except WorkflowAlreadyStartedError:
        raise OfficerError(
            f"request {request.request_id} was already submitted; "
            f"see: python starter.py status {request.request_id}") from None


async def update(client: Client, request_id: str, name: str, payload: BaseModel,
                 result_type: type[Result], signer: Signer | None = None) -> Result:
    """Send an Update; an officer's payload not yet signed is signed by ``signer`` (an
    officer's Update without an assertion is refused by every request begun since
    ``officer-assertions``)."""
    if signer is not None and isinstance(payload, OfficerPayload) and payload.assertion is None:
        payload = signed(signer, request_id, name, payload)
    handle = client.get_workflow_handle(workflow_id(request_id))
    try:
        return await handle.execute_update(name, payload, result_type=result_type)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        message = getattr(cause, "message", None) or str(cause)
        raise OfficerError(f"refused: {message}") from None
    except RPCError as error:
        raise _rpc_error(request_id, error) from None


def signed(signer: Signer, request_id: str, name: str, payload: Payload,
           now: datetime | None = None) -> Payload:
    """``payload`` as ``signer`` takes the action ``name`` on the request (``now``: the time
    of signing, by default this machine's)."""
    try:
        # The name requests begun before assertions record; later ones record the signer.
        payload = payload.model_copy(
            update={"officer": payload.officer or signer.officer_id, "assertion": None})
        assertion = signer.sign(workflow_id(request_id), name, payload, now)
    except CredentialError as error:
        raise OfficerError(str(error)) from None
    return payload.model_copy(update={"assertion": assertion})


async def status(client: Client, request_id: str) -> RequestStatus:
    handle = client.get_workflow_handle(workflow_id(request_id))
    try:
        return await handle.query("status", result_type=RequestStatus)
    except RPCError as error:
        raise _rpc_error(request_id, error) from None


async def is_open(client: Client, request_id: str) -> bool:
    handle = client.get_workflow_handle(workflow_id(request_id))
    try:
        description = await handle.describe()
    except RPCError:
        return False
    return description.status is WorkflowExecutionStatus.RUNNING


def _rpc_error(request_id: str, error: RPCError) -> OfficerError:
    # Temporal answers NOT_FOUND for an Update to a closed workflow too.
    if "already completed" in error.message:
        return OfficerError(f"request {request_id} is closed; see its status")
    if error.status is RPCStatusCode.NOT_FOUND:
        return OfficerError(f"no request {request_id} is known to Temporal")
    return OfficerError(f"Temporal refused the call for {request_id}: {error.message}")


async def recheck_deferred(client: Client) -> int:
    """Ask every waiting deferred erasure to look again now (a hold was released): what only
    that hold was keeping is erased. Returns how many were asked."""
    query = f"WorkflowType = '{DEFERRED_WORKFLOW}' AND ExecutionStatus = 'Running'"
    asked = 0
    async for execution in client.list_workflows(query):
        await client.get_workflow_handle(execution.id).signal(
            DeferredErasureWorkflow.recheck, Recheck())
        asked += 1
    return asked
