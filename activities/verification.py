"""One-time codes: derived, sent and checked here, kept only as keyed hashes.

A code is an HMAC of the request, the target and the issue round under the server-side
secret, so a retried activity sends the same code, and only the server can derive it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import activity

from dsr.emails import render
from dsr.hashing import keyed_hash, matches
from dsr.mailer import send_email
from dsr.models import Language
from dsr.settings import Settings


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


class VerificationActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def _code(self, request_id: str, target_id: str, round_: int) -> str:
        digest = keyed_hash(self._settings.secret, f"{request_id}:{target_id}:{round_}", "code")
        return f"{int(digest, 16) % 1_000_000:06d}"

    def _hash(self, request_id: str, target_id: str, code: str) -> str:
        return keyed_hash(self._settings.secret, f"{request_id}:{target_id}:{code}", "code-check")

    @activity.defn(name="verification.issue_codes")
    async def issue_codes(self, issue: CodeIssue) -> list[IssuedCode]:
        expires_at = issue.as_of + timedelta(hours=issue.valid_hours)
        issued = []
        for recipient in issue.recipients:
            code = self._code(issue.request_id, recipient.target_id, issue.round)
            mail = render(
                "verification_code",
                issue.language,
                request_id=issue.request_id,
                code=code,
                valid_until=expires_at.strftime("%Y-%m-%d %H:%M UTC"),
            )
            await send_email(
                self._settings,
                to=recipient.email,
                subject=mail.subject,
                body=mail.body,
                message_id=f"<code.{issue.round}.{recipient.target_id}.{issue.request_id}@dsr>",
            )
            code_hash = self._hash(issue.request_id, recipient.target_id, code)
            issued.append(IssuedCode(target_id=recipient.target_id, code_hash=code_hash,
                                     expires_at=expires_at))
        return issued

    @activity.defn(name="verification.check_code")
    def check_code(self, check: CodeCheck) -> str | None:
        """The target whose code this is, or None. Compared in constant time."""
        found = None
        for candidate in check.candidates:
            value = f"{check.request_id}:{candidate.target_id}:{check.code}"
            if matches(self._settings.secret, value, candidate.code_hash, "code-check"):
                found = candidate.target_id
        return found
