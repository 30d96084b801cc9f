"""Notices to the requester and the officer (``activities/mail.py``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from activities.interfaces import ActivityInterface
from dsr.models import Language


class Notice(BaseModel):
    """``to`` is the requester's address; None sends to the privacy officer."""

    request_id: str
    template: str
    language: Language = Language.EN
    to: str | None = None
    message_id: str
    context: dict[str, Any] = Field(default_factory=dict)


SEND_NOTICE = ActivityInterface[Notice, None](name="mail.send_notice", input=Notice, output=None)
