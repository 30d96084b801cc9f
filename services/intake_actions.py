"""The officer service's actions on requests as they come in: an officer enters a request that
came by email or post (``enter_request``), and relays the one-time code a requester read out
or wrote back (``relay_code``). Both need the officer role (``roles.yaml``); the request's
``received`` milestone and the ledger name the officer who signed, never a typed name."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import StringConstraints
from sqlalchemy.orm import Session
from temporalio.client import Client

from dsr import register
from dsr.assertions import Principal
from dsr.models import REQUEST_ID, RightsRequest
from services import workflow_client as officer
from services.officer_actions import Action, ActionRefused, Context, record
from workflows.models import CodeResult, CodeSubmission


class CodeRelay(CodeSubmission):
    """The code a requester received, relayed by an officer for the request it was sent for."""

    request_id: Annotated[str, StringConstraints(pattern=REQUEST_ID.pattern)]


async def enter_request(ctx: Context, principal: Principal, request: RightsRequest) -> Any:
    """Start the request's workflow, entered by ``principal``; with the earlier requests it
    may repeat (same subject, same right, within 30 days)."""
    if request.vouched_by_door:
        raise ActionRefused(
            f"a {request.channel.value} request claiming a verified requester needs the "
            "assertion of the door that verified it: it comes through that door, or enter it "
            "with the channel it came by (email or post) to verify it here", 400)
    client = _temporal(ctx)
    if await asyncio.to_thread(_registered, ctx, request.request_id):
        raise _already_submitted(request.request_id)
    try:
        handle = await officer.submit(client, ctx.settings, request, principal.principal_id)
    except officer.OfficerError:  # started a moment ago by someone else
        raise _already_submitted(request.request_id) from None
    duplicates = await asyncio.to_thread(_possible_duplicates, ctx, request)
    return {"request_id": request.request_id, "workflow_id": handle.id,
            "possible_duplicate_of": duplicates}


def _temporal(ctx: Context) -> Client:
    if ctx.client is None:
        raise ActionRefused("the officer service has no connection to Temporal", 503)
    return ctx.client


def _already_submitted(request_id: str) -> ActionRefused:
    return ActionRefused(f"request {request_id} was already submitted; see: python "
                         f"starter.py status {request_id}")


def _registered(ctx: Context, request_id: str) -> bool:
    """Known to the register: Temporal may have forgotten a request closed long ago."""
    try:
        register.get_request(ctx.engine, request_id)
    except LookupError:
        return False
    return True


def _possible_duplicates(ctx: Context, request: RightsRequest) -> list[str]:
    with Session(ctx.engine) as session:
        return register.possible_duplicates(session, ctx.settings.server_keys, request)


async def relay_code(ctx: Context, principal: Principal, relay: CodeRelay) -> Any:
    """Give the request the code; its workflow counts the attempt (and locks after too many
    wrong ones). Who relayed it, and whether it was right, goes into the ledger."""
    submission = CodeSubmission(code=relay.code)
    try:
        result = await officer.update(_temporal(ctx), relay.request_id, "submit_code",
                                      submission, CodeResult)
    except officer.OfficerError as error:
        message = str(error).removeprefix("refused: ")
        raise ActionRefused(message, 404 if message.startswith("no request") else 409) from None
    await asyncio.to_thread(record, ctx, principal, "code_relayed", relay.request_id,
                            {"accepted": result.accepted, "locked": result.locked})
    return result.model_dump(mode="json")


def _request(arguments: RightsRequest | CodeRelay) -> str:
    return officer.workflow_id(arguments.request_id)


ACTIONS: dict[str, Action] = {
    "enter_request": Action(RightsRequest, _request, enter_request),
    "relay_code": Action(CodeRelay, _request, relay_code),
}
