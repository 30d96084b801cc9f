"""What goes in and out of the rights-request workflow: its input, the officers' Updates, and
the status Query. Officer-facing text fields carry no personal data by convention; the
request itself does and stays inside the workflow's payloads."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from dsr.assertions import Assertion
from dsr.models import RightsRequest
from dsr.status import Status


def _no_control_characters(value: str) -> str:
    # Officer text is shown on terminals and in the Web UI, and reasons are emailed to the
    # requester: no escape sequences or other control characters (tab and newline are text).
    if CONTROL.search(value):
        raise ValueError("contains control characters")
    return value


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value or "\t" in value:
        raise ValueError("contains control characters")
    return _no_control_characters(value)


CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
Officer = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80),
                    AfterValidator(_one_line)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000),
                   AfterValidator(_no_control_characters)]


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class Step(BaseModel):
    name: str
    status: StepStatus = StepStatus.PENDING
    at: datetime | None = None
    detail: str | None = None


class ConnectorStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    MISSING = "missing"  # no worker picked the call up: the connector's worker is down
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # instructed by email, not yet confirmed
    CONFIRMED = "confirmed"  # the recipient confirmed the instruction (recorded by an officer)
    DONE_BY_HAND = "done_by_hand"
    SKIPPED = "skipped"
    NOT_STARTED = "not_started"


class ConnectorState(BaseModel):
    connector: str
    status: ConnectorStatus = ConnectorStatus.PENDING
    records: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    resolution_reason: str | None = None


class RequestInput(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)

    request: RightsRequest
    submitted_by: str | None = None  # the officer who entered it; None: an automated intake
    # The door's signed word for what it verified (a panel login, an API call): required when
    # the request says so (RightsRequest.vouched_by_door).
    door: Assertion | None = None


class ChildMarker(BaseModel):
    """A request reporting that its subject is a child: the erasure review it started. No
    personal data."""

    erasure: str  # "asked" by the requester, or "added" by the review
    decision: str | None = None  # "erase" or "keep" (an approver's); None: not (yet) needed
    target_on: date  # the review's internal target (never after the legal deadline)
    target_status: str  # draft (rules unconfirmed) or confirmed
    target_source: str


class RequestStatus(BaseModel):
    """What the status Query answers. No personal data."""

    request_id: str
    status: Status
    rights: list[str]
    jurisdiction: str
    received_at: datetime
    due_at: datetime | None = None
    target_on: date | None = None
    extended: bool = False
    overdue: bool = False
    verification: dict[str, str] = Field(default_factory=dict)
    wrong_codes: int = 0
    connectors: list[ConnectorState] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    outcome: str | None = None
    # Earlier requests of the same subject for the same right within 30 days (the register's
    # keyed hashes): the officer decides whether this one is the same request sent twice.
    possible_duplicate_of: list[str] = Field(default_factory=list)
    # The jurisdiction's deadline rules are a draft Legal has not confirmed (docs/legal.md).
    rules_unconfirmed: bool = False
    # Why the answer waits for an officer's review before it is sent (draft texts it uses).
    held_for_review: list[str] = Field(default_factory=list)
    # Parts a draft retention rule would keep, waiting for an approver's decision.
    retention_undecided: list[str] = Field(default_factory=list)
    child: ChildMarker | None = None  # a report about a child's data (privacy statement s.10)


class RequestOutcome(BaseModel):
    request_id: str
    status: Status
    answered_at: datetime | None = None
    connectors: list[ConnectorState] = Field(default_factory=list)


# Officer and requester Updates -------------------------------------------------------------


class CodeSubmission(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)

    code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)]

    @field_validator("code")
    @classmethod
    def _six_ascii_digits(cls, value: str) -> str:
        # str.isdigit() also takes "１２３４５６" or "²³⁴⁵⁶⁷", which no code email holds: such
        # a code would be counted as a wrong attempt instead of refused as malformed.
        if not (len(value) == 6 and value.isascii() and value.isdigit()):
            raise ValueError("the code is 6 digits, as in the verification email")
        return value


class CodeResult(BaseModel):
    accepted: bool
    remaining_targets: int
    attempts_left: int
    locked: bool = False


class OfficerPayload(BaseModel):
    """What every officer's Update carries: the signed assertion of who acts. Requests begun
    before ``officer-assertions`` take the officer's name instead; for the others a typed name
    counts for nothing (the ledger credits whoever signed)."""

    model_config = ConfigDict(hide_input_in_errors=True)

    officer: Officer | None = None
    assertion: Assertion | None = None

    @property
    def actor(self) -> str:
        """Who acted: the proven officer (before assertions, the one named)."""
        if self.officer is None:
            raise ValueError("no officer named")
        return self.officer


class OfficerNote(OfficerPayload):
    note: Reason


class RetentionChoice(OfficerPayload):
    """An approver's decision on data only a draft retention rule would keep: ``keep`` applies
    the draft rule, else it is left out and the data is erased as the confirmed rules allow."""

    keep: bool
    note: Reason


class OfficerAction(OfficerPayload):
    """An action with no argument but who takes it (approve, new code)."""


class Extension(OfficerPayload):
    reason: Reason
    until: date | None = None


class Denial(OfficerPayload):
    reason: Reason
    manifestly_unfounded: bool = False


class ChildErasureDecision(OfficerPayload):
    """An approver's review of the erasure a child report added: erase, or keep (the erasure
    is dropped; the rights the requester asked for go on)."""

    erase: bool
    note: Reason


class ConnectorResolution(StrEnum):
    DONE_BY_HAND = "done_by_hand"
    SKIPPED = "skipped"
    RETRY = "retry"


class ConnectorDecision(OfficerPayload):
    connector: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,40}$")]
    resolution: ConnectorResolution
    reason: Reason


class InstructionConfirmation(OfficerPayload):
    connector: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,40}$")]
    note: Reason


class UpdateResult(BaseModel):
    message: str
    due_at: datetime | None = None
