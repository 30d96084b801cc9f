"""Serving an aiohttp application as one of the product's processes (the codec and download
servers): listen without an access log, and run until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from contextlib import suppress

from aiohttp import web

from dsr.logging import get_logger

log = get_logger()


async def listen(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve ``app`` on ``host``:``port``; ``await runner.cleanup()`` stops it. No access log:
    both servers carry tokens in their paths."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def until_signalled(runner: web.AppRunner, name: str) -> None:
    """Keep serving until SIGINT or SIGTERM, then stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        log.info(f"{name} stopped")
