"""Notices to the requester and the officer, rendered from the template files."""

from __future__ import annotations

from temporalio import activity

from activities.interfaces.mail import SEND_NOTICE, Notice
from dsr.emails import render
from dsr.mailer import send_email
from dsr.settings import Settings


class MailActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name=SEND_NOTICE.name)
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
