"""The Temporal Web UI in a real headless browser: encrypted without a session, readable with one.

What a user would check by hand, on the embedded stack (dev server, codec server) started on
free ports with one request workflow whose input names ``browser.check@example.org``:

* without a session, the workflow's page shows the input as the ciphertext stored in Temporal's
  history (and a "Codec Server could not connect" banner), never the subject's email;
* after opening a session link (``python starter.py ui-session``) in the same browser and
  choosing, in the Web UI's codec settings, "use a browser endpoint" with the codec server and
  "Include cross-origin credentials", the same page shows the input as readable JSON; the
  link, opened again, is refused (it works once), and the page still decodes.

The Web UI (2.54) keeps those codec settings in the browser's localStorage: ``endpoint``,
``passAccessToken``, ``includeCredentials`` and ``overrideRemoteCodecConfiguration`` (values as
JSON); ``includeCredentials`` counts only with the override and an endpoint set, because the dev
server's ``--ui-codec-endpoint`` always comes with "include credentials" off.

Screenshots go to the test's tmp folder, and to ``$DSR_SAVE_SCREENSHOTS`` when that is set
(``web-ui-encrypted.png``, ``web-ui-decoded.png``). Needs Playwright (the ``browser`` extra) and
Chromium at /usr/bin/chromium: skipped without them, except on CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client

from dsr import sessions
from dsr.codec import ENCODING
from dsr.database import make_engine
from dsr.models import parse_request
from dsr.settings import Settings
from dsr.signers import door_signer
from dsr.temporal import connect
from services import stack
from services import workflow_client as officer
from services.codec_server import codec_endpoint, session_link
from services.mail_server import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SUBJECT_EMAIL = "browser.check@example.org"
REQUEST_ID = "BROWSER-CHECK-1"
OFFICER = "Browser Check"
RENDER_TIMEOUT_MS = 30_000
CIPHERTEXT_PREFIX_CHARS = 32
NO_CODEC_BANNER = "Codec Server could not connect"


def _browser_missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[browser]'"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: apt-get install chromium"
    return None


with contextlib.suppress(ImportError):  # without it, `browser_available` skips (fails on CI)
    from playwright.async_api import (
        Browser,
        BrowserContext,
        Page,
        ViewportSize,
        async_playwright,
        expect,
    )


@pytest.fixture(scope="module", autouse=True)
def browser_available() -> None:
    """Skip the module without Playwright or Chromium; on CI (``CI=true``) fail its tests, so
    a CI machine without the browser never passes silently (and the other modules still run)."""
    missing = _browser_missing()
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the Web UI browser test: {missing}", pytrace=False)
    pytest.skip(missing)


@dataclass(frozen=True)
class Started:
    """The request's workflow, and the start of its input's ciphertext as Temporal stores it."""

    workflow_id: str
    ciphertext: str


# The stack and the request -------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    ui_port = free_port()
    ui = f"http://localhost:{ui_port}"
    return Settings(
        data_dir=tmp_path_factory.mktemp("web-ui"),
        temporal_address=f"127.0.0.1:{free_port()}",
        temporal_ui_port=ui_port,
        smtp_port=free_port(),
        codec_port=free_port(),
        web_ui_url=ui,  # the codec endpoint and the session cookie on the UI's host
        codec_allowed_origins=[ui],
        download_port=free_port(),
    )


@pytest.fixture(scope="module")
def running(settings: Settings) -> Iterator[stack.StackStatus]:
    """Dev server, SMTP and codec server; no worker: the started workflow's input suffices.
    The codec server and this test share the data folder, so its payload key file too."""
    try:
        yield stack.up(settings, [])
    finally:
        stack.down(settings)


@pytest.fixture(scope="module")
async def started(settings: Settings, running: stack.StackStatus) -> Started:
    request = parse_request({
        "request_id": REQUEST_ID,
        "rights": ["access"],
        "identities": [{"type": "email", "value": SUBJECT_EMAIL}],
        "jurisdiction": "EU",
        "channel": "email",
        "requester": {"kind": "subject", "email": SUBJECT_EMAIL},
        "received_at": datetime.now(UTC).isoformat(),
    })  # fmt: skip
    handle = await officer.submit(await connect(settings), settings, request,
                                  door=door_signer(settings, request.channel))
    return Started(handle.id, await _stored_ciphertext(settings, handle.id))


async def _stored_ciphertext(settings: Settings, workflow_id: str) -> str:
    """The input payload as Temporal holds it (read without the codec): encrypted."""
    raw = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    history = await raw.get_workflow_handle(workflow_id).fetch_history()
    payload = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert payload.metadata["encoding"] == ENCODING
    assert SUBJECT_EMAIL.encode() not in payload.data
    return base64.b64encode(payload.data).decode()[:CIPHERTEXT_PREFIX_CHARS]


# The browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


def _workflow_url(settings: Settings, workflow_id: str) -> str:
    return (
        f"http://localhost:{settings.temporal_ui_port}"
        f"/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"
    )


def _codec_settings_script(settings: Settings) -> str:
    """What the Web UI's codec settings dialog stores on Apply: a browser endpoint, the codec
    server, with "Include cross-origin credentials" checked."""
    stored = {
        "endpoint": codec_endpoint(settings),
        "passAccessToken": False,
        "includeCredentials": True,
        "overrideRemoteCodecConfiguration": True,
    }
    lines = [
        f"localStorage.setItem({json.dumps(key)}, {json.dumps(json.dumps(value))});"
        for key, value in stored.items()
    ]
    return "\n".join(lines)


def _open_session_link(settings: Settings) -> str:
    opened = sessions.open_session(
        make_engine(settings.app_database_url), settings.server_keys, OFFICER, hours=1
    )
    return session_link(settings, opened.token)


async def _screenshot(page: Page, folder: Path, name: str) -> Path:
    path = folder / name
    await page.screenshot(path=path)
    wanted = os.environ.get("DSR_SAVE_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(wanted) / name)
    return path


async def _new_context(browser: Browser) -> BrowserContext:
    return await browser.new_context(viewport=ViewportSize(width=1400, height=900))


# The checks ----------------------------------------------------------------------------------


async def test_without_a_session_the_web_ui_shows_only_ciphertext(
    settings: Settings, started: Started, browser: Browser, tmp_path: Path
) -> None:
    context = await _new_context(browser)
    try:
        page = await context.new_page()
        await page.goto(_workflow_url(settings, started.workflow_id))
        await expect(page.get_by_text(started.ciphertext).first).to_be_visible(
            timeout=RENDER_TIMEOUT_MS
        )
        await _screenshot(page, tmp_path, "web-ui-encrypted.png")
        await expect(page.get_by_text(NO_CODEC_BANNER).filter(visible=True)).to_have_count(1)
        text = await page.inner_text("body")
        assert SUBJECT_EMAIL not in text
        assert '"request_id"' not in text
    finally:
        await context.close()


async def test_with_a_session_and_credentials_the_web_ui_shows_the_decoded_input(
    settings: Settings, started: Started, browser: Browser, tmp_path: Path
) -> None:
    context = await _new_context(browser)
    try:
        await context.add_init_script(_codec_settings_script(settings))
        page = await context.new_page()
        link = _open_session_link(settings)
        opened = await page.goto(link)
        assert opened is not None and opened.status == 200
        await expect(page.get_by_text(f"Session open for {OFFICER}")).to_be_visible()
        await page.goto(_workflow_url(settings, started.workflow_id))
        await expect(page.get_by_text(SUBJECT_EMAIL).first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
        await _screenshot(page, tmp_path, "web-ui-decoded.png")
        text = await page.inner_text("body")
        assert f'"request_id": "{REQUEST_ID}"' in text
        assert started.ciphertext not in text
        assert NO_CODEC_BANNER not in text

        # The link works once; opening it again is refused and leaves the cookie it gave.
        again = await page.goto(link)
        assert again is not None and again.status == 403
        await expect(page.get_by_text("already opened")).to_be_visible()
        await page.goto(_workflow_url(settings, started.workflow_id))
        await expect(page.get_by_text(SUBJECT_EMAIL).first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    finally:
        await context.close()
