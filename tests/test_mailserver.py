"""The local SMTP server and the mailer, end to end over a real SMTP connection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from dsr.mailer import MailerError, send_email
from dsr.settings import Settings
from services.mail_server import MailFolder, free_port, running_mail_server

RECIPIENT = "张三 <zhang.san@example.cn>"
SUBJECT = "您的请求已收到 DSR-42"
BODY = "您好，\n我们已收到您的数据访问请求，将在一个月内答复。\n"
MESSAGE_ID = "<ack.DSR-42@dsr.local>"
EML_NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}\.eml$")


def settings_for(tmp_path: Path, host: str, port: int) -> Settings:
    return Settings(data_dir=tmp_path, smtp_host=host, smtp_port=port)


async def test_message_is_stored_as_eml_and_round_trips(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    with running_mail_server(folder) as (host, port):
        settings = settings_for(tmp_path, host, port)
        await send_email(
            settings,
            to=RECIPIENT,
            subject=SUBJECT,
            body=BODY,
            message_id=MESSAGE_ID,
            attachments=[("export.json", '{"名字": "张三"}'.encode(), "application/json")],
        )
        message = await MailFolder(folder).wait_for(
            header=("Message-ID", MESSAGE_ID), timeout=5
        )

    [stored] = folder.iterdir()  # no temporary file left behind
    assert EML_NAME.match(stored.name)
    assert message["Message-ID"] == MESSAGE_ID
    assert message["Subject"] == SUBJECT
    assert message["From"] == settings.sender_address
    assert message["Date"] is not None
    text = message.get_body(("plain",))
    assert text is not None and text.get_content() == BODY
    [attachment] = message.iter_attachments()
    assert attachment.get_filename() == "export.json"
    assert attachment.get_content() == '{"名字": "张三"}'.encode()


async def test_folder_lists_in_arrival_order_and_finds(tmp_path: Path) -> None:
    folder = MailFolder(tmp_path / "mail")
    assert folder.count() == 0
    with running_mail_server(folder.path) as (host, port):
        settings = settings_for(tmp_path, host, port)
        for number in range(3):
            await send_email(
                settings,
                to=f"person{number}@example.org",
                subject=f"message {number}",
                body="text",
                message_id=f"<m{number}@dsr.local>",
            )

    assert [m["Subject"] for m in folder.messages()] == ["message 0", "message 1", "message 2"]
    assert folder.count() == 3
    assert [m["Subject"] for m in folder.find(to="PERSON1@example.org")] == ["message 1"]
    assert len(folder.find(subject_contains="message")) == 3
    assert folder.find(to="person1@example.org", subject_contains="message 2") == []
    found = await folder.wait_for(header=("Message-ID", "<m2@dsr.local>"), timeout=1)
    assert found["To"] == "person2@example.org"


async def test_wait_for_times_out_without_naming_the_recipient(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError) as raised:
        await MailFolder(tmp_path).wait_for(to="someone@example.org", timeout=0.1)
    assert "someone" not in str(raised.value)


async def test_error_on_closed_port_names_server_not_recipient(tmp_path: Path) -> None:
    port = free_port()
    settings = settings_for(tmp_path, "127.0.0.1", port)
    with pytest.raises(MailerError) as raised:
        await send_email(settings, to=RECIPIENT, subject=SUBJECT, body=BODY, message_id=MESSAGE_ID)
    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message
    assert "zhang.san" not in message
    assert "张三" not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


class RefusingHandler:
    async def handle_RCPT(
        self, server: object, session: object, envelope: object, address: str, options: object
    ) -> str:
        return f"550 5.1.1 <{address}>: Recipient address rejected"


async def test_refused_recipient_is_permanent_and_not_named(tmp_path: Path) -> None:
    port = free_port()
    controller = Controller(RefusingHandler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with pytest.raises(MailerError) as raised:
            await send_email(
                settings_for(tmp_path, "127.0.0.1", port),
                to=RECIPIENT,
                subject=SUBJECT,
                body=BODY,
                message_id=MESSAGE_ID,
            )
    finally:
        controller.stop()
    assert raised.value.permanent
    assert f"127.0.0.1:{port}" in str(raised.value)
    assert "zhang.san" not in str(raised.value)
