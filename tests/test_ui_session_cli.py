"""``ui-session`` as officers run it: each on their own machine, holding only their key and
credential, through the officer service. An officer opens a session for themself and lists and
ends only their own; an administrator lists and ends anyone's; the link opens the codec
server's session in a browser once."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

import starter
from dsr.assertions import Role
from dsr.database import make_engine
from dsr.ledger import LedgerEntry
from dsr.settings import Settings
from dsr.signers import officer_signer
from services import codec_server as codecserver
from services.mail_server import free_port
from tests.conftest import officer_service_thread, write_officer_files
from tests.test_codecserver import (
    JSON_HEADERS,
    UI,
    CountingCodec,
    _body,
    _client,
    _cookie,
    _encrypted,
    _payloads,
    _plain,
    _settings,
)
from tests.test_codecserver import codec as codec  # the fixture

OFFICERS = {"officer.ada": [Role.OFFICER], "officer.bob": [Role.OFFICER, Role.APPROVER],
            "admin.lee": [Role.ADMINISTRATOR]}


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """The officer service (no Temporal here) and three officers logged in, each on their
    own machine (``tmp_path/<officer>``)."""
    port = free_port()
    settings = _settings(tmp_path, officer_service_port=port,
                         officer_service_url=f"http://127.0.0.1:{port}",
                         temporal_address="127.0.0.1:9")
    with officer_service_thread(settings):
        for officer_id, roles in OFFICERS.items():
            write_officer_files(officer_signer(settings, officer_id, roles),
                                tmp_path / officer_id)
        yield settings


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return make_engine(settings.app_database_url)


@pytest.fixture
async def client(settings: Settings, engine: Engine,
                 codec: CountingCodec) -> AsyncIterator[TestClient[Any, Any]]:
    client = await _client(settings, engine, codec)
    yield client
    await client.close()


async def ui_session(settings: Settings, officer_id: str, *args: str) -> Result:
    """``starter.py ui-session`` on ``officer_id``'s machine: no server secret, no payload
    key, no database; only the officer service's address."""
    home = settings.data_dir / officer_id
    env = {"DSR_DATA_DIR": str(home), "DSR_SETTINGS_FILE": str(home / "absent.env"),
           "DSR_OFFICER_SERVICE_URL": settings.officer_service_url, "COLUMNS": "400",
           "DSR_HMAC_KEY": None, "DSR_PAYLOAD_KEYS": None, "DSR_DATABASE_URL": None}
    return await asyncio.to_thread(
        lambda: CliRunner().invoke(starter.app, ["ui-session", *args], env=env))


async def opened(settings: Settings, officer_id: str) -> dict[str, Any]:
    result = await ui_session(settings, officer_id, "--json")
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


async def test_the_cli_link_opens_a_session_in_the_browser_once(
    client: TestClient[Any, Any], settings: Settings, engine: Engine, codec: CountingCodec
) -> None:
    result = await ui_session(settings, "officer.ada")
    assert result.exit_code == 0, result.output
    assert "Include cross-origin credentials" in result.output
    assert "http://localhost:8081" in result.output and settings.web_ui_url in result.output
    found = re.search(r"(http://\S+)/session/(\S+)", result.output)
    assert found is not None, result.output
    assert found[1] == codecserver.codec_endpoint(settings) == "http://localhost:8081"
    session_id = re.search(r"Web UI session (\w+) for officer\.ada", result.output)
    assert session_id is not None and f"--revoke {session_id[1]}" in result.output

    page = await client.get(f"/session/{found[2]}")
    assert page.status == 200
    assert "Session open for officer.ada until" in await page.text()
    assert page.headers["Cache-Control"] == "no-store"
    cookie = page.cookies[codecserver.SESSION_COOKIE]
    assert cookie.value and cookie.value != found[2]  # a fresh value, not the link's
    assert cookie["httponly"] is True and cookie["samesite"] == "Lax"
    assert not cookie["secure"] and cookie["path"] == "/"  # plain http on localhost
    assert 8 * 3600 - 60 < int(cookie["max-age"]) <= 8 * 3600

    # The browser now sends the cookie with the Web UI's fetches (the client's cookie jar).
    decoded = await client.post(
        "/decode", json=_body(await _encrypted(codec)), headers=JSON_HEADERS | {"Origin": UI})
    assert decoded.status == 200
    assert _payloads(await decoded.json()) == [_plain()]

    # The link works once: opened again (another browser, or this one), it is refused.
    again = await client.get(f"/session/{found[2]}")
    assert again.status == 403 and "already opened" in await again.text()
    client.session.cookie_jar.clear()  # the link is no cookie either
    link_as_cookie = await client.post("/decode", json=_body(await _encrypted(codec)),
                                       headers=_cookie(found[2]))
    assert link_as_cookie.status == 401

    bob = await opened(settings, "officer.bob")
    assert bob["officer"] == "officer.bob" and bob["hours"] == settings.ui_session_hours
    assert bob["link"].startswith("http://localhost:8081/session/")
    refused = await ui_session(settings, "admin.lee")
    assert refused.exit_code == 1
    assert "open_ui_session needs the role officer or approver or auditor" in refused.output
    with Session(engine) as session:
        actors = session.scalars(select(LedgerEntry.actor).where(
            LedgerEntry.kind == "ui_session_opened")).all()
    assert actors == ["officer.ada", "officer.bob"], "who signed, not a typed name"


async def test_each_officer_ends_their_own_sessions_and_an_administrator_anyones(
    client: TestClient[Any, Any], settings: Settings, engine: Engine, codec: CountingCodec
) -> None:
    ada = await opened(settings, "officer.ada")
    bob = await opened(settings, "officer.bob")
    bob_again = await opened(settings, "officer.bob")
    cookies = {}
    for name, session_opened in (("ada", ada), ("bob", bob), ("bob again", bob_again)):
        page = await client.get(session_opened["link"].removeprefix("http://localhost:8081"))
        assert page.status == 200
        cookies[name] = page.cookies[codecserver.SESSION_COOKIE].value
        client.session.cookie_jar.clear()

    async def decodes(name: str) -> bool:
        response = await client.post("/decode", json=_body(await _encrypted(codec)),
                                     headers=_cookie(cookies[name]))
        return response.status == 200

    async def listed(officer_id: str, *args: str) -> list[tuple[str, str]]:
        result = await ui_session(settings, officer_id, "--list", "--json", *args)
        assert result.exit_code == 0, result.output
        return [(row["session"], row["officer"]) for row in json.loads(result.stdout)]

    assert await listed("officer.ada") == [(ada["session"], "officer.ada")]
    assert await listed("admin.lee", "--everyone") == [
        (ada["session"], "officer.ada"), (bob["session"], "officer.bob"),
        (bob_again["session"], "officer.bob")]
    assert [s for s, _ in await listed("admin.lee", "--officer", "officer.bob")] == [
        bob["session"], bob_again["session"]]
    for args in (("--list", "--officer", "officer.bob"), ("--revoke-all", "--everyone")):
        refused = await ui_session(settings, "officer.ada", *args)
        assert refused.exit_code == 1 and "only an administrator" in refused.output, args
    others = await ui_session(settings, "officer.ada", "--revoke", bob["session"])
    assert others.exit_code == 2 and "of yours" in others.output
    assert await decodes("bob") and await decodes("ada")

    revoked = await ui_session(settings, "officer.bob", "--revoke", bob["session"])
    assert revoked.exit_code == 0 and "ended 1 session" in revoked.output
    assert not await decodes("bob") and await decodes("bob again")
    again = await ui_session(settings, "officer.bob", "--revoke", bob["session"])
    assert again.exit_code == 2 and "no live session" in again.output
    by_admin = await ui_session(settings, "admin.lee", "--revoke-all", "--officer",
                                "officer.bob", "--json")
    assert json.loads(by_admin.stdout) == {"ended": 1}
    assert not await decodes("bob again") and await decodes("ada")
    assert "ended 1 session" in (await ui_session(settings, "officer.ada", "--revoke-all")).output
    assert not await decodes("ada")
    assert "no live session" in (await ui_session(settings, "admin.lee", "--list",
                                                  "--everyone")).output
    for args in (("--revoke", "x", "--revoke-all"), ("--officer", "officer.bob"),
                 ("--revoke", "not-a-session-id")):
        bad = await ui_session(settings, "officer.ada", *args)
        assert bad.exit_code == 2, (args, bad.output)
    with Session(engine) as session:
        ended = session.scalars(select(LedgerEntry).where(
            LedgerEntry.kind == "ui_session_revoked")).all()
    assert [(entry.actor, entry.detail) for entry in ended] == [
        ("officer.bob", {"session": bob["session"], "officer": "officer.bob"}),
        ("admin.lee", {"sessions": [bob_again["session"]], "officer": "officer.bob"}),
        ("officer.ada", {"sessions": [ada["session"]], "officer": "officer.ada"}),
    ]
