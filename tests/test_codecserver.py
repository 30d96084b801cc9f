"""Codec server: decodes with a session, refuses without, refuses another origin; the one-time
session link (the CLI that opens, lists and ends sessions: ``tests/test_ui_session_cli.py``).

A real aiohttp server on a port, the real ``EncryptionCodec``, a real SQLite app database for
the sessions. Bearer tokens (OIDC, a local issuer serving its JWKS) are in
``tests/test_codec_oidc.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from dsr import sessions
from dsr.codec import REFUSAL_METADATA, REFUSED_ENCODING, EncryptionCodec
from dsr.database import make_engine
from dsr.keyring import Keyring, new_key_entry
from dsr.ledger import LedgerEntry
from dsr.serverkeys import ServerKeys
from dsr.settings import Settings
from services import codec_server as codecserver

SECRET = "codec-test-key-7f3a9c2e41b8d06f5a1c3e9b7d2f4a68"
OFFICER = "officer.tan"
UI = "http://localhost:8233"
KEY_SPEC = ",".join(new_key_entry(key_id) for key_id in ("codec-old", "codec-new"))
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
def settings(tmp_path: Path) -> Settings:
    return _settings(tmp_path)


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


def _session_cookie(
    engine: Engine, settings: Settings, hours: int = 8, now: datetime | None = None
) -> str:
    """A session opened and its link exchanged, as the browser does: the cookie's value."""
    opened = sessions.open_session(engine, settings.server_keys, OFFICER, hours, now=now)
    exchanged = sessions.exchange_link(engine, settings.server_keys, opened.token, now=now)
    assert isinstance(exchanged, sessions.Exchanged)
    return exchanged.cookie


# With a session -----------------------------------------------------------------------------


async def test_a_session_decodes_but_may_not_encode(
    client: TestClient[Any, Any], settings: Settings, engine: Engine, codec: CountingCodec
) -> None:
    headers = JSON_HEADERS | _cookie(_session_cookie(engine, settings)) | {"Origin": UI}

    decoded = await client.post(
        "/default/decode", json=_body(await _encrypted(codec)), headers=headers
    )
    assert decoded.status == 200, await decoded.text()
    assert decoded.headers["Access-Control-Allow-Origin"] == UI
    assert decoded.headers["Access-Control-Allow-Credentials"] == "true"
    assert _payloads(await decoded.json()) == [_plain()]

    for path in ("/encode", "/default/encode"):
        encoded = await client.post(path, json=_body(_plain()), headers=headers)
        assert encoded.status == 403
        error = (await encoded.json())["error"]
        assert "administrators" in error and "session carries no role" in error


async def test_the_temporal_cli_decodes_without_an_origin(
    client: TestClient[Any, Any], settings: Settings, engine: Engine, codec: CountingCodec
) -> None:
    cookie = _session_cookie(engine, settings)
    response = await client.post(
        "/decode", json=_body(await _encrypted(codec), _plain()), headers=_cookie(cookie)
    )
    assert response.status == 200
    assert _payloads(await response.json()) == [_plain(), _plain()]
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_an_expired_or_revoked_session_or_an_unopened_link_is_refused(
    client: TestClient[Any, Any], settings: Settings, engine: Engine, codec: CountingCodec
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    expired = _session_cookie(engine, settings, hours=2, now=long_ago)
    revoked = _session_cookie(engine, settings)
    live = sessions.live_sessions(engine)
    assert len(live) == 1 and live[0].link_used
    assert sessions.revoke(engine, settings.server_keys, live[0].session_id, "admin")
    assert not sessions.revoke(engine, settings.server_keys, live[0].session_id, "admin")
    unopened = sessions.open_session(engine, settings.server_keys, OFFICER, 8).token
    body = _body(await _encrypted(codec))

    for cookie in (expired, revoked, unopened, "not-a-session"):
        response = await client.post("/decode", json=body, headers=JSON_HEADERS | _cookie(cookie))
        assert response.status == 401
        assert "ui-session" in (await response.json())["error"]
    assert codec.decoded == 0


@pytest.mark.parametrize("case", ["unknown", "expired", "revoked", "used"])
async def test_a_session_link_that_does_not_open_says_why(
    client: TestClient[Any, Any], settings: Settings, engine: Engine, case: str
) -> None:
    now = datetime.now(UTC)
    when = now - timedelta(hours=3) if case == "expired" else now
    opened = sessions.open_session(engine, settings.server_keys, OFFICER, 2, now=when)
    if case == "revoked":
        assert sessions.revoke(engine, settings.server_keys, opened.session_id, "admin")
    if case == "used":
        assert isinstance(sessions.exchange_link(engine, settings.server_keys, opened.token),
                          sessions.Exchanged)
    token = "not-a-link" if case == "unknown" else opened.token

    page = await client.get(f"/session/{token}", headers=_cookie("the-browser's-own"))
    assert page.status == 403
    text = await page.text()
    assert "python starter.py ui-session" in text
    assert {"unknown": "not valid", "expired": "has expired", "revoked": "was ended",
            "used": "already opened"}[case] in text
    assert codecserver.SESSION_COOKIE not in page.cookies  # a cookie held is left alone
    assert page.headers["Cache-Control"] == "no-store"


def test_sessions_store_only_keyed_hashes_and_are_in_the_ledger(
    settings: Settings, engine: Engine
) -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    opened = sessions.open_session(engine, settings.server_keys, OFFICER, 8, now=now)
    exchanged = sessions.exchange_link(engine, settings.server_keys, opened.token, now)
    assert isinstance(exchanged, sessions.Exchanged) and exchanged.cookie != opened.token
    cookie = exchanged.cookie
    later = now + timedelta(hours=7)
    assert sessions.officer_for(engine, settings.server_keys, cookie, later) == OFFICER
    keys = settings.server_keys
    assert sessions.officer_for(engine, keys, cookie, later + timedelta(hours=1)) is None
    other_secret = ServerKeys(b"another-server-key-4f9c2a7e1b8d3f6a5c0e9b2d")
    assert sessions.officer_for(engine, other_secret, cookie, now) is None
    with Session(engine) as session:
        record = session.scalars(select(sessions.OfficerSessionRecord)).one()
    stored = json.dumps([str(getattr(record, c.name)) for c in record.__table__.columns])
    assert opened.token not in stored and cookie not in stored
    assert record.session_id == opened.session_id and record.officer == OFFICER
    assert record.link_used_at == now and record.cookie_hash and record.link_hash
    assert sessions.revoke_all(engine, settings.server_keys, "admin", OFFICER, now) == 1
    assert sessions.officer_for(engine, settings.server_keys, cookie, now) is None
    with Session(engine) as session:
        entries = session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq)).all()
    assert [(e.kind, e.actor) for e in entries] == [
        ("ui_session_opened", OFFICER), ("ui_session_revoked", "admin")]
    assert entries[0].detail == {"session": opened.session_id, "hours": 8,
                                 "expires_at": (now + timedelta(hours=8)).isoformat()}
    assert entries[1].detail == {"sessions": [opened.session_id], "officer": OFFICER}
    text = json.dumps([e.detail for e in entries])
    assert opened.token not in text and cookie not in text


async def test_a_bearer_token_is_refused_where_oidc_is_not_configured(
    client: TestClient[Any, Any], codec: CountingCodec
) -> None:
    response = await client.post(
        "/decode",
        json=_body(await _encrypted(codec)),
        headers=JSON_HEADERS | {"Authorization": "Bearer eyJ.eyJ.sig"},
    )
    assert response.status == 401
    assert "OIDC is not configured" in (await response.json())["error"]
    assert codec.decoded == 0


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
    cookie = _session_cookie(engine, settings)
    evil = {"Origin": "http://evil.example"}
    response = await client.post(
        "/decode", json=_body(await _encrypted(codec)),
        headers=JSON_HEADERS | _cookie(cookie) | evil,
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
    cookie = _session_cookie(engine, settings)
    response = await client.post("/decode", data=body, headers=JSON_HEADERS | _cookie(cookie))
    assert response.status == 400
    assert message in (await response.json())["error"]
    assert codec.decoded == 0


async def test_a_payload_that_does_not_decrypt_is_shown_refused_without_its_content(
    client: TestClient[Any, Any], settings: Settings, engine: Engine, codec: CountingCodec
) -> None:
    cookie = _session_cookie(engine, settings)
    tampered = await _encrypted(codec)
    tampered.data = tampered.data[:-1] + bytes([tampered.data[-1] ^ 1])
    response = await client.post("/decode", json=_body(tampered, await _encrypted(codec)),
                                 headers=_cookie(cookie))
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
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened = sessions.open_session(engine, settings.server_keys, OFFICER, 8)
    stamped = await _encrypted(codec)
    stamped.metadata["workflow-id"] = b"DSR-20260302-0001"
    with structlog.testing.capture_logs() as logs:
        monkeypatch.setattr(codecserver, "log", structlog.get_logger())
        link = await client.get(f"/session/{opened.token}")
        cookie = link.cookies[codecserver.SESSION_COOKIE].value
        by_session = await client.post(
            "/other-ns/decode",
            json=_body(stamped, await _encrypted(codec)),
            headers=JSON_HEADERS | {"X-Workflow-Id": "DSR-20260302-0002"},
        )
        again = await client.get(f"/session/{opened.token}")
        refused = await client.post("/encode", json=_body(_plain()), headers=JSON_HEADERS)
    assert link.status == 200 and by_session.status == 200
    assert again.status == 403 and refused.status == 403
    decodes = [entry for entry in logs if entry["event"] == "codec decode"]
    assert decodes[0]["log_level"] == "info"
    assert {
        k: decodes[0][k]
        for k in ("officer", "auth", "session", "namespace", "payloads", "workflow_id")
    } == {
        "officer": OFFICER,
        "auth": "session",
        "session": opened.session_id,
        "namespace": "other-ns",
        "payloads": 2,
        "workflow_id": "DSR-20260302-0001, DSR-20260302-0002",
    }
    events = {entry["event"]: entry for entry in logs}
    assert events["ui session link exchanged for a cookie"]["session"] == opened.session_id
    assert events["ui session link refused"]["reason"] == "used"
    assert events["codec encode refused"]["status"] == 403
    assert events["codec encode refused"]["officer"] == OFFICER
    text = json.dumps(logs, default=str)
    assert "ana.silva" not in text and "Ana Silva" not in text
    assert base64.b64encode(PERSONAL).decode() not in text
    assert opened.token not in text and cookie not in text


# The CLI's session link -------------------------------------------------------------------


async def test_the_cookie_is_secure_where_the_codec_server_is_reached_over_https(
    tmp_path: Path, engine: Engine, codec: CountingCodec
) -> None:
    settings = _settings(tmp_path, codec_public_url="https://codec.dsr.group.example/")
    assert codecserver.codec_endpoint(settings) == "https://codec.dsr.group.example"
    opened = sessions.open_session(engine, settings.server_keys, OFFICER, 1)
    link = codecserver.session_link(settings, opened.token)
    assert link == f"https://codec.dsr.group.example/session/{opened.token}"
    client = await _client(settings, engine, codec)
    try:
        # Behind the TLS proxy; a client's X-Forwarded-Proto is not what decides.
        page = await client.get(f"/session/{opened.token}", headers={"X-Forwarded-Proto": "http"})
        assert page.status == 200
        assert "Secure" in page.headers["Set-Cookie"]
        assert "HttpOnly" in page.headers["Set-Cookie"]
    finally:
        await client.close()
    plain = await _client(_settings(tmp_path), engine, codec)
    try:
        other = sessions.open_session(engine, settings.server_keys, OFFICER, 1)
        page = await plain.get(f"/session/{other.token}", headers={"X-Forwarded-Proto": "https"})
        assert page.status == 200 and "Secure" not in page.headers["Set-Cookie"]
    finally:
        await plain.close()


async def test_start_serves_on_the_codec_port(
    tmp_path: Path, engine: Engine, codec: CountingCodec, unused_tcp_port: int
) -> None:
    settings = _settings(tmp_path, codec_port=unused_tcp_port)
    runner = await codecserver.start(settings, engine=engine)
    try:
        import aiohttp

        cookie = _session_cookie(engine, settings, hours=1)
        async with aiohttp.ClientSession() as http:
            response = await http.post(
                f"http://127.0.0.1:{unused_tcp_port}/decode",
                json=_body(await _encrypted(codec)),
                headers=_cookie(cookie),
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

    settings = _settings(tmp_path, codec_port=8181, codec_bind_host="0.0.0.0")

    async def in_use(_: Settings) -> None:
        raise OSError(errno.EADDRINUSE, "Address already in use")

    monkeypatch.setattr(codecserver, "configure", lambda: None)
    monkeypatch.setattr(codecserver, "load_settings", lambda: settings)
    monkeypatch.setattr(codecserver, "run_codec_server", in_use)
    with pytest.raises(SystemExit) as exit_:
        codecserver.main()
    assert str(exit_.value) == (
        "error: cannot listen on 0.0.0.0:8181 (Address already in use); "
        "set DSR_CODEC_PORT to a free port"
    )
