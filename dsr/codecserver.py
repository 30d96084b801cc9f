"""The codec server: the endpoints the Temporal Web UI and CLI call to decode payloads.

Payloads are encrypted before they reach Temporal (``dsr.codec``), so the Web UI shows them
only through this server, and it decodes only

* for an authenticated officer: a session cookie (``dsr_session``) set by the link
  ``python starter.py ui-session`` prints, or, where the Web UI signs officers in with OIDC, an
  ``Authorization: Bearer`` token (RS256, checked against the configured issuer's public key,
  issuer and audience); and
* for the configured Web UI origins (CORS, ``codec_allowed_origins``): a request from any other
  origin is refused before anything is read. Requests without an ``Origin`` (the Temporal CLI's
  ``--codec-endpoint``/``--codec-auth``) still need a session or a token.

The protocol is Temporal's: ``POST /decode`` and ``/encode`` (also ``/{namespace}/decode`` and
``/{namespace}/encode``) take and answer ``{"payloads": [{"metadata": {k: base64}, "data":
base64}]}``, the JSON form of ``temporalio.api.common.v1.Payloads``.

Each decode is logged with the officer, the namespace, the number of payloads and, where the
request carries one (a payload's ``workflow-id`` metadata or an ``X-Workflow-Id`` header), the
workflow id: never payload data. The session link's token is never logged (the access log is
off: it would print the path).

On the embedded stack the Web UI reaches it through ``temporal server start-dev
--ui-codec-endpoint`` :func:`codec_endpoint`. That flag always comes with credentials off, so
the officer, once, in the Web UI's codec settings, chooses "use a browser endpoint" with this
server's address and enables "Include cross-origin credentials": the browser then sends the
session cookie (``tests/test_web_ui_browser.py`` checks this in Chromium).
Run it alone with ``python -m dsr.codecserver``. It listens on ``codec_bind_host`` (127.0.0.1 by
default; 0.0.0.0 in a container, where the Web UI's browsers reach it through the published
port or an Ingress).
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jwt
from aiohttp import web
from google.protobuf import json_format
from sqlalchemy import Engine
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from dsr import serving, sessions
from dsr.codec import ENCODING
from dsr.logging import get_logger

if TYPE_CHECKING:
    from dsr.settings import Settings

SESSION_COOKIE = "dsr_session"
BIND_HOST = "127.0.0.1"
ALLOW_HEADERS = "Content-Type, X-Namespace, Authorization"
ALLOW_METHODS = "POST, OPTIONS"
PREFLIGHT_MAX_AGE = 600
MAX_BODY_BYTES = 16 * 1024 * 1024
JWT_LEEWAY_SECONDS = 30
# Where a payload may name its workflow: metadata the encoder stamps, or a header.
WORKFLOW_ID_METADATA = ("dsr-workflow-id", "dsr-workflow-id-prefix", "workflow-id", "workflow_id",
                        "workflowId")
WORKFLOW_ID_HEADER = "X-Workflow-Id"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")

log = get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Caller:
    """An authenticated officer, and how: ``session`` (cookie) or ``token`` (OIDC bearer)."""

    officer: str
    via: str
    subject: str | None = None


class OidcConfigError(ValueError):
    """Bearer tokens configured only in part: a key without issuer and audience, or the reverse."""


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def codec_endpoint(settings: Settings) -> str:
    """The codec server's URL as the browser reaches it.

    Its host is the Web UI's own (``localhost`` or ``127.0.0.1``): the session cookie belongs
    to the host that set it and the browser sends it with the Web UI's fetches only when the
    two are the same site, so the session link, ``--ui-codec-endpoint`` and the Web UI's address
    must agree. The server listens on ``codec_bind_host`` (127.0.0.1 by default, where
    ``localhost`` arrives too).
    """
    host = urlsplit(settings.web_ui_url).hostname or BIND_HOST
    return f"http://{host if host in LOOPBACK_HOSTS else BIND_HOST}:{settings.codec_port}"


def session_link(settings: Settings, token: str) -> str:
    return f"{codec_endpoint(settings)}/session/{token}"


class _BearerVerifier:
    def __init__(self, settings: Settings) -> None:
        configured = {
            "DSR_CODEC_OIDC_PUBLIC_KEY": settings.codec_oidc_public_key,
            "DSR_CODEC_OIDC_ISSUER": settings.codec_oidc_issuer,
            "DSR_CODEC_OIDC_AUDIENCE": settings.codec_oidc_audience,
        }
        missing = [name for name, value in configured.items() if not value]
        self.enabled = len(missing) < len(configured)
        if self.enabled and missing:
            raise OidcConfigError(
                "bearer tokens need the issuer's public key, issuer and audience: "
                f"set {', '.join(missing)}"
            )
        self.key = ""
        if self.enabled:
            assert settings.codec_oidc_public_key is not None
            try:
                self.key = settings.codec_oidc_public_key.read_text(encoding="ascii")
            except OSError as error:
                raise OidcConfigError(
                    f"cannot read DSR_CODEC_OIDC_PUBLIC_KEY ({error.strerror})"
                ) from None
        self.issuer = settings.codec_oidc_issuer
        self.audience = settings.codec_oidc_audience

    def caller(self, token: str) -> Caller:
        if not self.enabled:
            raise _Refused(
                401,
                "bearer tokens are not accepted here (OIDC is not configured): "
                "open a session with `python starter.py ui-session`",
            )
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=JWT_LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _Refused(401, "the bearer token has expired") from None
        except jwt.InvalidTokenError as error:
            raise _Refused(401, f"the bearer token is not valid ({type(error).__name__})") from None
        officer = claims.get("email") or claims.get("sub")
        if not isinstance(officer, str) or not officer:
            raise _Refused(401, "the bearer token names no officer (no email or sub)")
        subject = claims.get("sub")
        return Caller(officer, "token", subject if isinstance(subject, str) else None)


class _CodecServer:
    def __init__(self, codec: PayloadCodec, settings: Settings, engine: Engine) -> None:
        self.codec = codec
        self.engine = engine
        self.secret = settings.secret
        self.allowed_origins = frozenset(settings.codec_allowed_origins)
        self.bearer = _BearerVerifier(settings)

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

    # Authentication -----------------------------------------------------------------------

    async def authenticate(self, request: web.Request) -> Caller:
        """The officer calling, or ``_Refused``."""
        refusal: _Refused | None = None
        authorization = request.headers.get("Authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if authorization and scheme.lower() == "bearer" and credentials.strip():
            try:
                return self.bearer.caller(credentials.strip())
            except _Refused as refused:
                refusal = refused
        elif authorization:
            refusal = _Refused(401, "only Authorization: Bearer tokens are accepted")
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            now = datetime.now(UTC)
            officer = await asyncio.to_thread(
                sessions.officer_for, self.engine, self.secret, token, now
            )
            if officer is not None:
                return Caller(officer, "session")
            refusal = refusal or _Refused(
                401,
                "the session has expired or was revoked: open a new one with "
                "`python starter.py ui-session`",
            )
        raise refusal or _Refused(
            401,
            "sign in first: open the link `python starter.py ui-session` prints in this "
            "browser; in the Web UI's codec settings use a browser endpoint (this server) and "
            'enable "Include cross-origin credentials"',
        )

    # The codec endpoints -------------------------------------------------------------------

    async def decode(self, request: web.Request) -> web.StreamResponse:
        return await self._transcode(request, "decode")

    async def encode(self, request: web.Request) -> web.StreamResponse:
        return await self._transcode(request, "encode")

    async def _transcode(self, request: web.Request, direction: str) -> web.StreamResponse:
        namespace = request.match_info.get("namespace") or request.headers.get("X-Namespace")
        try:
            caller = await self.authenticate(request)
        except _Refused as refused:
            log.warning(f"codec {direction} refused", reason=refused.message, namespace=namespace)
            return web.json_response({"error": refused.message}, status=refused.status)
        try:
            payloads = await _read_payloads(request)
        except _Refused as refused:
            log.warning(
                f"codec {direction} refused: bad request",
                officer=caller.officer,
                reason=refused.message,
                namespace=namespace,
            )
            return web.json_response({"error": refused.message}, status=refused.status)
        workflow_ids = _workflow_ids(payloads, request.headers.get(WORKFLOW_ID_HEADER))
        context = {
            "officer": caller.officer,
            "auth": caller.via,
            # The token's subject too: the log masks an officer named by an email address.
            **({"subject": caller.subject} if caller.subject else {}),
            "namespace": namespace,
            "payloads": len(payloads),
            "workflow_id": ", ".join(workflow_ids) if workflow_ids else None,
        }
        try:
            if direction == "decode":
                result = await _decoded_for_display(self.codec, payloads)
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
        token = request.match_info["token"]
        now = datetime.now(UTC)
        found = await asyncio.to_thread(sessions.session_for, self.engine, self.secret, token, now)
        if found is None:
            log.warning("ui session link refused: unknown, expired or revoked")
            response = _page(
                "This session link is not valid: it is unknown, has expired or was revoked. "
                "Open a new one with: python starter.py ui-session",
                status=403,
            )
            response.del_cookie(SESSION_COOKIE, path="/")
            return response
        until = found.expires_at.astimezone().strftime("%Y-%m-%d %H:%M %Z")
        response = _page(f"Session open for {found.officer} until {until}; you may close this tab.")
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=max(1, int((found.expires_at - now).total_seconds())),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=request.secure,
        )
        log.info("ui session cookie set", officer=found.officer, until=found.expires_at.isoformat())
        return response


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


async def _read_payloads(request: web.Request) -> list[Payload]:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _Refused(413, f"the body is larger than {MAX_BODY_BYTES} bytes") from None
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Refused(400, "the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("payloads"), list):
        raise _Refused(400, 'the body must be {"payloads": [...]}') from None
    payloads = Payloads()
    try:
        json_format.ParseDict(data, payloads, ignore_unknown_fields=True)
    except json_format.ParseError as error:
        # The parser's message may quote a value; name the field only.
        where = str(error).split(":", 1)[0][:200]
        raise _Refused(400, f"the payloads are not valid Temporal payloads ({where})") from None
    return list(payloads.payloads)


async def _decoded_for_display(codec: PayloadCodec, payloads: list[Payload]) -> list[Payload]:
    """The encrypted payloads decrypted (a foreign one shown as its refusal marker); one that
    is not encrypted is shown as it is, as the Web UI would show it without a codec."""
    encrypted = [p for p in payloads if p.metadata.get("encoding") == ENCODING]
    decoded = iter(await codec.decode(encrypted))
    return [next(decoded) if p.metadata.get("encoding") == ENCODING else p for p in payloads]


def _workflow_ids(payloads: Iterable[Payload], header: str | None) -> list[str]:
    found = {header.strip()} if header and header.strip() else set()
    for payload in payloads:
        for key in WORKFLOW_ID_METADATA:
            if key in payload.metadata:
                with suppress(UnicodeDecodeError):
                    found.add(payload.metadata[key].decode("utf-8").strip())
    return sorted(value[:200] for value in found if value)[:10]


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
        from dsr.codec import EncryptionCodec
        from dsr.keyring import load_keyring

        codec = EncryptionCodec(load_keyring(settings))
    if engine is None:
        from dsr.database import make_engine

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
    from dsr.files import private_umask
    from dsr.logging import configure
    from dsr.settings import SettingsError, load_settings

    private_umask()
    configure()
    try:
        settings = load_settings()
    except SettingsError as error:
        raise SystemExit(f"error: {error}") from None
    from dsr.keyring import KeyringError

    try:
        asyncio.run(run_codec_server(settings))
    except (OidcConfigError, KeyringError) as error:  # neither quotes key material
        raise SystemExit(f"error: {error}") from None
    except OSError as error:
        raise SystemExit(
            f"error: cannot listen on {settings.codec_bind_host}:{settings.codec_port} "
            f"({error.strerror}); set DSR_CODEC_PORT to a free port"
        ) from None


if __name__ == "__main__":
    main()
