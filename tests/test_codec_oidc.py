"""Codec server: bearer tokens from an OIDC issuer, checked against its JWKS.

A local issuer (an aiohttp app on a free port) serves its discovery document and its JWKS,
whose keys (RSA and EC, made with ``cryptography``) the tests publish, rotate and retire while
the codec server runs; it counts the key set's fetches. The codec server is the real one, with
the real ``EncryptionCodec`` and a SQLite app database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import structlog.testing
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError
from sqlalchemy import Engine
from temporalio.converter import WorkflowSerializationContext

from dsr.codec import NAMESPACE_METADATA, REFUSAL_METADATA, EncryptionCodec
from dsr.database import make_engine
from dsr.keyring import Keyring
from dsr.settings import Settings
from services import codec_server as codecserver
from services import oidc
from tests.test_codecserver import (
    JSON_HEADERS,
    KEY_SPEC,
    UI,
    CountingCodec,
    _body,
    _client,
    _encrypted,
    _payloads,
    _plain,
    _settings,
)

AUDIENCE = "dsr-codec"
SUBJECT = "oidc|4711"
OFFICER_EMAIL = "ada@group.example"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class Issuer:
    """The identity provider: its address, the keys it publishes, and its fetches counted."""

    url: str = ""
    keys: dict[str, PrivateKey] = field(default_factory=dict)
    jwks_fetches: int = 0
    discovery_issuer: str | None = None  # what its discovery document claims (default: url)

    def publish(self, kid: str, key: PrivateKey | None = None) -> PrivateKey:
        self.keys[kid] = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self.keys[kid]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [_jwk(kid, key) for kid, key in self.keys.items()]}

    def token(self, kid: str = "k1", key: PrivateKey | None = None,
              headers: dict[str, Any] | None = None, **claims: Any) -> str:
        now = datetime.now(UTC)
        payload = {
            "iss": self.url, "aud": AUDIENCE, "sub": SUBJECT, "email": OFFICER_EMAIL,
            "email_verified": True, "roles": ["officer"], "typ": "Bearer",
            "iat": now, "exp": now + timedelta(minutes=5),
        } | claims  # fmt: skip
        payload = {k: v for k, v in payload.items() if v is not None}
        key = key or self.keys[kid]
        algorithm = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
        return jwt.encode(payload, key, algorithm=algorithm,
                          headers={"kid": kid, "typ": "JWT"} | (headers or {}))


def _jwk(kid: str, key: PrivateKey) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        public: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return public | {"kid": kid, "use": "sig", "alg": "ES256"}
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return public | {"kid": kid, "use": "sig", "alg": "RS256"}


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    state = Issuer()
    state.publish("k1")

    async def discovery(_: web.Request) -> web.Response:
        issuer = state.discovery_issuer or state.url
        return web.json_response({"issuer": issuer, "jwks_uri": f"{state.url}/jwks"})

    async def jwks(_: web.Request) -> web.Response:
        state.jwks_fetches += 1
        return web.json_response(state.jwks())

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("")).rstrip("/")
    yield state
    await server.close()


def _oidc_settings(tmp_path: Path, issuer: Issuer, **overrides: Any) -> Settings:
    return _settings(tmp_path, codec_oidc_issuer=issuer.url, codec_oidc_audience=AUDIENCE,
                     **overrides)


@pytest.fixture
def codec() -> CountingCodec:
    return CountingCodec(EncryptionCodec(Keyring.from_spec(KEY_SPEC)))


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(_settings(tmp_path).app_database_url)


@pytest.fixture
async def client(
    tmp_path: Path, issuer: Issuer, engine: Engine, codec: CountingCodec
) -> AsyncIterator[TestClient[Any, Any]]:
    client = await _client(_oidc_settings(tmp_path, issuer), engine, codec)
    yield client
    await client.close()


async def _decode(client: TestClient[Any, Any], codec: CountingCodec, token: str) -> Any:
    headers = JSON_HEADERS | {"Origin": UI, "Authorization": f"Bearer {token}"}
    return await client.post("/decode", json=_body(await _encrypted(codec)), headers=headers)


# Accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize("jwks", ["discovered", "configured"])
async def test_a_valid_token_decodes(
    tmp_path: Path, issuer: Issuer, engine: Engine, codec: CountingCodec, jwks: str
) -> None:
    url = f"{issuer.url}/jwks" if jwks == "configured" else None
    client = await _client(_oidc_settings(tmp_path, issuer, codec_oidc_jwks_url=url),
                           engine, codec)
    try:
        for _ in range(3):
            response = await _decode(client, codec, issuer.token())
            assert response.status == 200, await response.text()
            assert _payloads(await response.json()) == [_plain()]
    finally:
        await client.close()
    assert issuer.jwks_fetches == 1  # cached


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("roles", "auditor"),
        ("groups", ["staff", "approver"]),
        ("realm_access.roles", {"roles": ["administrator"]}),
        ("https://dsr.example/roles", ["officer"]),
    ],
)
async def test_the_role_claim_is_configurable(
    tmp_path: Path, issuer: Issuer, engine: Engine, codec: CountingCodec,
    claim: str, value: Any,
) -> None:
    client = await _client(_oidc_settings(tmp_path, issuer, codec_oidc_role_claim=claim),
                           engine, codec)
    name = claim.split(".")[0] if claim.startswith("realm_access") else claim
    try:
        token = issuer.token(**({"roles": None} | {name: value}))
        response = await _decode(client, codec, token)
        assert response.status == 200, await response.text()
    finally:
        await client.close()


async def test_a_token_without_email_names_its_subject(
    client: TestClient[Any, Any], issuer: Issuer, codec: CountingCodec,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with structlog.testing.capture_logs() as logs:
        monkeypatch.setattr(codecserver, "log", structlog.get_logger())
        response = await _decode(client, codec, issuer.token(email=None, email_verified=None))
    assert response.status == 200
    decoded = next(entry for entry in logs if entry["event"] == "codec decode")
    assert decoded["officer"] == SUBJECT and decoded["auth"] == "token"


# Refused ----------------------------------------------------------------------------------


def _refusals(issuer: Issuer) -> dict[str, tuple[str, int, str]]:
    """Each case: the token, the status, and what the error must say."""
    past = datetime.now(UTC) - timedelta(hours=2)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "no role claim": (issuer.token(roles=None), 403, "carries no roles claim"),
        "roles not a list": (issuer.token(roles={"a": 1}), 403, "carries no roles claim"),
        "role not allowed": (issuer.token(roles=["requester"]), 403,
                             "do not allow to decode: it needs one of administrator, approver"),
        "email not verified": (issuer.token(email_verified=False), 403, "email is not verified"),
        "email_verified absent": (issuer.token(email_verified=None), 403,
                                  "email is not verified"),
        "expired": (issuer.token(iat=past, exp=past + timedelta(minutes=5)), 401, "has expired"),
        "not yet valid": (issuer.token(nbf=datetime.now(UTC) + timedelta(hours=1)), 401,
                          "not valid yet"),
        "wrong issuer": (issuer.token(iss="https://evil.example/"), 401, "another issuer"),
        "wrong audience": (issuer.token(aud="another-app"), 401, "not for this server"),
        "no subject": (issuer.token(sub=None), 401, "lacks the sub claim"),
        "unknown key": (issuer.token(kid="k-stranger", key=stranger), 401,
                        "not in the issuer's key set"),
        "published kid, other key": (issuer.token(key=stranger), 401,
                                     "signature does not verify"),
        "no kid": (jwt.encode({"sub": "x"}, issuer.keys["k1"], algorithm="RS256"), 401,
                   "no kid"),
        "HS256": (jwt.encode({"sub": "x", "iss": issuer.url, "aud": AUDIENCE},
                             "a-shared-secret-of-at-least-32-bytes!", algorithm="HS256",
                             headers={"kid": "k1"}), 401, "not signed with an algorithm"),
        "ID token (typ claim)": (issuer.token(typ="ID"), 401, "not an access token"),
        "ID token (token_use)": (issuer.token(token_use="id"), 401, "not an access token"),
        "logout token (typ header)": (issuer.token(headers={"typ": "logout+jwt"}), 401,
                                      "not an access token"),
        "garbage": ("not.a.jwt", 401, "not a JWT"),
    }


REFUSAL_CASES = (
    "no role claim", "roles not a list", "role not allowed", "email not verified",
    "email_verified absent", "expired", "not yet valid", "wrong issuer", "wrong audience",
    "no subject", "unknown key", "published kid, other key", "no kid", "HS256",
    "ID token (typ claim)", "ID token (token_use)", "logout token (typ header)", "garbage",
)


@pytest.mark.parametrize("case", REFUSAL_CASES)
async def test_a_bad_token_is_refused_naming_what_is_wrong(
    client: TestClient[Any, Any], issuer: Issuer, codec: CountingCodec,
    monkeypatch: pytest.MonkeyPatch, case: str,
) -> None:
    token, status, message = _refusals(issuer)[case]
    with structlog.testing.capture_logs() as logs:
        monkeypatch.setattr(codecserver, "log", structlog.get_logger())
        response = await _decode(client, codec, token)
    assert response.status == status
    error = (await response.json())["error"]
    assert message in error and "bearer token" in error
    assert response.headers["Access-Control-Allow-Origin"] == UI  # the Web UI can read why
    assert codec.decoded == 0
    refused = next(entry for entry in logs if entry["event"] == "codec decode refused")
    assert refused["reason"] == error and refused["status"] == status
    assert token not in json.dumps(logs, default=str) and token not in error
    if status == 403:
        assert refused["subject"] == SUBJECT


async def test_a_token_with_a_role_not_allowed_by_the_settings(
    tmp_path: Path, issuer: Issuer, engine: Engine, codec: CountingCodec
) -> None:
    settings = _oidc_settings(tmp_path, issuer, codec_oidc_read_roles=["auditor"])
    client = await _client(settings, engine, codec)
    try:
        assert (await _decode(client, codec, issuer.token(roles=["officer"]))).status == 403
        assert (await _decode(client, codec, issuer.token(roles=["auditor"]))).status == 200
    finally:
        await client.close()


# The key set: rotation and retirement -----------------------------------------------------


async def test_a_rotated_key_is_picked_up_without_restart(
    tmp_path: Path, issuer: Issuer, engine: Engine, codec: CountingCodec
) -> None:
    settings = _oidc_settings(tmp_path, issuer, codec_oidc_jwks_refetch_seconds=0)
    client = await _client(settings, engine, codec)
    try:
        assert (await _decode(client, codec, issuer.token())).status == 200
        assert issuer.jwks_fetches == 1
        issuer.publish("k2-ec", ec.generate_private_key(ec.SECP256R1()))
        for _ in range(2):
            response = await _decode(client, codec, issuer.token(kid="k2-ec"))
            assert response.status == 200, await response.text()
        assert issuer.jwks_fetches == 2  # the new kid fetched the set once
        assert (await _decode(client, codec, issuer.token())).status == 200  # k1 still there
        assert issuer.jwks_fetches == 2
    finally:
        await client.close()


async def test_a_key_removed_from_the_jwks_is_refused_once_the_cache_expires(
    tmp_path: Path, issuer: Issuer, engine: Engine, codec: CountingCodec
) -> None:
    settings = _oidc_settings(tmp_path, issuer, codec_oidc_jwks_cache_seconds=1)
    client = await _client(settings, engine, codec)
    try:
        retired = issuer.token()
        assert (await _decode(client, codec, retired)).status == 200
        issuer.publish("k2")
        del issuer.keys["k1"]
        assert (await _decode(client, codec, retired)).status == 200  # the cached set
        await asyncio.sleep(1.2)
        response = await _decode(client, codec, retired)
        assert response.status == 401
        assert "not in the issuer's key set" in (await response.json())["error"]
        assert (await _decode(client, codec, issuer.token(kid="k2"))).status == 200
    finally:
        await client.close()
    assert codec.decoded == 3


async def test_unknown_key_ids_do_not_make_the_server_hammer_the_issuer(
    client: TestClient[Any, Any], issuer: Issuer, codec: CountingCodec
) -> None:
    assert (await _decode(client, codec, issuer.token())).status == 200
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for n in range(5):
        response = await _decode(client, codec, issuer.token(kid=f"made-up-{n}", key=stranger))
        assert response.status == 401
    assert issuer.jwks_fetches == 1  # within codec_oidc_jwks_refetch_seconds (30): no refetch


async def test_an_unreachable_or_foreign_issuer_is_a_503(
    tmp_path: Path, issuer: Issuer, engine: Engine, codec: CountingCodec, unused_tcp_port: int
) -> None:
    down = _oidc_settings(tmp_path, issuer,
                          codec_oidc_jwks_url=f"http://127.0.0.1:{unused_tcp_port}/jwks")
    issuer.discovery_issuer = "https://evil.example"
    for settings, message in ((down, "key set could not be fetched"),
                              (_oidc_settings(tmp_path, issuer), "names another issuer")):
        client = await _client(settings, engine, codec)
        try:
            response = await _decode(client, codec, issuer.token())
            assert response.status == 503
            assert message in (await response.json())["error"]
        finally:
            await client.close()
    assert codec.decoded == 0


# /encode ----------------------------------------------------------------------------------


async def test_encode_is_for_administrators_and_what_it_encodes_binds_nothing(
    client: TestClient[Any, Any], issuer: Issuer
) -> None:
    def headers(roles: list[str]) -> dict[str, str]:
        return JSON_HEADERS | {"Authorization": f"Bearer {issuer.token(roles=roles)}"}

    for roles in (["officer"], ["approver", "auditor"]):
        refused = await client.post("/encode", json=_body(_plain()), headers=headers(roles))
        assert refused.status == 403
        assert "do not allow to encode: it needs one of administrator" in (
            await refused.json())["error"]

    encoded = await client.post("/encode", json=_body(_plain()),
                                headers=headers(["administrator"]))
    assert encoded.status == 200, await encoded.text()
    [payload] = _payloads(await encoded.json())
    assert payload.metadata["encoding"] == b"binary/encrypted"
    assert NAMESPACE_METADATA not in payload.metadata  # bound to no workflow
    in_a_workflow = EncryptionCodec(Keyring.from_spec(KEY_SPEC)).with_context(
        WorkflowSerializationContext(namespace="default", workflow_id="DSR-1"))
    [read] = await in_a_workflow.decode([payload])
    assert read.metadata[REFUSAL_METADATA] == b"unbound"  # what every worker sees


# Settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"codec_oidc_issuer": "https://login.example"}, "DSR_CODEC_OIDC_AUDIENCE"),
        ({"codec_oidc_audience": "dsr-codec"}, "DSR_CODEC_OIDC_ISSUER"),
        ({"codec_oidc_issuer": "http://login.example", "codec_oidc_audience": "a"},
         "https://"),
        ({"codec_oidc_jwks_url": "https://login.example/jwks"}, "needs DSR_CODEC_OIDC_ISSUER"),
        ({"codec_oidc_issuer": "https://login.example", "codec_oidc_audience": "a",
          "codec_oidc_jwks_url": "http://login.example/jwks"}, "https://"),
        ({"codec_oidc_read_roles": []}, "nobody could decode"),
        ({"codec_oidc_role_claim": ""}, "at least 1 character"),
        ({"codec_public_url": "codec.example"}, "http(s)://"),
    ],
)
def test_oidc_settings_are_validated(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _settings(tmp_path, **overrides)


def test_the_verifier_is_off_without_an_issuer(tmp_path: Path) -> None:
    assert not oidc.OidcVerifier(_settings(tmp_path)).enabled
