"""Notices to the requester and the officer, rendered from the template files."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity

from dsr.emails import render
from dsr.mailer import send_email
from dsr.models import Language
from dsr.settings import Settings


class Notice(BaseModel):
    """``to`` is the requester's address; None sends to the privacy officer."""

    request_id: str
    template: str
    language: Language = Language.EN
    to: str | None = None
    message_id: str
    context: dict[str, Any] = Field(default_factory=dict)


class MailActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name="mail.send_notice")
    async def send_notice(self, notice: Notice) -> None:
        mail = render(notice.template, notice.language, request_id=notice.request_id,
                      **notice.context)
        await send_email(
            self._settings,
            to=notice.to or self._settings.officer_address,
            subject=mail.subject,
            body=mail.body,
            message_id=notice.message_id,
        )
