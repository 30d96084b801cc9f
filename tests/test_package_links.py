"""Package downloads: the answer's link opens a landing page, only its POST downloads, and an
expired, revoked or altered link downloads nothing; a POST from another site, or past the
rate limits, downloads and records nothing. A real aiohttp server on a free port, a real
SQLite app database, the sealed blob store and the CLI."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import starter
from dsr import package_links
from dsr.assertions import Role
from dsr.blobstore import BlobStore, LocalBlobStore
from dsr.database import make_engine
from dsr.ledger import LedgerEntry
from dsr.sealedblobs import SealedBlobStore, sealed_blob_store
from dsr.settings import Settings
from dsr.signers import officer_signer
from services import download_server as downloadserver
from services.mail_server import free_port
from tests.conftest import TEST_KEY_SPEC, captured_logs, officer_service_thread, write_officer_files

REQUEST = "REQ-PKG-1"
CONTENT = b"PK\x03\x04 the package of ana.silva@example.com"
NOW = datetime.now(UTC)
LINKS_KEY = "links-test-key-7d1b5f9a3e8c2f6a4b0d9e1c"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, hmac_key=LINKS_KEY, payload_keys=TEST_KEY_SPEC,
                    public_base_url="https://privacy.example/dsr/")


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return make_engine(settings.app_database_url)


@pytest.fixture
def blobs(settings: Settings) -> BlobStore:
    store = sealed_blob_store(settings)
    with store.open_writer(package_links.package_key(REQUEST)) as sink:
        sink.write(CONTENT)
    return store


class Clock:
    """The rate limits' clock, moved by hand: a test waits out a window without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(
    settings: Settings, engine: Engine, blobs: BlobStore, clock: Clock
) -> AsyncIterator[TestClient[Any, Any]]:
    server = TestServer(downloadserver.make_app(settings, engine, blobs, clock),
                        host="127.0.0.1")
    async with TestClient(server) as client:
        yield client


def _issue(settings: Settings, engine: Engine, issued_at: datetime = NOW) -> str:
    link = package_links.issue(engine, settings.server_keys, REQUEST, issued_at,
                               settings.package_link_days)
    url = package_links.landing_url(settings.public_base_url, link.token)
    assert url.startswith("https://privacy.example/dsr/packages/")
    return "/packages/" + link.token


def _downloads(engine: Engine) -> list[LedgerEntry]:
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "package_downloaded")))


async def test_the_landing_page_offers_a_button_and_its_post_downloads(
    settings: Settings, engine: Engine, client: TestClient[Any, Any]
) -> None:
    path = _issue(settings, engine)
    page = await client.get(path)
    text = await page.text()
    assert page.status == 200 and f'<form method="post" action="{path}/download">' in text
    assert REQUEST in text and "ana.silva" not in text
    last = NOW.date() + timedelta(days=5)
    assert f"works until the end of {last.day} {last:%B %Y} (UTC)" in text
    # Not no-referrer: under it browsers send "Origin: null" with the button's POST.
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert _downloads(engine) == [], "opening the page downloads nothing"

    response = await client.post(f"{path}/download")
    assert response.status == 200 and await response.read() == CONTENT
    assert response.headers["Content-Type"] == "application/zip"
    [entry] = _downloads(engine)
    assert (entry.request_id, entry.actor) == (REQUEST, "requester")
    assert entry.detail == {"bytes": len(CONTENT), "via": "download link"}


async def test_a_get_of_the_download_address_downloads_nothing(
    settings: Settings, engine: Engine, client: TestClient[Any, Any]
) -> None:
    path = _issue(settings, engine)
    response = await client.get(f"{path}/download")
    assert response.status == 405
    assert CONTENT not in await response.read()
    assert _downloads(engine) == []


@pytest.mark.parametrize("case", ["expired", "revoked", "altered", "unknown"])
async def test_a_link_that_no_longer_works_downloads_nothing(
    settings: Settings, engine: Engine, client: TestClient[Any, Any], case: str
) -> None:
    issued = NOW - timedelta(days=6) if case == "expired" else NOW
    path = _issue(settings, engine, issued)
    if case == "revoked":
        assert package_links.revoke(engine, settings.secret, REQUEST, "officer.tan",
                                    "sent to the wrong address", NOW)
    elif case == "altered":
        path = path[:-1] + ("A" if path[-1] != "A" else "B")
    elif case == "unknown":
        path = "/packages/" + "x" * 43
    expected = {"expired": "expired", "revoked": "withdrawn", "altered": "not valid",
                "unknown": "not valid"}[case]
    for response in (await client.get(path), await client.post(f"{path}/download")):
        assert response.status == 404
        body = await response.read()
        assert expected in body.decode() and CONTENT not in body
    assert _downloads(engine) == []


def _stored(blobs: BlobStore) -> Path:
    """The package's file in the store, as it lies on disk."""
    assert isinstance(blobs, SealedBlobStore) and isinstance(blobs.inner, LocalBlobStore)
    return blobs.inner.path(blobs.ref(package_links.package_key(REQUEST)))


async def test_a_blob_not_sealed_by_the_product_is_not_served(
    settings: Settings, engine: Engine, blobs: BlobStore, client: TestClient[Any, Any]
, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _issue(settings, engine)
    _stored(blobs).write_bytes(CONTENT)  # planted as it is: not sealed by the product
    with captured_logs(monkeypatch, downloadserver) as logs:
        response = await client.post(f"{path}/download")
    body = await response.read()
    assert response.status == 404 and response.content_type == "text/html"
    assert "did not pass our integrity check" in body.decode()
    assert CONTENT not in body and b"Traceback" not in body
    assert _downloads(engine) == []
    [refused] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert (refused["request_id"], refused["fault"]) == (REQUEST, "UnsealedBlobError")
    assert "ana.silva" not in repr(logs)


async def test_a_package_damaged_past_its_first_megabyte_is_broken_off(
    settings: Settings, engine: Engine, blobs: BlobStore, client: TestClient[Any, Any]
, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _issue(settings, engine)
    with blobs.open_writer(package_links.package_key(REQUEST)) as sink:
        sink.write(os.urandom(3 * 1024 * 1024))
    damaged = bytearray(_stored(blobs).read_bytes())
    damaged[2 * 1024 * 1024] ^= 1
    _stored(blobs).write_bytes(bytes(damaged))
    with captured_logs(monkeypatch, downloadserver) as logs:
        response = await client.post(f"{path}/download")
        assert response.status == 200, "the first megabyte decrypted: the download began"
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert _downloads(engine) == [], "a download broken off is not recorded as made"
    [refused] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert (refused["request_id"], refused["fault"]) == (REQUEST, "DecryptionError")


def test_a_link_works_to_the_end_of_its_fifth_day_and_a_retry_gets_the_same_link(
    settings: Settings, engine: Engine
) -> None:
    issued = datetime(2024, 2, 27, 18, 30, tzinfo=UTC)  # a leap year: 29 February counts
    link = package_links.issue(engine, settings.server_keys, REQUEST, issued, 5)
    assert package_links.last_day(link) == date(2024, 3, 3)
    assert link.expires_at == datetime(2024, 3, 4, tzinfo=UTC)
    token = link.token
    assert not isinstance(package_links.find(engine, settings.server_keys, token,
                                             datetime(2024, 3, 3, 23, 59, tzinfo=UTC)),
                          package_links.LinkRefusal)
    assert package_links.find(engine, settings.server_keys, token, link.expires_at) \
        is package_links.LinkRefusal.EXPIRED
    again = package_links.issue(engine, settings.server_keys, REQUEST,
                                issued + timedelta(hours=1), 5)
    assert again == link
    with Session(engine) as session:
        record = session.scalars(select(package_links.PackageLinkRecord)).one()
    assert token not in record.token_hash


def test_packages_are_purged_once_their_link_has_ended(
    settings: Settings, engine: Engine, blobs: BlobStore
) -> None:
    link = package_links.issue(engine, settings.server_keys, REQUEST, NOW, 5)
    ref = blobs.ref(package_links.package_key(REQUEST))

    def purge(at: datetime) -> list[str]:
        with Session(engine) as session, session.begin():
            return package_links.purge_packages(session, blobs, at, b"ledger-key", "purge")

    assert purge(link.expires_at - timedelta(seconds=1)) == []
    assert blobs.exists(ref)
    assert purge(link.expires_at) == [REQUEST]
    assert not blobs.exists(ref)
    assert purge(link.expires_at) == []
    with Session(engine) as session:
        purges = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "purge")).all()
        assert [(p.request_id, p.detail["purged"]) for p in purges] == [(REQUEST, "package")]


def test_the_officer_revokes_a_link_from_the_cli(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    served = Settings(data_dir=settings.data_dir, hmac_key=LINKS_KEY,
                      payload_keys=TEST_KEY_SPEC, officer_service_port=port,
                      officer_service_url=f"http://127.0.0.1:{port}")
    home = settings.data_dir / "officer-home"  # the officer's machine: no secret
    monkeypatch.setenv("DSR_DATA_DIR", str(home))
    monkeypatch.setenv("DSR_SETTINGS_FILE", str(home / "absent.env"))
    monkeypatch.setenv("DSR_OFFICER_SERVICE_URL", served.officer_service_url)
    link = package_links.issue(engine, settings.server_keys, REQUEST, NOW, 5)
    runner = CliRunner()
    refused = runner.invoke(starter.app, ["revoke-link", REQUEST, "--reason", " "])
    assert refused.exit_code == 2 and "--reason is empty" in refused.output
    with officer_service_thread(served):
        write_officer_files(officer_signer(served, "officer.tan", [Role.OFFICER]), home)
        done = runner.invoke(starter.app, ["revoke-link", REQUEST, "--reason", "wrong address"])
        again = runner.invoke(starter.app, ["revoke-link", REQUEST, "--reason", "again"])
    assert done.exit_code == 0, done.output
    assert package_links.find(engine, settings.server_keys, link.token, NOW) \
        is package_links.LinkRefusal.REVOKED
    assert again.exit_code == 2 and "no download link that still works" in again.output
    with Session(engine) as session:
        entry = session.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "package_link_revoked")).one()
    assert (entry.actor, entry.detail) == ("officer.tan", {"reason": "wrong address"})
