"""One-time codes: issued by email, and checked (``activities/verification.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from activities.interfaces import ActivityInterface
from dsr.models import Language


class CodeRecipient(BaseModel):
    target_id: str
    email: str


class CodeIssue(BaseModel):
    request_id: str
    round: int
    language: Language
    valid_hours: int
    as_of: datetime
    recipients: list[CodeRecipient]


class IssuedCode(BaseModel):
    target_id: str
    code_hash: str
    expires_at: datetime


class CodeCheck(BaseModel):
    request_id: str
    code: str
    candidates: list[IssuedCode]


ISSUE_CODES = ActivityInterface[CodeIssue, list[IssuedCode]](
    name="verification.issue_codes", input=CodeIssue, output=list[IssuedCode]
)
# The target whose code it is, or None.
CHECK_CODE = ActivityInterface[CodeCheck, str | None](
    name="verification.check_code", input=CodeCheck, output=str | None
)
