"""The download server: where a requester fetches an access package from the answer's link.

``GET /packages/{token}`` is the landing page: it says until when the link works and has one
button, a form that POSTs to ``/packages/{token}/download``. Only that POST sends the package
(decrypted from the blob store as it streams), so a mail scanner or link preview that follows
the link downloads nothing. A GET of the download address is refused (405). An unknown, altered,
expired or revoked token gets a page saying which, and nothing else. A package blob that is not
sealed by the product, or does not decrypt, is refused with a page too (and a log line naming
the request and the fault): its bytes are never sent. Each download is recorded in the audit
ledger.

The POST must come from the landing page: one whose ``Origin`` is present and not the public
base URL's origin, or whose ``Sec-Fetch-Site`` is ``cross-site``, is refused (403) and sends
and records nothing. A POST with neither header (curl, a script, a browser too old to send
them) is let through: browsers send at least one of them, out of reach of the page's script,
so a cross-site page cannot drop both; a client outside a browser can write any header, so
requiring them would stop the honest ones only. The landing page's ``Referrer-Policy`` is
``same-origin``: under ``no-referrer`` browsers send ``Origin: null`` on the button's POST.

Rate limits (per process, ``services.ratelimit``): at most ``download_posts_per_token`` download
POSTs per link and ``download_requests_per_client`` requests of any kind per client address in
any 60 seconds; past them 429 with ``Retry-After``. Refusals are logged with a keyed hash of
the client's address, never the address or the token.

Pages never show personal data, and the access log is off: it would print the token. Run it
with ``python -m services.download_server``; the embedded stack starts it.
"""

from __future__ import annotations

import asyncio
import html
import math
import time
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import Engine

from dsr import package_links
from dsr.blobstore import BlobStore
from dsr.database import make_engine
from dsr.files import private_umask
from dsr.keyring import KeyringError
from dsr.logging import configure, get_logger
from dsr.package_links import LinkRefusal, PackageLinkRecord
from dsr.sealedblobs import sealed_blob_store
from dsr.settings import Settings, SettingsError, load_settings
from services import serving
from services.ratelimit import Clock, SlidingWindowLimiter, client_address, client_key, counted

CHUNK_BYTES = 1024 * 1024
NOT_FROM_OUR_PAGE = ("This download was not started from our page. Open the link in our "
                     "email and press the button there.")
TOO_MANY = "Too many attempts. Please wait a minute and try again."
log = get_logger()


class _DownloadServer:
    def __init__(self, settings: Settings, engine: Engine, blobs: BlobStore,
                 clock: Clock) -> None:
        self.secret = settings.secret
        self.keys = settings.server_keys
        self.engine = engine
        self.blobs = blobs
        self.origin = package_links.public_origin(settings.public_base_url)
        self.proxy_hops = settings.download_proxy_hops
        self.per_link = SlidingWindowLimiter(settings.download_posts_per_token, clock=clock)
        self.per_client = SlidingWindowLimiter(settings.download_requests_per_client,
                                               clock=clock)

    @web.middleware
    async def limit_clients(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every request counts against its client's limit, the refused and unknown too."""
        client = self._client(request)
        if wait := self.per_client.hit(client):
            return _too_many(wait, "client", client)
        return await handler(request)

    def _client(self, request: web.Request) -> str:
        address = client_address(request.remote, request.headers.get("X-Forwarded-For"),
                                 self.proxy_hops)
        return client_key(self.secret, address)

    def _refuse_post(self, request: web.Request) -> web.Response | None:
        """A POST not from the landing page (403), or past its link's limit (429)."""
        client = self._client(request)
        if reason := _cross_site(request, self.origin):
            log.warning("download refused: not from the landing page", reason=reason,
                        client=client)
            return _page(NOT_FROM_OUR_PAGE, status=403)
        link = counted(self.secret, "download-limit", request.match_info["token"])
        if wait := self.per_link.hit(link):
            return _too_many(wait, "link", client)
        return None

    async def _link(self, request: web.Request) -> PackageLinkRecord | LinkRefusal:
        token = request.match_info["token"]
        now = datetime.now(UTC)
        found = await asyncio.to_thread(package_links.find, self.engine, self.keys, token,
                                        now)
        if isinstance(found, LinkRefusal):
            log.info("package link refused", reason=found.name.lower())
        return found

    async def landing(self, request: web.Request) -> web.StreamResponse:
        found = await self._link(request)
        if isinstance(found, LinkRefusal):
            return _page(found.value, status=404)
        last = (found.expires_at.astimezone(UTC) - timedelta(days=1)).date()
        form = (
            f'<form method="post" action="/packages/{html.escape(request.match_info["token"])}'
            '/download"><button type="submit">Download my data</button></form>'
        )
        return _page(
            f"Your data for privacy request {found.request_id} is ready. The link works until "
            f"the end of {last.day} {last:%B %Y} (UTC); after that the package is deleted.",
            extra=form, referrer_policy="same-origin",
        )

    async def download(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._refuse_post(request)) is not None:
            return refused
        found = await self._link(request)
        if isinstance(found, LinkRefusal):
            return _page(found.value, status=404)
        ref = self.blobs.ref(package_links.package_key(found.request_id))
        if not await asyncio.to_thread(self.blobs.exists, ref):
            return _page(LinkRefusal.EXPIRED.value, status=404)
        try:
            source, first = await asyncio.to_thread(_open, self.blobs, ref)
        except KeyringError as error:  # not sealed by us, altered, or under a retired key
            _log_refused(found.request_id, error)
            return _page(LinkRefusal.UNREADABLE.value, status=404)
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="privacy-{found.request_id}.zip"',
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        })
        size = await self._stream(request, response, source, first, found.request_id)
        if size is None:
            return response  # broken off: the client sees a failed download, not a short one
        # Recorded once every byte is sent, before the response ends.
        await asyncio.to_thread(package_links.record_download, self.engine, self.secret,
                                found.request_id, size, datetime.now(UTC))
        await response.write_eof()
        log.info("package downloaded", request_id=found.request_id, bytes=size)
        return response

    @staticmethod
    async def _stream(request: web.Request, response: web.StreamResponse, source: BinaryIO,
                      chunk: bytes, request_id: str) -> int | None:
        """The bytes sent, or None if a later frame did not decrypt and the download was
        broken off."""
        size = 0
        try:
            await response.prepare(request)
            while chunk:
                await response.write(chunk)
                size += len(chunk)
                chunk = await asyncio.to_thread(source.read, CHUNK_BYTES)
        except KeyringError as error:
            _log_refused(request_id, error)
            if request.transport is not None:
                request.transport.abort()
            return None
        finally:
            source.close()
        return size


def _open(blobs: BlobStore, ref: str) -> tuple[BinaryIO, bytes]:
    """The package's reader and its first chunk: a blob that is not sealed, or whose first
    chunk does not decrypt, is refused before anything is sent."""
    source = blobs.open_reader(ref)
    try:
        return source, source.read(CHUNK_BYTES)
    except BaseException:
        source.close()
        raise


def _log_refused(request_id: str, error: KeyringError) -> None:
    log.warning("package refused: its blob is not sealed by us or does not decrypt",
                request_id=request_id, fault=type(error).__name__)


def _cross_site(request: web.Request, own_origin: str | None) -> str | None:
    """Why a POST is not from our own page, or None (neither header: not a browser's)."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return "sec-fetch-site"
    origin = request.headers.get("Origin")
    if origin is not None and package_links.public_origin(origin) != own_origin:
        return "origin"
    return None


def _too_many(wait: float, limit: str, client: str) -> web.Response:
    retry_after = max(1, math.ceil(wait))
    log.warning("download server: too many requests", limit=limit, client=client,
                retry_after=retry_after)
    response = _page(TOO_MANY, status=429)
    response.headers["Retry-After"] = str(retry_after)
    return response


def _page(text: str, status: int = 200, extra: str = "",
          referrer_policy: str = "no-referrer") -> web.Response:
    body = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Your privacy request</title>'
        f"</head><body><p>{html.escape(text)}</p>{extra}</body></html>"
    )
    response = web.Response(text=body, content_type="text/html", status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = referrer_policy
    response.headers["Content-Security-Policy"] = "default-src 'none'; form-action 'self'"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def make_app(settings: Settings, engine: Engine, blobs: BlobStore,
             clock: Clock = time.monotonic) -> web.Application:
    """``clock`` times the rate limits (seconds; tests pass their own)."""
    server = _DownloadServer(settings, engine, blobs, clock)
    app = web.Application(middlewares=[server.limit_clients])
    app.router.add_get("/packages/{token}", server.landing)
    app.router.add_post("/packages/{token}/download", server.download)
    return app


async def start(settings: Settings, port: int | None = None) -> web.AppRunner:
    """Serve on ``download_bind_host``:``download_port``; ``await runner.cleanup()`` stops it."""
    app = make_app(settings, make_engine(settings.app_database_url), sealed_blob_store(settings))
    runner = await serving.listen(app, settings.download_bind_host,
                                  port or settings.download_port)
    log.info("download server listening", base_url=settings.public_base_url)
    return runner


async def serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    await serving.until_signalled(await start(settings), "download server")


def main() -> None:
    private_umask()
    configure()
    try:
        settings = load_settings()
        asyncio.run(serve(settings))
    except (SettingsError, KeyringError) as error:
        raise SystemExit(f"error: {error}") from None
    except OSError as error:
        raise SystemExit(
            f"error: cannot listen on port {settings.download_port} ({error.strerror}); "
            "set DSR_DOWNLOAD_PORT to a free port"
        ) from None


if __name__ == "__main__":
    main()
