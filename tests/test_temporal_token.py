"""Bearer tokens for Temporal's JWT authorizer (dsr/temporal_token.py, ``dsr.temporal.connect``).

A local identity provider (aiohttp on a free port) answers the OAuth2 client-credentials grant
with short-lived JWTs (seconds) signed by a key it publishes in its JWKS (the ``Issuer`` of
tests/test_codec_oidc.py), so each token is checked the way Temporal's default claim mapper
checks it: signature against the JWKS fetched over HTTP, expiry, and the ``permissions`` claim.

Not run here: a Temporal server with the JWT authorizer. The dev server (tests/conftest.py)
has none: it accepts the calls and ignores the header. What is checked against it is that the
client ``connect`` builds carries the token in its RPC metadata, keeps working, and has it
replaced before it expires; not that an authorizing frontend admits or refuses it.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import aiohttp
import jwt
import pytest
import structlog.testing
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr, ValidationError
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

import starter
from dsr.settings import Settings
from dsr.temporal import connect
from dsr.temporal_token import TokenError, TokenSource, refresh_after, refresher_of
from tests.conftest import TEST_KEY_SPEC, TEST_KEYRING
from tests.test_codec_oidc import Issuer

CLIENT_ID = "dsr-worker"
CLIENT_SECRET = "secret of the worker: client+1"  # form-urlencoded on the wire
PERMISSIONS = ["dsr:write"]  # the workers' permission (deploy/README.md)
SCOPE = "temporal"


@dataclass
class TokenEndpoint:
    """The identity provider's token endpoint and key set, and what it issued."""

    issuer: Issuer = field(default_factory=Issuer)
    lifetime: int = 4  # seconds
    answers_expires_in: bool = True
    failing: bool = False  # 503 while set
    issued: list[str] = field(default_factory=list)
    issued_at: list[float] = field(default_factory=list)  # time.time()
    forms: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.issuer.url}/token"

    async def verify(self, token: str) -> dict[str, Any]:
        """As Temporal's frontend does: the key set fetched from its address, the signature
        and expiry checked (its default claim mapper checks no audience or issuer)."""
        async with aiohttp.ClientSession() as session, \
                session.get(f"{self.issuer.url}/jwks") as response:
            keys = jwt.PyJWKSet.from_dict(await response.json())
        key = keys[jwt.get_unverified_header(token)["kid"]]
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256", "ES256"],
                                            options={"verify_aud": False, "require": ["exp"]})
        return claims


@pytest.fixture
async def endpoint() -> AsyncIterator[TokenEndpoint]:
    state = TokenEndpoint()
    state.issuer.publish("k1")

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response(state.issuer.jwks())

    async def token(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        state.forms.append(form)
        if state.failing:
            return web.json_response({"error": "temporarily_unavailable"}, status=503)
        if _basic_client(request.headers.get("Authorization", "")) != (CLIENT_ID, CLIENT_SECRET):
            return web.json_response({"error": "invalid_client",
                                      "error_description": "Invalid client credentials"},
                                     status=401)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if form.get("scope", SCOPE) != SCOPE:
            return web.json_response({"error": "invalid_scope"}, status=400)
        now = datetime.now(UTC)
        value = state.issuer.token(
            sub=f"service-account-{CLIENT_ID}", aud="temporal", permissions=PERMISSIONS,
            email=None, email_verified=None, roles=None, iat=now,
            exp=now + timedelta(seconds=state.lifetime))
        state.issued.append(value)
        state.issued_at.append(now.timestamp())
        body: dict[str, Any] = {"access_token": value, "token_type": "Bearer", "scope": SCOPE}
        if state.answers_expires_in:
            body["expires_in"] = state.lifetime
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    app.router.add_post("/token", token)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.issuer.url = str(server.make_url("")).rstrip("/")
    yield state
    await server.close()


def _basic_client(header: str) -> tuple[str, str] | None:
    """The client id and secret of an RFC 6749 (2.3.1) Basic header."""
    scheme, _, encoded = header.partition(" ")
    if scheme != "Basic":
        return None
    client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def _settings(tmp_path: Path, endpoint: TokenEndpoint, address: str = "127.0.0.1:1",
              namespace: str = "default", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path, "temporal_address": address, "temporal_namespace": namespace,
        "temporal_token_url": endpoint.url, "temporal_token_client_id": CLIENT_ID,
        "temporal_token_client_secret": SecretStr(CLIENT_SECRET),
    } | overrides
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def _dev_client(dev_env: WorkflowEnvironment, tmp_path: Path,
                      endpoint: TokenEndpoint) -> Client:
    target = dev_env.client.service_client.config.target_host
    settings = _settings(tmp_path, endpoint, target, dev_env.client.namespace)
    return await connect(settings, TEST_KEYRING)


async def _until_header_changes(client: Client, current: str, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        header = str(client.rpc_metadata.get("authorization"))
        if header != current:
            return header
        await asyncio.sleep(0.05)
    raise AssertionError(f"the token was not replaced within {within} s")


@pytest.mark.parametrize(("expires_in", "after"), [
    (3600, 3240),  # a tenth of the lifetime (360 s) before expiry
    (600, 540),  # 60 s before
    (300, 240),
    (90, 45),  # never before half the lifetime
    (4, 2),
])
def test_the_token_is_renewed_60_s_or_a_tenth_before_it_expires(
    expires_in: float, after: float
) -> None:
    assert refresh_after(expires_in) == after


async def test_a_token_is_obtained_by_the_client_credentials_grant(
    tmp_path: Path, endpoint: TokenEndpoint
) -> None:
    source = TokenSource.from_settings(_settings(tmp_path, endpoint,
                                                 temporal_token_scope=SCOPE))
    assert source is not None
    token = await source.fetch()
    assert token.value == endpoint.issued[-1] and token.expires_in == endpoint.lifetime
    assert endpoint.forms == [{"grant_type": "client_credentials", "scope": SCOPE}]
    claims = await endpoint.verify(token.value)
    assert claims["permissions"] == ["dsr:write"]
    assert claims["sub"] == f"service-account-{CLIENT_ID}"


async def test_connect_attaches_the_token_and_renews_it_before_it_expires(
    dev_env: WorkflowEnvironment, tmp_path: Path, endpoint: TokenEndpoint
) -> None:
    client = await _dev_client(dev_env, tmp_path, endpoint)
    refresher = refresher_of(client)
    assert refresher is not None
    try:
        (first,) = endpoint.issued
        assert client.rpc_metadata["authorization"] == f"Bearer {first}"
        first_exp = (await endpoint.verify(first))["exp"]
        await client.count_workflows()  # calls go out with it (the dev server ignores it)

        header = await _until_header_changes(client, f"Bearer {first}", endpoint.lifetime + 2)
        second = endpoint.issued[1]
        assert header == f"Bearer {second}"
        assert (await endpoint.verify(second))["permissions"] == PERMISSIONS
        # Asked for after the margin, and before the first one expired.
        assert endpoint.issued_at[1] - endpoint.issued_at[0] >= refresh_after(
            endpoint.lifetime) - 0.5
        assert endpoint.issued_at[1] < first_exp
        await client.count_workflows()  # the client keeps working with the new header
        assert refresher.refreshed == 1
    finally:
        await refresher.stop()


async def test_a_failed_renewal_keeps_the_token_and_retries_before_it_expires(
    dev_env: WorkflowEnvironment, tmp_path: Path, endpoint: TokenEndpoint
) -> None:
    client = await _dev_client(dev_env, tmp_path, endpoint)
    refresher = refresher_of(client)
    assert refresher is not None
    (first,) = endpoint.issued
    first_exp = (await endpoint.verify(first))["exp"]
    endpoint.failing = True
    try:
        with structlog.testing.capture_logs() as logs:
            while not any("renewal failed" in entry["event"] for entry in logs):
                await asyncio.sleep(0.05)
            assert client.rpc_metadata["authorization"] == f"Bearer {first}"
            warning = next(entry for entry in logs if "renewal failed" in entry["event"])
            assert warning["log_level"] == "warning" and "HTTP 503" in warning["error"]
            endpoint.failing = False
            header = await _until_header_changes(client, f"Bearer {first}", endpoint.lifetime)
        assert header == f"Bearer {endpoint.issued[-1]}"
        assert endpoint.issued_at[-1] < first_exp, "renewed only after the token expired"
    finally:
        await refresher.stop()


async def test_a_refused_client_secret_fails_before_connecting_naming_the_setting(
    tmp_path: Path, endpoint: TokenEndpoint
) -> None:
    settings = _settings(tmp_path, endpoint,
                         temporal_token_client_secret=SecretStr("not-the-secret"))
    with pytest.raises(TokenError) as refused:
        await connect(settings, TEST_KEYRING)  # 127.0.0.1:1: no Temporal was needed to fail
    message = str(refused.value)
    assert f"DSR_TEMPORAL_TOKEN_URL ({endpoint.url}) refused the client" in message
    assert f"DSR_TEMPORAL_TOKEN_CLIENT_ID={CLIENT_ID!r}" in message
    assert "invalid_client (Invalid client credentials)" in message
    assert "check DSR_TEMPORAL_TOKEN_CLIENT_SECRET" in message
    assert "not-the-secret" not in message


async def test_setup_cluster_job_reports_a_refused_client_in_one_line(
    tmp_path: Path, endpoint: TokenEndpoint
) -> None:
    """What the dsr-setup Job's log shows: exit 2, one line naming the setting."""
    env = {"DSR_DATA_DIR": str(tmp_path), "DSR_TEMPORAL_ADDRESS": "127.0.0.1:1",
           "DSR_PAYLOAD_KEYS": TEST_KEY_SPEC, "DSR_TEMPORAL_TOKEN_URL": endpoint.url,
           "DSR_TEMPORAL_TOKEN_CLIENT_ID": CLIENT_ID,
           "DSR_TEMPORAL_TOKEN_CLIENT_SECRET": "not-the-secret"}
    # In a thread: the command runs its own event loop while this one serves the endpoint.
    result = await asyncio.to_thread(CliRunner().invoke, starter.app, ["setup-cluster"],
                                     env=env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: the token endpoint DSR_TEMPORAL_TOKEN_URL")
    assert "check DSR_TEMPORAL_TOKEN_CLIENT_SECRET" in " ".join(result.stderr.split())


async def test_a_refused_scope_names_the_scope_setting(
    tmp_path: Path, endpoint: TokenEndpoint
) -> None:
    source = TokenSource.from_settings(_settings(tmp_path, endpoint,
                                                 temporal_token_scope="everything"))
    assert source is not None
    with pytest.raises(TokenError, match=r"refused the scope DSR_TEMPORAL_TOKEN_SCOPE="):
        await source.fetch()


async def test_without_expires_in_the_lifetime_is_the_tokens_exp(
    tmp_path: Path, endpoint: TokenEndpoint
) -> None:
    endpoint.answers_expires_in = False
    endpoint.lifetime = 30
    source = TokenSource.from_settings(_settings(tmp_path, endpoint))
    assert source is not None
    token = await source.fetch()
    assert 28 <= token.expires_in <= 30  # exp is whole seconds


async def test_an_unreachable_token_endpoint_names_the_url_setting(
    tmp_path: Path, endpoint: TokenEndpoint, unused_tcp_port: int
) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}/token"
    source = TokenSource.from_settings(_settings(tmp_path, endpoint, temporal_token_url=url))
    assert source is not None
    with pytest.raises(TokenError, match=rf"cannot reach the token endpoint "
                                         rf"DSR_TEMPORAL_TOKEN_URL \({url}\)"):
        await source.fetch()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"temporal_token_client_secret": None}, "needs DSR_TEMPORAL_TOKEN_CLIENT_ID and "
                                             "DSR_TEMPORAL_TOKEN_CLIENT_SECRET"),
    ({"temporal_token_url": None}, "need DSR_TEMPORAL_TOKEN_URL"),
    ({"temporal_token_url": "http://login.example/token"}, "https://"),
    ({"temporal_api_key": SecretStr("k")}, "set one"),
    ({"temporal_address": "temporal-frontend.temporal.svc.cluster.local:7233"},
     "only over TLS"),
])
def test_incomplete_or_unsafe_token_settings_are_refused(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    endpoint = TokenEndpoint()
    endpoint.issuer.url = "http://127.0.0.1:8999"
    with pytest.raises(ValidationError, match=message):
        _settings(tmp_path, endpoint, **overrides)


def test_over_tls_a_cluster_address_is_accepted(tmp_path: Path) -> None:
    endpoint = TokenEndpoint()
    endpoint.issuer.url = "https://login.group.example/realms/privacy"
    settings = _settings(tmp_path, endpoint, temporal_tls=True,
                         temporal_address="temporal-frontend.temporal.svc.cluster.local:7233")
    assert TokenSource.from_settings(settings) is not None
