"""Where a rights request stands: its status, and the statuses that close it."""

from enum import StrEnum


class Status(StrEnum):
    RECEIVED = "received"
    AWAITING_VERIFICATION = "awaiting_verification"
    VERIFICATION_LOCKED = "verification_locked"
    AWAITING_CLARIFICATION = "awaiting_clarification"
    AWAITING_APPROVAL = "awaiting_approval"
    IN_PROGRESS = "in_progress"
    AWAITING_OFFICER = "awaiting_officer"
    # Ready to answer, but the requester's address is not a verified recipient: an officer
    # confirms it (dsr.recipients).
    AWAITING_RECIPIENT = "awaiting_recipient"
    # The answer states a draft text Legal has not confirmed: an approver releases it.
    AWAITING_REVIEW = "awaiting_review"
    # Data a draft retention rule would keep: an approver decides to keep or erase it.
    AWAITING_RETENTION_DECISION = "awaiting_retention_decision"
    # A child's data: the erasure a child report added waits for an approver's review
    # (workflows.children).
    AWAITING_CHILD_REVIEW = "awaiting_child_review"
    ANSWERED = "answered"
    DENIED = "denied"
    CANCELLED = "cancelled"
    UNVERIFIED = "unverified"


CLOSED = frozenset({Status.ANSWERED, Status.DENIED, Status.CANCELLED, Status.UNVERIFIED})
