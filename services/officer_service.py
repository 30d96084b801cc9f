"""The officer service: where an officer's CLI sends its actions, so that it holds no secret.

It holds what the CLI used to (the payload keys, the server secret, the database) and acts
only on an officer's signed assertion, checked here first (``dsr.authorization``: the product's
authority, a role the action allows, an officer still registered, a nonce not yet spent):

* ``POST /v1/login``: a login signed with the officer's registered key; answers a credential;
* ``POST /v1/requests/{request_id}/{update}``: an officer's Update on a request, its payload
  signed; forwarded as it is, and checked again by the request's workflow;
* ``POST /v1/actions/{action}``: entering a request and relaying its code
  (``services.intake_actions``); the directory, legal holds, reading a request's status, a package
  or a proof (sent as bytes), the report, the ledger check (``services.officer_actions``); Web UI
  sessions (``services.session_actions``); as ``{"arguments": ..., "assertion": ...}``.

Answers are JSON; a refusal is ``{"error": ...}`` with 400 (bad input, naming the field), 403
(not authorized, saying why), 404 (no such request) or 409 (the request refused it). Nothing
personal is logged, and the access log is off. ``python -m services.officer_service``; the embedded
stack starts it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from temporalio.client import Client

from dsr import authorization, officers
from dsr.assertions import Assertion, AssertionRefused, Principal
from dsr.credentials import load_action_roles
from dsr.database import make_engine
from dsr.files import private_umask
from dsr.logging import configure, get_logger
from dsr.models import REQUEST_ID
from dsr.settings import Settings, SettingsError, load_settings
from dsr.temporal import connect
from dsr.temporal_token import TokenError
from services import intake_actions as intakeactions
from services import officer_actions as officeractions
from services import rule_actions as rulesactions
from services import serving
from services import session_actions as sessionactions
from services import workflow_client as officer
from workflows.models import (
    ChildErasureDecision,
    ConnectorDecision,
    Denial,
    Extension,
    InstructionConfirmation,
    OfficerAction,
    OfficerNote,
    OfficerPayload,
    RetentionChoice,
    UpdateResult,
)

UPDATES: dict[str, type[OfficerPayload]] = {
    "new_code": OfficerAction, "mark_verified": OfficerNote, "confirm_recipient": OfficerNote,
    "extend": Extension, "request_clarification": OfficerNote,
    "request_scope_clarification": OfficerNote,
    "clarification_received": OfficerNote, "resolve_connector": ConnectorDecision,
    "confirm_instruction": InstructionConfirmation, "cancel": OfficerNote,
    "approve": OfficerAction, "deny": Denial, "release_answer": OfficerNote,
    "review_child_erasure": ChildErasureDecision, "decide_retention": RetentionChoice,
}
ACTIONS = (officeractions.ACTIONS | intakeactions.ACTIONS | sessionactions.ACTIONS
           | rulesactions.ACTIONS)
MAX_BODY = 64 * 1024
M = TypeVar("M", bound=BaseModel)
log = get_logger()


class SignedAction(BaseModel):
    arguments: dict[str, Any] = {}
    assertion: Assertion | None = None


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class OfficerService:
    def __init__(self, settings: Settings, client: Client | None, engine: Engine) -> None:
        """``client``: None where no Temporal is reachable (request actions are refused)."""
        self.settings = settings
        self.client = client
        self.engine = engine
        self.roles = load_action_roles(settings.policy_dir)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[_refusals])
        app.router.add_post("/v1/login", self.login)
        app.router.add_post("/v1/requests/{request_id}/{update}", self.update)
        app.router.add_post("/v1/actions/{action}", self.action)
        return app

    async def login(self, request: web.Request) -> web.Response:
        login = await _body(request, officers.Login, "the login")
        try:
            credential = await asyncio.to_thread(
                officers.issue_credential, self.engine, self.settings.secret, login,
                self.settings.temporal_namespace, datetime.now(UTC))
        except officers.DirectoryError as error:
            raise Refused(403, str(error)) from None
        log.info("officer logged in", officer=login.officer_id)
        return web.json_response({"credential": credential})

    async def update(self, request: web.Request) -> web.Response:
        request_id, name = request.match_info["request_id"], request.match_info["update"]
        model = UPDATES.get(name)
        if model is None:
            raise Refused(404, f"no officer action {name!r} on requests")
        if not _request_id_ok(request_id):
            raise Refused(400, "a request id is 3-64 letters, digits, '-' or '_'")
        payload = await _body(request, model, "the input")
        # The request's workflow checks the assertion again and spends its nonce.
        principal = await self._check(officer.workflow_id(request_id), name, payload,
                                      payload.assertion, spend=False)
        if self.client is None:
            raise Refused(503, "the officer service has no connection to Temporal")
        try:
            result = await officer.update(self.client, request_id, name, payload, UpdateResult)
        except officer.OfficerError as error:
            raise Refused(*_status_of(str(error).removeprefix("refused: "))) from None
        log.info("officer action", action=name, request_id=request_id,
                 officer=principal.principal_id)
        return web.json_response(result.model_dump(mode="json"))

    async def action(self, request: web.Request) -> web.StreamResponse:
        """Any action but an Update: ``{"arguments": ..., "assertion": ...}``."""
        name = request.match_info["action"]
        action = ACTIONS.get(name)
        if action is None:
            raise Refused(404, f"no officer action {name!r}")
        signed = await _body(request, SignedAction, "the action")
        arguments = _arguments(action.model, signed)
        principal = await self._check(action.target(arguments), name, arguments,
                                      signed.assertion)
        context = officeractions.Context(self.settings, self.engine, self.client)
        try:
            result = await action.run(context, principal, arguments)
        except officeractions.ActionRefused as refused:
            raise Refused(refused.status, str(refused)) from None
        log.info("officer action", action=name, officer=principal.principal_id)
        if isinstance(result, officeractions.Download):
            return await _send(request, result)
        return web.json_response(result)

    async def _check(self, target: str, action: str, arguments: Any,
                     assertion: Assertion | None, spend: bool = True) -> Principal:
        try:
            return await asyncio.to_thread(
                authorization.check, self.engine, self.settings.secret, self.roles,
                namespace=self.settings.temporal_namespace, target=target, action=action,
                arguments=arguments, assertion=assertion, now=datetime.now(UTC), spend=spend)
        except AssertionRefused as refused:
            log.info("officer action refused", action=action, reason=str(refused))
            raise Refused(403, f"not authorized: {refused}") from None


async def _body(request: web.Request, model: type[M], what: str) -> M:
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as error:
        raise Refused(400, officer.describe_errors(error, what)) from None


async def _send(request: web.Request, download: officeractions.Download) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": download.media_type})
    await response.prepare(request)
    while (chunk := await asyncio.to_thread(next, download.chunks, b"")):
        await response.write(chunk)
    await response.write_eof()
    return response


def _arguments(model: type[M], action: SignedAction) -> M:
    try:
        # ``now``: a request's times may not be in the future (``dsr.models.parse_request``).
        return model.model_validate(action.arguments, context={"now": datetime.now(UTC)})
    except ValidationError as error:
        raise Refused(400, officer.describe_errors(error, "the input")) from None


def _status_of(message: str) -> tuple[int, str]:
    """The HTTP status of a refusal the request's workflow (or Temporal) gave."""
    if message.startswith("not authorized"):
        return 403, message
    return (404 if message.startswith("no request") else 409), message


def _request_id_ok(value: str) -> bool:
    return REQUEST_ID.fullmatch(value) is not None


@web.middleware
async def _refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Refused as refused:
        return web.json_response({"error": str(refused)}, status=refused.status)
    except web.HTTPRequestEntityTooLarge:
        return web.json_response({"error": f"the body is over {MAX_BODY} bytes"}, status=413)
    except web.HTTPException:
        raise
    except Exception as error:  # named in the log, never echoed: it may quote the input
        log.error("officer service failed", path=request.path, error=type(error).__name__)
        return web.json_response({"error": "the officer service failed; see its log"},
                                 status=500)


async def run_officer_service(settings: Settings) -> None:
    service = OfficerService(settings, await connect(settings),
                             make_engine(settings.app_database_url))
    runner = await serving.listen(service.app(), settings.officer_service_bind_host,
                                  settings.officer_service_port)
    log.info("officer service listening", port=settings.officer_service_port)
    await serving.until_signalled(runner, "officer service")


def main() -> None:
    private_umask()
    configure()
    try:
        asyncio.run(run_officer_service(load_settings()))
    except (SettingsError, TokenError) as error:
        raise SystemExit(f"error: {error}") from None
    except OSError as error:
        raise SystemExit(f"error: the officer service cannot listen ({error.strerror}); set "
                         "DSR_OFFICER_SERVICE_PORT to a free port") from None


if __name__ == "__main__":
    main()
