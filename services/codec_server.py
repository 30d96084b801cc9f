"""The codec server: the endpoints the Temporal Web UI and CLI call to decode payloads.

Payloads are encrypted before they reach Temporal (``dsr.codec``), so the Web UI shows them
only through this server, and it decodes only

* for an authenticated officer: a session cookie (``dsr_session``) set when the officer opens,
  once, the link ``python starter.py ui-session`` prints (``dsr.sessions``: the link is
  exchanged for a fresh cookie and opens nothing after), or, where the Web UI signs officers in
  with OIDC, an ``Authorization: Bearer`` access token with a role allowed to read
  (``services.oidc``: the issuer's JWKS, issuer, audience, expiry, token type, role claim,
  ``email_verified``); and
* for the configured Web UI origins (CORS, ``codec_allowed_origins``): a request from any other
  origin is refused before anything is read. Requests without an ``Origin`` (the Temporal CLI's
  ``--codec-endpoint``/``--codec-auth``) still need a session or a token.

The protocol is Temporal's: ``POST /decode`` and ``/encode`` (also ``/{namespace}/decode`` and
``/{namespace}/encode``) take and answer ``{"payloads": [{"metadata": {k: base64}, "data":
base64}]}``, the JSON form of ``temporalio.api.common.v1.Payloads``. ``/encode`` answers only an
administrator's bearer token (``codec_oidc_encode_roles``), never a session (a session carries
no role). What it encodes carries no authority anyway: it is encrypted but bound to no
workflow, and every worker refuses an unbound payload under a bound key wherever it lands
(``dsr.converter``), so it is a tool to look at the encoding, not a way to act.

Each decode is logged with the officer, the namespace, the number of payloads and, where the
request carries one (a payload's ``workflow-id`` metadata or an ``X-Workflow-Id`` header), the
workflow id: never payload data. Each refusal is logged with what is wrong, never a token,
cookie or session link (the access log is off: it would print the link's path).

On the embedded stack the Web UI reaches it through ``temporal server start-dev
--ui-codec-endpoint`` :func:`codec_endpoint`. That flag always comes with credentials off, so
the officer, once, in the Web UI's codec settings, chooses "use a browser endpoint" with this
server's address and enables "Include cross-origin credentials": the browser then sends the
session cookie (``tests/test_web_ui_browser.py`` checks this in Chromium). The cookie is
``HttpOnly``, ``SameSite=Lax``, and ``Secure`` when the codec server's public address
(``codec_public_url``) is https: a TLS proxy in front of it is declared by that setting, not
by a header a client could send, so no ``X-Forwarded-Proto`` is trusted.
Run it alone with ``python -m services.codec_server``. It listens on ``codec_bind_host``
(127.0.0.1 by default; 0.0.0.0 in a container, where the Web UI's browsers reach it through
the published port or an Ingress).
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from google.protobuf import json_format
from sqlalchemy import Engine
from temporalio.converter import PayloadCodec

from dsr import sessions
from dsr.codec import EncryptionCodec
from dsr.database import make_engine
from dsr.files import private_umask
from dsr.keyring import KeyringError, load_keyring
from dsr.logging import configure, get_logger
from dsr.settings import Settings, SettingsError, load_settings
from services import serving
from services.codec_payloads import (
    MAX_BODY_BYTES,
    WORKFLOW_ID_HEADER,
    decoded_for_display,
    read_payloads,
    workflow_ids,
)
from services.oidc import OidcVerifier, Refused, TokenIdentity

SESSION_COOKIE = "dsr_session"
BIND_HOST = "127.0.0.1"
ALLOW_HEADERS = "Content-Type, X-Namespace, Authorization"
ALLOW_METHODS = "POST, OPTIONS"
PREFLIGHT_MAX_AGE = 600
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
NEW_SESSION = "Open a new one with: python starter.py ui-session"
LINK_REFUSALS = {
    sessions.LinkRefusal.UNKNOWN: "This session link is not valid. " + NEW_SESSION,
    sessions.LinkRefusal.EXPIRED: "This session link has expired. " + NEW_SESSION,
    sessions.LinkRefusal.REVOKED: "This session was ended. " + NEW_SESSION,
    sessions.LinkRefusal.USED: (
        "This session link was already opened: it works once, in one browser. If it was not "
        "you who opened it, end that session (python starter.py ui-session --revoke with the "
        "session id it printed, or --revoke-all). " + NEW_SESSION
    ),
}
SIGN_IN = (
    "sign in first: open the link `python starter.py ui-session` prints in this browser; in "
    "the Web UI's codec settings use a browser endpoint (this server) and enable \"Include "
    "cross-origin credentials\""
)

log = get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Caller:
    """An authenticated officer, and how: ``session`` (cookie) or ``token`` (OIDC bearer)."""

    officer: str
    via: str
    subject: str | None = None
    session_id: str | None = None
    identity: TokenIdentity | None = None


def codec_endpoint(settings: Settings) -> str:
    """The codec server's URL as the browser reaches it: ``codec_public_url`` when set.

    Otherwise its host is the Web UI's own (``localhost`` or ``127.0.0.1``): the session cookie
    belongs to the host that set it and the browser sends it with the Web UI's fetches only
    when the two are the same site, so the session link, ``--ui-codec-endpoint`` and the Web
    UI's address must agree. The server listens on ``codec_bind_host`` (127.0.0.1 by default,
    where ``localhost`` arrives too).
    """
    if settings.codec_public_url:
        return settings.codec_public_url
    host = urlsplit(settings.web_ui_url).hostname or BIND_HOST
    return f"http://{host if host in LOOPBACK_HOSTS else BIND_HOST}:{settings.codec_port}"


def session_link(settings: Settings, token: str) -> str:
    return f"{codec_endpoint(settings)}/session/{token}"


class _CodecServer:
    def __init__(self, codec: PayloadCodec, settings: Settings, engine: Engine) -> None:
        self.codec = codec
        self.engine = engine
        self.keys = settings.server_keys
        self.allowed_origins = frozenset(settings.codec_allowed_origins)
        self.oidc = OidcVerifier(settings)
        self.secure_cookie = urlsplit(codec_endpoint(settings)).scheme == "https"

    # CORS ---------------------------------------------------------------------------------

    @web.middleware
    async def cors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.allowed_origins:
            log.warning("codec server refused a request from another origin", origin=origin[:200])
            return web.json_response(
                {"error": "this origin may not use the codec server"}, status=403
            )
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
            if request.headers.get("Access-Control-Request-Private-Network") == "true":
                response.headers["Access-Control-Allow-Private-Network"] = "true"
        else:
            try:
                response = await handler(request)
            except web.HTTPException as error:
                response = web.json_response({"error": error.reason}, status=error.status)
        response.headers["Vary"] = "Origin"
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        return response

    # Authentication and authorization -----------------------------------------------------

    async def authenticate(self, request: web.Request) -> Caller:
        """The officer calling, or ``Refused``: a bearer token when there is one (its refusal
        wins unless a valid session cookie comes with it), else the session cookie."""
        refusal: Refused | None = None
        authorization = request.headers.get("Authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if authorization and scheme.lower() == "bearer" and credentials.strip():
            try:
                identity = await asyncio.to_thread(self.oidc.identity, credentials.strip())
                return Caller(identity.officer, "token", identity.subject, identity=identity)
            except Refused as refused:
                refusal = refused
        elif authorization:
            refusal = Refused(401, "only Authorization: Bearer tokens are accepted")
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            found = await asyncio.to_thread(sessions.session_for, self.engine, self.keys, cookie)
            if found is not None:
                return Caller(found.officer, "session", session_id=found.session_id)
            refusal = refusal or Refused(
                401, "the session has expired or was ended: open a new one with "
                     "`python starter.py ui-session`")  # fmt: skip
        raise refusal or Refused(401, SIGN_IN)

    def authorize(self, caller: Caller, direction: str) -> None:
        """Decoding: a session, or a token with a read role. Encoding: an administrator's token
        only (a session carries no role)."""
        if caller.identity is not None:
            self.oidc.authorize(caller.identity, direction)
        elif direction == "encode":
            raise Refused(403, "encoding is for administrators signed in with OIDC (a bearer "
                               "token with an encode role): a ui-session session carries no "
                               "role")

    # The codec endpoints -------------------------------------------------------------------

    async def decode(self, request: web.Request) -> web.StreamResponse:
        return await self._transcode(request, "decode")

    async def encode(self, request: web.Request) -> web.StreamResponse:
        return await self._transcode(request, "encode")

    async def _transcode(self, request: web.Request, direction: str) -> web.StreamResponse:
        namespace = request.match_info.get("namespace") or request.headers.get("X-Namespace")
        caller: Caller | None = None
        try:
            caller = await self.authenticate(request)
            self.authorize(caller, direction)
            payloads = await read_payloads(request)
        except Refused as refused:
            _log_refusal(direction, refused, namespace, caller)
            return web.json_response({"error": refused.message}, status=refused.status)
        found_ids = workflow_ids(payloads, request.headers.get(WORKFLOW_ID_HEADER))
        context = {
            "officer": caller.officer,
            "auth": caller.via,
            # The token's subject too: the log masks an officer named by an email address.
            **({"subject": caller.subject} if caller.subject else {}),
            **({"session": caller.session_id} if caller.session_id else {}),
            "namespace": namespace,
            "payloads": len(payloads),
            "workflow_id": ", ".join(found_ids) if found_ids else None,
        }
        try:
            if direction == "decode":
                result = await decoded_for_display(self.codec, payloads)
            else:
                result = await self.codec.encode(payloads)
        except Exception as error:  # the codec's own errors, never quoted: they may hold data
            log.warning(f"codec {direction} failed", error=type(error).__name__, **context)
            return web.json_response(
                {"error": f"the payloads could not be {direction}d ({type(error).__name__})"},
                status=400,
            )
        log.info(f"codec {direction}", **context)
        return web.json_response({"payloads": [json_format.MessageToDict(p) for p in result]})

    # The session link ----------------------------------------------------------------------

    async def open_session(self, request: web.Request) -> web.StreamResponse:
        """Exchange the one-time link for a fresh cookie; a second opening is refused."""
        result = await asyncio.to_thread(
            sessions.exchange_link, self.engine, self.keys, request.match_info["token"]
        )
        if isinstance(result, sessions.LinkRefused):
            log.warning("ui session link refused", reason=str(result.reason),
                        session=result.session_id)
            # A cookie this browser holds is another credential than the link: left as it is.
            return _page(LINK_REFUSALS[result.reason], status=403)
        found = result.session
        until = found.expires_at.astimezone().strftime("%Y-%m-%d %H:%M %Z")
        response = _page(f"Session open for {found.officer} until {until}; you may close this "
                         "tab. This link will not open it again.")
        response.set_cookie(
            SESSION_COOKIE,
            result.cookie,
            max_age=max(1, int((found.expires_at - datetime.now(UTC)).total_seconds())),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self.secure_cookie or request.secure,
        )
        log.info("ui session link exchanged for a cookie", officer=found.officer,
                 session=found.session_id, until=found.expires_at.isoformat())
        return response


def _log_refusal(direction: str, refused: Refused, namespace: str | None,
                 caller: Caller | None) -> None:
    who: dict[str, Any] = {"officer": caller.officer, "auth": caller.via} if caller else {}
    if refused.subject:
        who["subject"] = refused.subject
    log.warning(f"codec {direction} refused", reason=refused.message, status=refused.status,
                namespace=namespace, **who)


def _page(text: str, status: int = 200) -> web.Response:
    body = (
        '<!doctype html><html><head><meta charset="utf-8"><title>DSR codec server</title>'
        f"</head><body><p>{html.escape(text)}</p></body></html>"
    )
    response = web.Response(text=body, content_type="text/html", status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = "default-src 'none'"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def make_app(codec: PayloadCodec, settings: Settings, engine: Engine) -> web.Application:
    """The codec server's application; ``engine`` is the app database holding the sessions."""
    server = _CodecServer(codec, settings, engine)
    app = web.Application(middlewares=[server.cors], client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/decode", server.decode)
    app.router.add_post("/encode", server.encode)
    app.router.add_post("/{namespace}/decode", server.decode)
    app.router.add_post("/{namespace}/encode", server.encode)
    app.router.add_get("/session/{token}", server.open_session)
    return app


async def start(
    settings: Settings,
    codec: PayloadCodec | None = None,
    engine: Engine | None = None,
    host: str | None = None,
    port: int | None = None,
) -> web.AppRunner:
    """Serve on ``host``:``codec_port``; ``await runner.cleanup()`` stops it.

    ``host`` defaults to ``codec_bind_host``.

    By default the codec is ``dsr.codec``'s with the configured keyring and the sessions are in
    the app database.
    """
    if codec is None:
        codec = EncryptionCodec(load_keyring(settings))
    if engine is None:
        engine = make_engine(settings.app_database_url)
    if host is None:
        host = settings.codec_bind_host
    runner = await serving.listen(make_app(codec, settings, engine), host,
                                  port or settings.codec_port)
    log.info("codec server listening", endpoint=f"http://{host}:{port or settings.codec_port}")
    return runner


async def run_codec_server(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    await serving.until_signalled(await start(settings), "codec server")


def main() -> None:
    private_umask()
    configure()
    try:
        settings = load_settings()
    except SettingsError as error:
        raise SystemExit(f"error: {error}") from None

    try:
        asyncio.run(run_codec_server(settings))
    except KeyringError as error:  # never quotes key material
        raise SystemExit(f"error: {error}") from None
    except OSError as error:
        raise SystemExit(
            f"error: cannot listen on {settings.codec_bind_host}:{settings.codec_port} "
            f"({error.strerror}); set DSR_CODEC_PORT to a free port"
        ) from None


if __name__ == "__main__":
    main()
