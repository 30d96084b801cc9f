"""One-time codes: derived, sent and checked here, kept only as keyed hashes.

A code is an HMAC of the request, the target and the issue round under the codes' own key
(``dsr.serverkeys``), so a retried activity sends the same code, and only the server can
derive it; its check hash is tagged with the key's id, and a code sent before a change of
server secret is still accepted until it expires.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity

from activities.interfaces.verification import (
    CHECK_CODE,
    ISSUE_CODES,
    CodeCheck,
    CodeIssue,
    IssuedCode,
)
from dsr.emails import render
from dsr.mailer import send_email
from dsr.purposes import CODES
from dsr.serverkeys import PurposeKeys
from dsr.settings import Settings


class VerificationActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def _code(self, request_id: str, target_id: str, round_: int) -> str:
        key = self._settings.server_keys.purpose(CODES, "code").current
        digest = key.mac(f"code\x00{request_id}:{target_id}:{round_}")
        return f"{int.from_bytes(digest) % 1_000_000:06d}"

    def _checks(self) -> PurposeKeys:
        """The codes' check hashes: made under the current key, matched under every key
        held (a code sent before a change of server secret works until it expires)."""
        return self._settings.server_keys.purpose(CODES, "code-check")

    def _hash(self, request_id: str, target_id: str, code: str) -> str:
        return self._checks().tag(f"{request_id}:{target_id}:{code}")

    @activity.defn(name=ISSUE_CODES.name)
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

    @activity.defn(name=CHECK_CODE.name)
    def check_code(self, check: CodeCheck) -> str | None:
        """The target whose code this is, or None. Compared in constant time."""
        found, checks = None, self._checks()
        for candidate in check.candidates:
            value = f"{check.request_id}:{candidate.target_id}:{check.code}"
            if checks.matches(value, candidate.code_hash):
                found = candidate.target_id
        return found
