"""The embedded stack's SMTP server: every accepted message becomes one ``.eml`` file.

Run it in the foreground with ``python -m services.mail_server --host 127.0.0.1 --port 8025
--dir var/mail``; read the folder with ``MailFolder``; start one inside a test with
``running_mail_server``.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import logging
import os
import random
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from dsr.files import private_umask

log = logging.getLogger(__name__)

SERVER_HOSTNAME = "dsr-mail.localhost"
POLL_INTERVAL = 0.05
RECIPIENT_HEADERS = ("To", "Cc", "X-Envelope-To")


class MailFolderHandler:
    """aiosmtpd handler writing each message to ``folder`` atomically, named by arrival time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._last_arrival = datetime.min.replace(tzinfo=UTC)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # Stored with this system's line endings, as a local delivery agent does.
        content = (envelope.original_content or b"").replace(b"\r\n", b"\n")
        envelope_headers = _envelope_headers(envelope.mail_from, envelope.rcpt_tos)
        name = await asyncio.to_thread(self.deliver, envelope_headers + content)
        log.info("stored %s (%d bytes)", name, len(content))
        return "250 Message accepted for delivery"

    def deliver(self, raw: bytes) -> str:
        """Write ``raw`` as a new ``.eml`` file and return its name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{self._next_arrival():%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex[:8]}.eml"
        temporary = self.folder / f".{name}.tmp"
        with temporary.open("wb") as file:
            file.write(raw)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(self.folder / name)
        return name

    def _next_arrival(self) -> datetime:
        """Now in UTC, strictly later than the previous arrival, so names sort by arrival."""
        now = datetime.now(UTC)
        if now <= self._last_arrival:
            now = self._last_arrival + timedelta(microseconds=1)
        self._last_arrival = now
        return now


def _envelope_headers(mail_from: str | None, rcpt_tos: list[str]) -> bytes:
    """``Return-Path`` and ``X-Envelope-To``, as a delivering server adds them (Bcc included)."""
    lines = [f"Return-Path: <{mail_from or ''}>", f"X-Envelope-To: {', '.join(rcpt_tos)}"]
    return "".join(line + "\n" for line in lines).encode("utf-8")


class MailFolder:
    """Reads the messages the local server stored, oldest first."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def files(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.glob("*.eml") if not p.name.startswith("."))

    def count(self) -> int:
        return len(self.files())

    def messages(self) -> list[EmailMessage]:
        return [_parse(path) for path in self.files()]

    def find(
        self,
        to: str | None = None,
        subject_contains: str | None = None,
        header: tuple[str, str] | None = None,
    ) -> list[EmailMessage]:
        """Messages matching every criterion given; ``to`` matches To, Cc and the envelope."""
        return [
            message
            for message in self.messages()
            if _matches(message, to=to, subject_contains=subject_contains, header=header)
        ]

    def file_with(self, header: tuple[str, str]) -> Path | None:
        """The stored file of the first message with this header value."""
        for path in self.files():
            if _matches(_parse(path), to=None, subject_contains=None, header=header):
                return path
        return None

    async def wait_for(
        self,
        to: str | None = None,
        subject_contains: str | None = None,
        header: tuple[str, str] | None = None,
        *,
        timeout: float = 10.0,
    ) -> EmailMessage:
        """The first matching message, polling until ``timeout`` seconds have passed."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(to=to, subject_contains=subject_contains, header=header)
            if found:
                return found[0]
            if time.monotonic() >= deadline:
                raise self._timeout_error(timeout, subject_contains, header)
            await asyncio.sleep(POLL_INTERVAL)

    def _timeout_error(
        self, timeout: float, subject_contains: str | None, header: tuple[str, str] | None
    ) -> TimeoutError:
        # The recipient and header value are left out: they may be personal data.
        criteria = [f"subject containing {subject_contains!r}"] if subject_contains else []
        criteria += [f"a {header[0]} header"] if header else []
        wanted = " with " + " and ".join(criteria) if criteria else ""
        return TimeoutError(
            f"no message{wanted} arrived in {self.path} within {timeout:g}s "
            f"({self.count()} messages there)"
        )


def _parse(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _matches(
    message: EmailMessage,
    *,
    to: str | None,
    subject_contains: str | None,
    header: tuple[str, str] | None,
) -> bool:
    if to is not None and to.lower() not in _recipients(message):
        return False
    if subject_contains is not None and subject_contains not in str(message["Subject"] or ""):
        return False
    if header is not None:
        name, value = header
        return value.strip() in [str(v).strip() for v in message.get_all(name, [])]
    return True


def _recipients(message: EmailMessage) -> set[str]:
    values = [str(v) for name in RECIPIENT_HEADERS for v in message.get_all(name, [])]
    return {address.lower() for _, address in getaddresses(values) if address}


PICKED_PORTS = (20000, 32000)


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing listens on right now, below the kernel's ephemeral
    range (32768 and up), where outgoing connections take their source ports: a port picked
    there may be taken before the server that was to use it starts."""
    for _ in range(200):
        port = random.randint(*PICKED_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port between {PICKED_PORTS[0]} and {PICKED_PORTS[1]}")


@contextmanager
def running_mail_server(
    folder: Path, host: str = "127.0.0.1", port: int = 0
) -> Iterator[tuple[str, int]]:
    """An SMTP server in a background thread storing into ``folder``; yields (host, port)."""
    port = port or free_port(host)
    controller = Controller(
        MailFolderHandler(Path(folder)), hostname=host, port=port, server_hostname=SERVER_HOSTNAME
    )
    controller.start()
    try:
        yield host, port
    finally:
        controller.stop()


async def serve(folder: Path, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    handler = MailFolderHandler(folder)
    server = await loop.create_server(lambda: _smtp(handler), host=host, port=port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("mail server listening on %s:%d, storing into %s", host, port, folder)
    async with server:
        await stop.wait()
    log.info("mail server stopped")


def _smtp(handler: Any) -> SMTP:
    return SMTP(handler, hostname=SERVER_HOSTNAME, enable_SMTPUTF8=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local SMTP server writing .eml files.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", type=Path, default=Path("var/mail"))
    args = parser.parse_args(argv)
    private_umask()  # the messages hold one-time codes and download links
    # aiosmtpd logs addresses at INFO, so only this module logs below WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    asyncio.run(serve(args.dir, args.host, args.port))


if __name__ == "__main__":
    main()
