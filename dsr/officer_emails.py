"""The privacy officer's emails: what waits for them on a request, and how to act. They carry
no personal data: request ids, connector names, counts, dates and policy names only. Rendered
as every email is (``dsr.emails``)."""

from __future__ import annotations

from datetime import date, datetime

from dsr.emails import EmailContext


class OfficerInstructionReminderContext(EmailContext):
    template = "officer_instruction_reminder"
    connector: str
    instructed_on: date


class OfficerReminderContext(EmailContext):
    template = "officer_reminder"
    due_on: date
    days_left: int


class OfficerOverdueContext(EmailContext):
    template = "officer_overdue"
    due_on: date
    days_overdue: int | None = None


class OfficerChildReviewContext(EmailContext):
    """A report about a child's data: its erasure review's target, on the first day and
    then every few days (``workflows.children``). ``erasure``: asked or added."""

    template = "officer_child_review"
    target_on: date
    target_status: str
    days_left: int
    due_on: date
    erasure: str
    under_age: int


class OfficerLockedContext(EmailContext):
    template = "officer_locked"
    attempts: int
    locked_at: datetime | None = None


class OfficerConfirmRecipientContext(EmailContext):
    """The answer is ready but the requester's address is not a verified recipient
    (dsr.recipients): no address in it, the officer looks the request up."""

    template = "officer_confirm_recipient"


class OfficerReviewContext(EmailContext):
    """The answer states draft texts: which ones (names and jurisdictions, no data)."""

    template = "officer_review"
    reasons: list[str]


class OfficerRetentionDecisionContext(EmailContext):
    """Parts only a draft retention rule would keep (connector/category: rule (countries))."""

    template = "officer_retention_decision"
    parts: list[str]


class OfficerAnswerNotesContext(EmailContext):
    """What the officer should know of an answer being sent (recipients on request)."""

    template = "officer_answer_notes"
    notes: list[str]


class OfficerConnectorFailedContext(EmailContext):
    template = "officer_connector_failed"
    connector: str
    error: str  # the failure's type, such as "TimeoutError": never a message that may hold data
    failed_at: datetime | None = None
