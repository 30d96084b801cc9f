"""Sends one email through the configured SMTP server.

Errors name the server and the SMTP failure, never the recipient or the body: both are
personal data, and error messages end up in logs and in Temporal's history.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from dsr.settings import Settings, SmtpSecurity

SMTP_TIMEOUT_SECONDS = 30.0
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")


class MailerError(Exception):
    """Sending failed. ``permanent`` is True when the server refused for good (5xx)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


async def send_email(
    settings: Settings,
    *,
    to: str,
    subject: str,
    body: str,
    message_id: str,
    attachments: Sequence[tuple[str, bytes, str]] = (),
) -> None:
    """Send a UTF-8 text message; ``attachments`` are (filename, content, MIME type)."""
    message = build_message(
        sender=settings.sender_address,
        to=to,
        subject=subject,
        body=body,
        message_id=message_id,
        attachments=attachments,
    )
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            use_tls=settings.smtp_security is SmtpSecurity.TLS,
            start_tls=settings.smtp_security is SmtpSecurity.STARTTLS,
            timeout=SMTP_TIMEOUT_SECONDS,
        )
    except (aiosmtplib.SMTPException, OSError) as error:
        raise _mailer_error(settings, error) from None


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    body: str,
    message_id: str,
    attachments: Sequence[tuple[str, bytes, str]] = (),
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id
    message.set_content(body, charset="utf-8")
    for filename, content, mime_type in attachments:
        maintype, _, subtype = mime_type.partition("/")
        message.add_attachment(
            content, maintype=maintype, subtype=subtype or "octet-stream", filename=filename
        )
    return message


def _mailer_error(settings: Settings, error: Exception) -> MailerError:
    """The failure described without addresses; recipients refused are only counted."""
    server = f"{settings.smtp_host}:{settings.smtp_port}"
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        count = len(error.recipients)
        return MailerError(f"SMTP server {server} refused {count} recipient(s)", permanent=True)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        detail = f"{error.code} {_scrub(error.message)}"
        permanent = 500 <= error.code < 600
        return MailerError(
            f"SMTP server {server} refused the message: {detail}", permanent=permanent
        )
    return MailerError(f"sending via SMTP server {server} failed: {_describe(error)}")


def _describe(error: Exception) -> str:
    text = _scrub(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _scrub(text: str) -> str:
    """Replace anything that looks like an email address (servers often echo recipients)."""
    return _ADDRESS.sub("<address>", text)
