"""Bearer tokens for a Temporal frontend that runs Temporal's JWT authorizer.

The token comes from the identity provider's OAuth2 token endpoint
(``DSR_TEMPORAL_TOKEN_URL``) by the client-credentials grant, as the client
``DSR_TEMPORAL_TOKEN_CLIENT_ID`` with ``DSR_TEMPORAL_TOKEN_CLIENT_SECRET`` (HTTP Basic, RFC 6749
section 2.3.1), with ``DSR_TEMPORAL_TOKEN_SCOPE`` when the provider needs one. The identity
provider puts the principal's permissions in the token's ``permissions`` claim in Temporal's
format, ``<namespace>:<role>`` (deploy/README.md, "Temporal authorization").

``dsr.temporal.connect`` attaches it to every call as ``authorization: Bearer ...`` and a
``TokenRefresher`` replaces it on the client some margin before it expires (``refresh_after``):
a margin of 60 seconds or a tenth of its lifetime, whichever is longer, and at most half the
lifetime (a 5-minute token is renewed after 4 minutes, a 1-hour one after 54). A failed
renewal keeps the current token, logs a warning and tries again (1 s doubling to 30 s) until
the endpoint answers; once the token has expired the frontend refuses the calls and the log
says so.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import jwt
from pydantic import SecretStr
from temporalio.client import Client

from dsr.logging import get_logger
from dsr.settings import Settings

log = get_logger()

REFRESH_MARGIN_SECONDS = 60.0
REFRESH_MARGIN_FRACTION = 0.1
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0
_DESCRIPTION_CHARS = 200


class TokenError(Exception):
    """The token endpoint could not be reached, refused the client, or did not answer with a
    token; the message names the setting to check."""


@dataclass(frozen=True)
class Token:
    value: str
    expires_in: float  # seconds, from when it was requested
    requested_at: float  # time.monotonic() when it was requested

    @property
    def expires_at(self) -> float:
        return self.requested_at + self.expires_in

    @property
    def refresh_at(self) -> float:
        return self.requested_at + refresh_after(self.expires_in)

    @property
    def metadata(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.value}"}


def refresh_after(expires_in: float) -> float:
    """Seconds after a token was requested to request the next: its lifetime less a margin of
    60 s or 10% of the lifetime, whichever is longer, the margin at most half the lifetime."""
    margin = max(REFRESH_MARGIN_SECONDS, REFRESH_MARGIN_FRACTION * expires_in)
    return expires_in - min(margin, expires_in / 2)


class TokenSource:
    """The client-credentials grant at one token endpoint."""

    def __init__(self, url: str, client_id: str, client_secret: SecretStr,
                 scope: str | None = None) -> None:
        self.url, self.client_id, self.scope = url, client_id, scope
        self._secret = client_secret

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSource | None:
        """The settings' token source, or None when no token endpoint is set."""
        if settings.temporal_token_url is None:
            return None
        assert settings.temporal_token_client_id and settings.temporal_token_client_secret
        return cls(settings.temporal_token_url, settings.temporal_token_client_id,
                   settings.temporal_token_client_secret, settings.temporal_token_scope)

    async def fetch(self) -> Token:
        requested_at = time.monotonic()
        form = {"grant_type": "client_credentials"} | ({"scope": self.scope} if self.scope else {})
        headers = {"Accept": "application/json", "Authorization": self._basic_auth()}
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        try:
            async with (aiohttp.ClientSession(timeout=timeout) as session,
                        session.post(self.url, data=form, headers=headers) as response):
                status, text = response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TokenError(f"cannot reach the token endpoint DSR_TEMPORAL_TOKEN_URL "
                             f"({self.url}): {type(error).__name__} {error}".rstrip()) from None
        body = _json_object(text)
        if status != 200:
            raise TokenError(self._refusal(status, body))
        return Token(*_access_token(body, self.url), requested_at)

    def _basic_auth(self) -> str:
        """client_secret_basic: both halves form-urlencoded first (RFC 6749 section 2.3.1)."""
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self._secret.get_secret_value())}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")

    def _refusal(self, status: int, body: dict[str, Any]) -> str:
        error = str(body.get("error", "no OAuth2 error code"))
        description = str(body.get("error_description", ""))[:_DESCRIPTION_CHARS]
        said = f"{error}" + (f" ({description})" if description else "")
        where = f"the token endpoint DSR_TEMPORAL_TOKEN_URL ({self.url})"
        if error in ("invalid_client", "unauthorized_client") or status == 401:
            return (f"{where} refused the client DSR_TEMPORAL_TOKEN_CLIENT_ID="
                    f"{self.client_id!r}: {said}; check DSR_TEMPORAL_TOKEN_CLIENT_SECRET and "
                    "that the client may use the client-credentials grant")
        if error == "invalid_scope":
            return f"{where} refused the scope DSR_TEMPORAL_TOKEN_SCOPE={self.scope!r}: {said}"
        return f"{where} answered HTTP {status}: {said}"


def _json_object(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _access_token(body: dict[str, Any], url: str) -> tuple[str, float]:
    """The access token and its lifetime in seconds: ``expires_in``, or else the JWT's
    ``exp`` (read, not verified: the frontend verifies it)."""
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenError(f"the token endpoint DSR_TEMPORAL_TOKEN_URL ({url}) answered without "
                         "an access_token")
    if str(body.get("token_type", "")).lower() != "bearer":
        raise TokenError(f"the token endpoint DSR_TEMPORAL_TOKEN_URL ({url}) answered a "
                         f"{body.get('token_type')!r} token, not a Bearer token")
    expires_in = body.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        lifetime = float(expires_in)
    else:
        try:
            exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        except jwt.PyJWTError:
            exp = None
        if not isinstance(exp, int | float):
            raise TokenError(f"the token endpoint DSR_TEMPORAL_TOKEN_URL ({url}) gave neither "
                             "expires_in nor a JWT with exp: no way to know when to renew it")
        lifetime = float(exp) - time.time()
    if lifetime <= 0:
        raise TokenError(f"the token endpoint DSR_TEMPORAL_TOKEN_URL ({url}) answered a token "
                         "that has already expired (check this host's clock)")
    return token, lifetime


class TokenRefresher:
    """Replaces a client's bearer token before it expires, while the client lives."""

    def __init__(self, client: Client, source: TokenSource, token: Token) -> None:
        self._client = weakref.ref(client)
        self._source = source
        self.token = token
        self.refreshed = 0
        self.task = asyncio.create_task(self._run(), name="temporal-token-refresher")

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self.token.refresh_at - time.monotonic()))
            token = await self._renew()
            client = self._client()
            if client is None:
                return
            # A new mapping (the SDK's rule); any other header is kept.
            client.rpc_metadata = {**client.rpc_metadata, **token.metadata}
            self.token = token
            self.refreshed += 1
            log.info("temporal token renewed", expires_in=round(token.expires_in))

    async def _renew(self) -> Token:
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                return await self._source.fetch()
            except TokenError as error:
                left = self.token.expires_at - time.monotonic()
                if left > 0:
                    log.warning("temporal token renewal failed; the current token stays",
                                error=str(error), seconds_left=round(left, 1))
                else:
                    log.error("temporal token renewal failed and the token has expired: "
                              "the frontend refuses this process's calls", error=str(error))
                wait = delay if left <= 0 else min(delay, max(left / 2, 0.1))
                await asyncio.sleep(wait)
                delay = min(delay * 2, RETRY_MAX_SECONDS)


_refreshers: weakref.WeakKeyDictionary[Client, TokenRefresher] = weakref.WeakKeyDictionary()


def keep_fresh(client: Client, source: TokenSource, token: Token) -> TokenRefresher:
    """Start renewing ``client``'s token; it stops with the event loop or the client."""
    refresher = _refreshers[client] = TokenRefresher(client, source, token)
    return refresher


def refresher_of(client: Client) -> TokenRefresher | None:
    return _refreshers.get(client)
