"""Codec server: decodes with a session or token, refuses without, refuses another origin.

A real aiohttp server on a port, the real ``EncryptionCodec``, a real SQLite app database for
the sessions, RS256 tokens signed by a key generated here, and the CLI's ``ui-session`` link.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import structlog.testing
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec
from typer.testing import CliRunner

import starter
from dsr import codecserver, sessions
from dsr.codec import REFUSAL_METADATA, REFUSED_ENCODING, EncryptionCodec
from dsr.database import make_engine
from dsr.keyring import Keyring, new_key_entry
from dsr.ledger import LedgerEntry
from dsr.settings import Settings

SECRET = "codec-test-secret"
OFFICER = "officer.tan"
UI = "http://localhost:8233"
KEY_SPEC = ",".join(new_key_entry(key_id) for key_id in ("codec-old", "codec-new"))
ISSUER = "https://login.group.example/"
AUDIENCE = "temporal-ui"
PERSONAL = b'{"email": "ana.silva@example.com", "name": "Ana Silva"}'
JSON_HEADERS = {"Content-Type": "application/json", "X-Namespace": "default"}


class CountingCodec(PayloadCodec):
    """The real codec, counting what it is asked to decode: refusals decode nothing."""

    def __init__(self, codec: PayloadCodec) -> None:
        self.codec = codec
        self.decoded = 0

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self.codec.encode(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.decoded += len(payloads)
        return await self.codec.decode(payloads)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def public_key_file(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "oidc-public.pem"
    path.write_bytes(
        signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        hmac_key=SECRET,
        payload_keys=KEY_SPEC,
        officer_name=OFFICER,
        database_url=None,
        **overrides,
    )


@pytest.fixture
def settings(tmp_path: Path, public_key_file: Path) -> Settings:
    return _settings(
        tmp_path,
        codec_oidc_public_key=public_key_file,
        codec_oidc_issuer=ISSUER,
        codec_oidc_audience=AUDIENCE,
    )


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return make_engine(settings.app_database_url)


@pytest.fixture
def codec() -> CountingCodec:
    return CountingCodec(EncryptionCodec(Keyring.from_spec(KEY_SPEC)))


async def _client(settings: Settings, engine: Engine, codec: PayloadCodec) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(
        TestServer(codecserver.make_app(codec, settings, engine), host="127.0.0.1")
    )
    await client.start_server()
    return client


@pytest.fixture
async def client(
    settings: Settings, engine: Engine, codec: CountingCodec
) -> AsyncIterator[TestClient[Any, Any]]:
    client = await _client(settings, engine, codec)
    yield client
    await client.close()


def _body(*payloads: Payload) -> dict[str, Any]:
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


def _payloads(body: dict[str, Any]) -> list[Payload]:
    return [
        Payload(
            metadata={k: base64.b64decode(v) for k, v in item.get("metadata", {}).items()},
            data=base64.b64decode(item.get("data", "")),
        )
        for item in body["payloads"]
    ]


def _plain() -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=PERSONAL)


async def _encrypted(codec: PayloadCodec) -> Payload:
    return (await codec.encode([_plain()]))[0]


def _cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{codecserver.SESSION_COOKIE}={token}"}


def _token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": "oidc|4711",
        "email": "ada@group.example",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=5),
    } | claims
    return jwt.encode(payload, key, algorithm="RS256")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# With a session -----------------------------------------------------------------------------


async def test_encode_then_decode_with_a_session_cookie(
    client: TestClient[Any, Any], settings: Settings, engine: Engine
) -> None:
    token = sessions.open_session(engine, settings.secret, OFFICER, 8)
    headers = JSON_HEADERS | _cookie(token) | {"Origin": UI}

    encoded = await client.post("/encode", json=_body(_plain()), headers=headers)
    assert encoded.status == 200, await encoded.text()
    assert encoded.headers["Access-Control-Allow-Origin"] == UI
    assert encoded.headers["Access-Control-Allow-Credentials"] == "true"
    encrypted = _payloads(await encoded.json())
    assert encrypted[0].metadata["encoding"] == b"binary/encrypted"
    assert b"ana.silva" not in encrypted[0].data

    decoded = await client.post("/default/decode", json=_body(*encrypted), headers=headers)
    assert decoded.status == 200, await decoded.text()
    assert _payloads(await decoded.json()) == [_plain()]


async def test_the_temporal_cli_decodes_without_an_origin(
    client: TestClient[Any, Any], settings: Settings, engine: Engine, codec: CountingCodec
) -> None:
    token = sessions.open_session(engine, settings.secret, OFFICER, 8)
    response = await client.post(
        "/decode", json=_body(await _encrypted(codec), _plain()), headers=_cookie(token)
    )
    assert response.status == 200
    assert _payloads(await response.json()) == [_plain(), _plain()]
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_an_expired_or_revoked_session_is_refused(
    client: TestClient[Any, Any], settings: Settings, engine: Engine, codec: CountingCodec
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    expired = sessions.open_session(engine, settings.secret, OFFICER, 2, now=long_ago)
    revoked = sessions.open_session(engine, settings.secret, OFFICER, 8)
    assert sessions.revoke(engine, settings.secret, revoked)
    assert not sessions.revoke(engine, settings.secret, revoked)
    body = _body(await _encrypted(codec))

    for token in (expired, revoked, "not-a-session"):
        response = await client.post("/decode", json=body, headers=JSON_HEADERS | _cookie(token))
        assert response.status == 401
        assert "ui-session" in (await response.json())["error"]
        link = await client.get(f"/session/{token}")
        assert link.status == 403
        cleared = link.cookies.get(codecserver.SESSION_COOKIE)
        assert cleared is None or cleared.value == ""
    assert codec.decoded == 0


def test_sessions_store_only_a_keyed_hash_and_are_in_the_ledger(
    settings: Settings, engine: Engine
) -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    token = sessions.open_session(engine, settings.secret, OFFICER, 8, now=now)
    assert sessions.officer_for(engine, settings.secret, token, now + timedelta(hours=7)) == OFFICER
    assert sessions.officer_for(engine, settings.secret, token, now + timedelta(hours=8)) is None
    assert sessions.officer_for(engine, b"another-secret", token, now) is None
    with Session(engine) as session:
        record = session.scalars(select(sessions.OfficerSessionRecord)).one()
        entry = session.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "ui_session_opened")
        ).one()
    assert token not in record.token_hash and record.officer == OFFICER
    assert entry.actor == OFFICER and token not in json.dumps(entry.detail)
    assert entry.detail["expires_at"] == (now + timedelta(hours=8)).isoformat()
    assert sessions.revoke_all(engine, settings.secret, OFFICER, now) == 1
    assert sessions.officer_for(engine, settings.secret, token, now) is None


# With a bearer token (OIDC) -----------------------------------------------------------------


async def test_decodes_with_a_valid_bearer_token(
    client: TestClient[Any, Any], codec: CountingCodec, signing_key: rsa.RSAPrivateKey
) -> None:
    headers = JSON_HEADERS | {"Origin": UI} | _bearer(_token(signing_key))
    response = await client.post("/decode", json=_body(await _encrypted(codec)), headers=headers)
    assert response.status == 200, await response.text()
    assert _payloads(await response.json()) == [_plain()]


@pytest.mark.parametrize(
    "case", ["expired", "wrong audience", "wrong issuer", "wrong key", "HS256", "garbage"]
)
async def test_a_bad_bearer_token_is_refused(
    client: TestClient[Any, Any],
    codec: CountingCodec,
    signing_key: rsa.RSAPrivateKey,
    case: str,
) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    token = {
        "expired": lambda: _token(signing_key, iat=past, exp=past + timedelta(minutes=5)),
        "wrong audience": lambda: _token(signing_key, aud="another-app"),
        "wrong issuer": lambda: _token(signing_key, iss="https://evil.example/"),
        "wrong key": lambda: _token(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "HS256": lambda: jwt.encode(
            {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": datetime.now(UTC)},
            "a-shared-secret-of-at-least-32-bytes!",
            algorithm="HS256",
        ),
        "garbage": lambda: "not.a.jwt",
    }[case]()
    headers = JSON_HEADERS | {"Origin": UI} | _bearer(token)
    response = await client.post("/decode", json=_body(await _encrypted(codec)), headers=headers)
    assert response.status == 401
    assert "bearer token" in (await response.json())["error"]
    assert response.headers["Access-Control-Allow-Origin"] == UI  # the Web UI can read why
    assert codec.decoded == 0


async def test_bearer_tokens_are_refused_where_oidc_is_not_configured(
    tmp_path: Path, engine: Engine, codec: CountingCodec, signing_key: rsa.RSAPrivateKey
) -> None:
    client = await _client(_settings(tmp_path), engine, codec)
    try:
        response = await client.post(
            "/decode",
            json=_body(await _encrypted(codec)),
            headers=JSON_HEADERS | _bearer(_token(signing_key)),
        )
        assert response.status == 401
        assert "OIDC is not configured" in (await response.json())["error"]
    finally:
        await client.close()
    assert codec.decoded == 0


def test_oidc_configured_in_part_is_an_error(
    tmp_path: Path, engine: Engine, codec: CountingCodec, public_key_file: Path
) -> None:
    partial = _settings(tmp_path, codec_oidc_public_key=public_key_file)
    with pytest.raises(codecserver.OidcConfigError, match="DSR_CODEC_OIDC_ISSUER"):
        codecserver.make_app(codec, partial, engine)


# Refusals ---------------------------------------------------------------------------------


async def test_refused_without_credentials(
    client: TestClient[Any, Any], codec: CountingCodec
) -> None:
    response = await client.post(
        "/decode", json=_body(await _encrypted(codec)), headers=JSON_HEADERS | {"Origin": UI}
    )
    assert response.status == 401
    assert "Include cross-origin credentials" in (await response.json())["error"]
    encode = await client.post("/encode", json=_body(_plain()), headers=JSON_HEADERS)
    assert encode.status == 401
    assert codec.decoded == 0


async def test_another_origin_is_refused_even_with_a_session(
    client: TestClient[Any, Any], settings: Settings, engine: Engine, codec: CountingCodec
) -> None:
    token = sessions.open_session(engine, settings.secret, OFFICER, 8)
    evil = {"Origin": "http://evil.example"}
    response = await client.post(
        "/decode", json=_body(await _encrypted(codec)), headers=JSON_HEADERS | _cookie(token) | evil
    )
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = await client.options(
        "/decode", headers=evil | {"Access-Control-Request-Method": "POST"}
    )
    assert preflight.status == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert codec.decoded == 0


async def test_preflight_from_the_web_ui_answers_cors(client: TestClient[Any, Any]) -> None:
    for origin in ("http://localhost:8233", "http://127.0.0.1:8233"):
        response = await client.options(
            "/default/decode",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
            },
        )
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        allowed = {
            h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
        }
        assert {"content-type", "x-namespace", "authorization"} <= allowed
        assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == {
            "POST",
            "OPTIONS",
        }
        assert "Origin" in response.headers["Vary"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"this is not json", "not JSON"),
        (b'{"payload": []}', "payloads"),
        (b"[1, 2]", "payloads"),
        (b'{"payloads": [{"data": "!!!not base64"}]}', "not valid Temporal payloads"),
        (b'{"payloads": [{"metadata": "x"}]}', "not valid Temporal payloads"),
    ],
)
async def test_bad_input_is_refused_with_a_message(
    client: TestClient[Any, Any],
    settings: Settings,
    engine: Engine,
    codec: CountingCodec,
    body: bytes,
    message: str,
) -> None:
    token = sessions.open_session(engine, settings.secret, OFFICER, 8)
    response = await client.post("/decode", data=body, headers=JSON_HEADERS | _cookie(token))
    assert response.status == 400
    assert message in (await response.json())["error"]
    assert codec.decoded == 0


async def test_a_payload_that_does_not_decrypt_is_shown_refused_without_its_content(
    client: TestClient[Any, Any], settings: Settings, engine: Engine, codec: CountingCodec
) -> None:
    token = sessions.open_session(engine, settings.secret, OFFICER, 8)
    tampered = await _encrypted(codec)
    tampered.data = tampered.data[:-1] + bytes([tampered.data[-1] ^ 1])
    response = await client.post("/decode", json=_body(tampered, await _encrypted(codec)),
                                 headers=_cookie(token))
    assert response.status == 200  # one bad payload does not hide the others
    refused, readable = _payloads(await response.json())
    assert refused.metadata["encoding"] == REFUSED_ENCODING and not refused.data
    assert refused.metadata[REFUSAL_METADATA] == b"unauthenticated"
    assert readable == _plain()


# The log ----------------------------------------------------------------------------------


async def test_each_decode_is_logged_with_the_officer_and_never_the_data(
    client: TestClient[Any, Any],
    settings: Settings,
    engine: Engine,
    codec: CountingCodec,
    signing_key: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = sessions.open_session(engine, settings.secret, OFFICER, 8)
    stamped = await _encrypted(codec)
    stamped.metadata["workflow-id"] = b"DSR-20260302-0001"
    with structlog.testing.capture_logs() as logs:
        monkeypatch.setattr(codecserver, "log", structlog.get_logger())
        by_session = await client.post(
            "/decode",
            json=_body(stamped, await _encrypted(codec)),
            headers=JSON_HEADERS | _cookie(token),
        )
        by_token = await client.post(
            "/other-ns/decode",
            json=_body(await _encrypted(codec)),
            headers={"X-Workflow-Id": "DSR-20260302-0002"} | _bearer(_token(signing_key)),
        )
        await client.get(f"/session/{token}")
    assert by_session.status == 200 and by_token.status == 200
    decodes = [entry for entry in logs if entry["event"] == "codec decode"]
    assert decodes[0]["log_level"] == "info"
    assert {
        k: decodes[0][k] for k in ("officer", "auth", "namespace", "payloads", "workflow_id")
    } == {
        "officer": OFFICER,
        "auth": "session",
        "namespace": "default",
        "payloads": 2,
        "workflow_id": "DSR-20260302-0001",
    }
    assert decodes[1]["officer"] == "ada@group.example" and decodes[1]["subject"] == "oidc|4711"
    assert decodes[1]["namespace"] == "other-ns"
    assert decodes[1]["workflow_id"] == "DSR-20260302-0002"
    text = json.dumps(logs, default=str)
    assert "ana.silva" not in text and "Ana Silva" not in text
    assert base64.b64encode(PERSONAL).decode() not in text
    assert token not in text


# The CLI's session link -------------------------------------------------------------------


def _cli(settings: Settings, *args: str) -> Any:
    env = {
        "DSR_DATA_DIR": str(settings.data_dir),
        "DSR_HMAC_KEY": SECRET,
        "DSR_SETTINGS_FILE": str(settings.data_dir / "absent.env"),
        "DSR_DATABASE_URL": "",
        "DSR_OFFICER_NAME": OFFICER,
        "COLUMNS": "400",
    }
    return CliRunner().invoke(starter.app, ["ui-session", *args], env=env)


async def test_the_cli_link_opens_a_session_in_the_browser(
    client: TestClient[Any, Any], settings: Settings, engine: Engine, codec: CountingCodec
) -> None:
    result = _cli(settings, "--officer", "Ada Lovelace")
    assert result.exit_code == 0, result.output
    assert "Include cross-origin credentials" in result.output
    found = re.search(r"(http://\S+)/session/(\S+)", result.output)
    assert found is not None, result.output
    assert found[1] == codecserver.codec_endpoint(settings) == "http://localhost:8081"

    page = await client.get(f"/session/{found[2]}")
    assert page.status == 200
    text = await page.text()
    assert "Session open for Ada Lovelace until" in text and "close this tab" in text
    assert page.headers["Cache-Control"] == "no-store"
    cookie = page.cookies[codecserver.SESSION_COOKIE]
    assert cookie.value == found[2]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert 8 * 3600 - 60 < int(cookie["max-age"]) <= 8 * 3600

    # The browser now sends the cookie with the Web UI's fetches (the client's cookie jar).
    decoded = await client.post(
        "/decode", json=_body(await _encrypted(codec)), headers=JSON_HEADERS | {"Origin": UI}
    )
    assert decoded.status == 200
    assert _payloads(await decoded.json()) == [_plain()]

    as_json = json.loads(_cli(settings, "--json").output)
    assert as_json["officer"] == OFFICER and as_json["hours"] == settings.ui_session_hours
    assert as_json["link"].startswith("http://localhost:8081/session/")
    with Session(engine) as session:
        opened = session.scalars(
            select(LedgerEntry.actor).where(LedgerEntry.kind == "ui_session_opened")
        ).all()
    assert opened == ["Ada Lovelace", OFFICER]


async def test_start_serves_on_the_codec_port(
    tmp_path: Path, engine: Engine, codec: CountingCodec, unused_tcp_port: int
) -> None:
    settings = _settings(tmp_path, codec_port=unused_tcp_port)
    runner = await codecserver.start(settings, engine=engine)
    try:
        import aiohttp

        token = sessions.open_session(engine, settings.secret, OFFICER, 1)
        async with aiohttp.ClientSession() as http:
            response = await http.post(
                f"http://127.0.0.1:{unused_tcp_port}/decode",
                json=_body(await _encrypted(codec)),
                headers=_cookie(token),
            )
            assert response.status == 200
            assert _payloads(await response.json()) == [_plain()]
    finally:
        await runner.cleanup()


async def test_start_listens_on_the_configured_bind_host(
    tmp_path: Path, engine: Engine, codec: CountingCodec, unused_tcp_port: int
) -> None:
    # In a container the codec server listens on every interface (DSR_CODEC_BIND_HOST=0.0.0.0).
    settings = _settings(tmp_path, codec_port=unused_tcp_port, codec_bind_host="0.0.0.0")
    runner = await codecserver.start(settings, codec=codec, engine=engine)
    try:
        assert [address[:2] for address in runner.addresses] == [("0.0.0.0", unused_tcp_port)]
    finally:
        await runner.cleanup()


def test_a_port_in_use_names_the_bind_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import dsr.logging
    import dsr.settings

    settings = _settings(tmp_path, codec_port=8181, codec_bind_host="0.0.0.0")

    async def in_use(_: Settings) -> None:
        raise OSError(errno.EADDRINUSE, "Address already in use")

    monkeypatch.setattr(dsr.logging, "configure", lambda: None)
    monkeypatch.setattr(dsr.settings, "load_settings", lambda: settings)
    monkeypatch.setattr(codecserver, "run_codec_server", in_use)
    with pytest.raises(SystemExit) as exit_:
        codecserver.main()
    assert str(exit_.value) == (
        "error: cannot listen on 0.0.0.0:8181 (Address already in use); "
        "set DSR_CODEC_PORT to a free port"
    )
