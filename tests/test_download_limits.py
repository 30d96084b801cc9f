"""The download server's guards: the package is sent only for a POST from its own landing
page, and within the per-link and per-client rate limits. A refused POST downloads nothing
and records nothing, and its log line names neither the link's token nor the client's
address. A real aiohttp server on a free port, a real SQLite app database, the sealed blob
store; the limits' clock is the test's, so a window passes without sleeping. Last, the
landing page's button in headless Chromium (skipped without it, except on CI)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dsr import package_links
from dsr.blobstore import BlobStore
from dsr.database import make_engine
from dsr.ledger import LedgerEntry
from dsr.sealedblobs import sealed_blob_store
from dsr.settings import Settings
from services import download_server as downloadserver
from services.mail_server import free_port
from services.ratelimit import SlidingWindowLimiter, client_address
from tests.conftest import TEST_KEY_SPEC, captured_logs

REQUEST = "REQ-GUARD-1"
CONTENT = b"PK\x03\x04 the package of ana.silva@example.com"
OWN = "https://privacy.example"
Client = TestClient[Any, Any]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, hmac_key="guard-test-key-8b3e6f1a9c4d2e7b5f0a3c8d",
                    payload_keys=TEST_KEY_SPEC, public_base_url=f"{OWN}/dsr/")


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return make_engine(settings.app_database_url)


@pytest.fixture
def blobs(settings: Settings) -> BlobStore:
    store = sealed_blob_store(settings)
    with store.open_writer(package_links.package_key(REQUEST)) as sink:
        sink.write(CONTENT)
    return store


@pytest.fixture
def token(settings: Settings, engine: Engine) -> str:
    return package_links.issue(engine, settings.server_keys, REQUEST, datetime.now(UTC), 5).token


Serve = Callable[..., Any]


@pytest.fixture
async def serve(settings: Settings, engine: Engine,
                blobs: BlobStore) -> AsyncIterator[Serve]:
    """Start the server (settings changed by keyword) on a free port; a client for it."""
    clients: list[Client] = []

    async def start(clock: Clock, **changes: Any) -> Client:
        app = downloadserver.make_app(settings.model_copy(update=changes), engine, blobs, clock)
        client: Client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


def _downloads(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "package_downloaded")).all())


def _clean(logs: list[MutableMapping[str, Any]], *secrets: str) -> None:
    """The log lines carry no token and no client address (nor a part of one)."""
    text = repr(logs)
    for secret in secrets:
        assert secret not in text and secret[:10] not in text


# Origin ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},  # a sandboxed frame, or a page under no-referrer
    {"Origin": "http://privacy.example"},  # another scheme is another origin
    {"Origin": "https://privacy.example.evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": OWN, "Sec-Fetch-Site": "cross-site"},
])
async def test_a_post_from_another_site_downloads_and_records_nothing(
    serve: Serve, engine: Engine, token: str, headers: dict[str, str]
, monkeypatch: pytest.MonkeyPatch) -> None:
    client = await serve(Clock())
    with captured_logs(monkeypatch, downloadserver) as logs:
        refused = await client.post(f"/packages/{token}/download", headers=headers)
    body = await refused.read()
    assert refused.status == 403 and refused.content_type == "text/html"
    assert b"not started from our page" in body and CONTENT not in body
    assert _downloads(engine) == 0
    [line] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert line["reason"] in ("origin", "sec-fetch-site") and len(line["client"]) == 16
    _clean(logs, token, "127.0.0.1")

    fine = await client.post(f"/packages/{token}/download", headers={"Origin": OWN})
    assert fine.status == 200 and await fine.read() == CONTENT, "the refusal cost nothing"
    assert _downloads(engine) == 1


@pytest.mark.parametrize("headers", [
    {"Origin": OWN, "Sec-Fetch-Site": "same-origin"},  # the landing page's button
    {"Origin": "HTTPS://Privacy.Example:443"},  # the same origin, written otherwise
    {"Sec-Fetch-Site": "same-origin"},
    {},  # curl, a script, an old browser: no header to judge by
])
async def test_a_post_from_the_landing_page_or_outside_a_browser_downloads(
    serve: Serve, engine: Engine, token: str, headers: dict[str, str]
) -> None:
    client = await serve(Clock())
    response = await client.post(f"/packages/{token}/download", headers=headers)
    assert response.status == 200 and await response.read() == CONTENT
    assert _downloads(engine) == 1


# Rate limits ----------------------------------------------------------------------------------


async def test_a_link_is_limited_per_minute_and_works_again_after(
    serve: Serve, engine: Engine, token: str
, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    client = await serve(clock, download_posts_per_token=3)
    for _ in range(3):
        response = await client.post(f"/packages/{token}/download")
        assert response.status == 200 and await response.read() == CONTENT
        clock.now += 1
    with captured_logs(monkeypatch, downloadserver) as logs:
        limited = await client.post(f"/packages/{token}/download")
    assert limited.status == 429 and limited.headers["Retry-After"] == "57"
    assert CONTENT not in await limited.read() and _downloads(engine) == 3
    [line] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert (line["limit"], line["retry_after"]) == ("link", 57)
    _clean(logs, token, "127.0.0.1")
    # The limit is the link's: another token still gets its own answer.
    assert (await client.post(f"/packages/{'x' * 43}/download")).status == 404
    assert (await client.get(f"/packages/{token}")).status == 200, "only POSTs count"

    clock.now += 56.5  # the first POST is 59.5 s old: still limited, for half a second more
    again = await client.post(f"/packages/{token}/download")
    assert again.status == 429 and again.headers["Retry-After"] == "1"
    clock.now += 0.5
    after = await client.post(f"/packages/{token}/download")
    assert after.status == 200 and await after.read() == CONTENT
    assert _downloads(engine) == 4


async def test_a_client_is_limited_per_minute_by_address_and_allowed_again_after(
    serve: Serve, engine: Engine, token: str
, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind one proxy (X-Forwarded-For); an IPv6 client by its /64."""
    clock = Clock()
    client = await serve(clock, download_requests_per_client=3, download_proxy_hops=1)
    alice = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}  # her proxy's entry is the last
    page, post = f"/packages/{token}", f"/packages/{token}/download"
    for _ in range(2):
        assert (await client.get(page, headers=alice)).status == 200
    assert (await client.get(f"/packages/{'x' * 43}", headers=alice)).status == 404
    with captured_logs(monkeypatch, downloadserver) as logs:
        limited = await client.post(post, headers=alice)
        assert (await client.get(page, headers=alice)).status == 429
    assert limited.status == 429 and limited.headers["Retry-After"] == "60"
    assert _downloads(engine) == 0, "refused before the link was looked at"
    lines = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry["limit"] for entry in lines] == ["client", "client"]
    _clean(logs, token, "203.0.113.9", "198.51.100.7", "127.0.0.1")

    other = await client.post(post, headers={"X-Forwarded-For": "203.0.113.10"})
    assert other.status == 200 and await other.read() == CONTENT
    for host in range(1, 4):  # three addresses, one /64
        six = {"X-Forwarded-For": f"2001:db8:0:7::{host}"}
        assert (await client.get(page, headers=six)).status == 200
    assert (await client.get(page, headers={"X-Forwarded-For": "2001:db8:0:7::99"})).status \
        == 429
    assert (await client.get(page, headers={"X-Forwarded-For": "2001:db8:0:8::1"})).status \
        == 200

    clock.now += 60
    response = await client.post(post, headers=alice)
    assert response.status == 200 and await response.read() == CONTENT
    assert _downloads(engine) == 2


@pytest.mark.parametrize(("peer", "forwarded", "hops", "address"), [
    ("192.0.2.1", None, 0, "192.0.2.1"),
    ("192.0.2.1", "198.51.100.7", 0, "192.0.2.1"),  # no proxy trusted: the header is ignored
    ("192.0.2.1", "198.51.100.7, 203.0.113.9", 1, "203.0.113.9"),
    ("192.0.2.1", "198.51.100.7, 203.0.113.9", 2, "198.51.100.7"),
    ("192.0.2.1", "203.0.113.9", 2, "192.0.2.1"),  # fewer entries than proxies: the peer
    ("::ffff:192.0.2.1", None, 0, "192.0.2.1"),
    ("2001:db8::1", None, 0, "2001:db8::/64"),
    (None, None, 0, ""),
])
def test_the_client_address(peer: str | None, forwarded: str | None, hops: int,
                            address: str) -> None:
    assert client_address(peer, forwarded, hops) == address


def test_the_limiter_forgets_idle_keys_first_and_stays_bounded() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(1, window=60, clock=clock, max_keys=2)
    assert limiter.hit("a") == 0 and limiter.hit("a") == 60
    clock.now += 61
    assert limiter.hit("b") == 0 and limiter.hit("c") == 0  # "a", idle, is forgotten
    assert limiter.hit("b") == 60 and limiter.hit("c") == 60
    assert limiter.hit("d") == 0  # full of live keys: the least recently used, "b", goes
    assert limiter.hit("c") == 60 and limiter.hit("b") == 0


# The button in a browser ----------------------------------------------------------------------


CHROMIUM = Path("/usr/bin/chromium")  # Debian's, as tests/test_web_ui_browser.py uses it


@pytest.fixture
def browser_available() -> None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing: str | None = "playwright is not installed: pip install -e '.[browser]'"
    else:
        missing = None if CHROMIUM.exists() else f"{CHROMIUM} is missing"
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the download browser test: {missing}", pytrace=False)
    pytest.skip(missing)


async def test_in_a_browser_the_button_downloads_and_another_site_cannot(
    settings: Settings, engine: Engine, blobs: BlobStore, tmp_path: Path,
    browser_available: None,
) -> None:
    """Chromium sends the headers itself: from the landing page the package downloads; from
    a form on another site the POST is refused."""
    from playwright.async_api import async_playwright

    port = free_port()
    own = f"http://localhost:{port}"
    local = settings.model_copy(update={"public_base_url": own})
    token = package_links.issue(engine, local.server_keys, REQUEST, datetime.now(UTC), 5).token
    server = TestServer(downloadserver.make_app(local, engine, blobs), host="127.0.0.1",
                        port=port)

    async def lure(_: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=(
            f'<form method="post" action="{own}/packages/{token}/download">'
            '<button type="submit">Win a prize</button></form>'))

    other = web.Application()  # another site: 127.0.0.1 is not localhost
    other.router.add_get("/", lure)
    async with TestClient(server), TestClient(TestServer(other, host="127.0.0.1")) as evil, \
            async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                   args=["--no-sandbox", "--disable-gpu"])
        page = await browser.new_page(accept_downloads=True)
        await page.goto(f"{own}/packages/{token}")
        async with page.expect_download() as download:
            await page.click("text=Download my data")
        assert Path(await (await download.value).path()).read_bytes() == CONTENT
        assert _downloads(engine) == 1

        await page.goto(str(evil.make_url("/")))
        async with page.expect_navigation():
            await page.click("text=Win a prize")
        assert "not started from our page" in await page.content()
        await browser.close()
    assert _downloads(engine) == 1
