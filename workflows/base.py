"""The state every part of the rights-request workflow shares, and its plumbing: steps,
status, search attributes, officers' authority, activities, notices and register milestones.
The parts (workflows/*.py, listed on ``RightsRequestWorkflow``) each extend this; the request,
its policy and its deadline reach their steps as arguments where a step reads them once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from workflows import calls

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import ActivityInterface
    from activities.interfaces.mail import SEND_NOTICE, Notice
    from activities.interfaces.policy import RequestPolicy
    from activities.interfaces.register import RECORD_MILESTONE
    from activities.interfaces.verification import IssuedCode
    from dsr import assertions
    from dsr import search_attributes as sa
    from dsr.connector_registry import ConnectorEntry
    from dsr.deadlines import Deadline
    from dsr.models import Language, Right, RightsRequest
    from dsr.register import Milestone
    from dsr.status import CLOSED, Status
    from dsr.verification import Target
    from workflows.models import (
        ConnectorDecision,
        ConnectorState,
        Denial,
        OfficerNote,
        OfficerPayload,
        RetentionChoice,
        Step,
        StepStatus,
    )


QUICK = timedelta(seconds=30)
STEPS = (
    "intake",
    "deadline",
    "acknowledge",
    "verify",
    "refer",
    "discover",
    "legal_hold_check",
    "approval",
    "execute",
    "package",
    "answer",
    "proof",
)
REMINDERS = (
    ("remind_7_days", timedelta(days=7)),
    ("remind_1_day", timedelta(days=1)),
    ("overdue_check", timedelta(0)),
)


Payload = TypeVar("Payload", bound="OfficerPayload")
In = TypeVar("In")
Out = TypeVar("Out")


class Stopped(Exception):
    """The request was denied or cancelled by an officer."""


class RequestState:
    def __init__(self) -> None:
        self._request: RightsRequest | None = None
        self._asked_rights: list[Right] = []  # as asked, where a child review added erasure
        self._status = Status.RECEIVED
        self._steps = {name: Step(name=name) for name in STEPS + tuple(r[0] for r in REMINDERS)}
        self._policy: RequestPolicy | None = None
        self._deadline: Deadline | None = None
        self._extended = False
        self._overdue = False
        self._targets: list[Target] = []
        self._codes: list[IssuedCode] = []
        self._code_round = 0
        self._wrong_codes = 0
        self._locked = False
        self._approved = False
        self._paused_since: datetime | None = None
        self._paused_days = 0
        self._draft_decisions = False  # draft-retention-decision: an approver decides drafts
        self._retention_undecided: list[str] = []
        self._retention_choice: RetentionChoice | None = None
        self._reviewing = False  # answer-review: an answer stating drafts waits for review
        self._scope_clock = False  # clarification-of-scope: only such questions stop a clock
        self._period_from_verification = False  # period-from-verification (UK Art. 12A)
        self._verified_at: datetime | None = None  # the period's start, where the law says
        self._denial: Denial | None = None
        self._cancelled: OfficerNote | None = None
        self._executing = False
        self._connectors: dict[str, ConnectorState] = {}
        self._decisions: dict[str, ConnectorDecision] = {}
        self._results: dict[str, list[Any]] = {}
        self._held: dict[str, int] = {}
        self._registered: dict[str, str] = {}
        self._referrals: list[str] = []
        self._previous_status = Status.IN_PROGRESS
        self._outcome: str | None = None
        self._possible_duplicates: list[str] = []
        self._recipient_rule = False  # dsr.recipients applies (requests begun after it)
        self._recipient_contact: str | None = None  # the registered contact it may use
        self._awaiting_recipient = False
        self._recipient_confirmed: OfficerNote | None = None
        self._review_reasons: list[str] = []  # the answer waits for review (draft texts)
        self._released: OfficerNote | None = None
        self._answer_to: str | None = None  # None: the requester's address (before the rule)
        self._lock = asyncio.Lock()
        self._fired: set[tuple[str, datetime]] = set()
        self._local_quick_steps = False
        self._assertions = False  # officers' Updates carry signed assertions (officer-assertions)
        self._nonces = assertions.NonceBook()

    @property
    def _req(self) -> RightsRequest:
        assert self._request is not None
        return self._request

    @property
    def _pol(self) -> RequestPolicy:
        assert self._policy is not None
        return self._policy

    @property
    def _dl(self) -> Deadline:
        assert self._deadline is not None
        return self._deadline

    @property
    def _stopping(self) -> bool:
        return self._denial is not None or self._cancelled is not None

    def _check_stopped(self) -> None:
        if self._stopping:
            raise Stopped()

    async def _checkpoint(self) -> None:
        await workflow.wait_condition(
            lambda: self._status is not Status.AWAITING_CLARIFICATION or self._stopping
        )
        self._check_stopped()

    def _require_open(self) -> None:
        if self._status in CLOSED or self._stopping:
            raise ValueError(f"the request is closed ({self._status})")
        if self._deadline is None:
            raise ValueError("the request is still being received; try again in a moment")

    def _authorize(self, action: str, payload: OfficerPayload) -> None:
        """In an Update's validator: the assertion proves an officer allowed to take
        ``action`` on this request with these arguments, now, for the first time. No I/O: the
        authority's keys and the roles are in the request's policy snapshot."""
        if not self._assertions:
            if payload.officer is None:
                raise ValueError("name the officer acting (officer)")
            return
        try:
            self._principal(action, payload, self._nonces)
        except assertions.AssertionRefused as refused:
            raise ValueError(f"not authorized: {refused}") from None

    def _acting(self, action: str, payload: Payload) -> Payload:
        """In an Update's handler, before any state changes: the payload with ``officer`` the
        proven identity (whatever name was typed), its nonce spent (a second Update with the
        same assertion, accepted before this one ran, is refused here)."""
        if not self._assertions:
            return payload
        try:
            principal = self._principal(action, payload, None)
            self._nonces.spend(principal, self._now())
        except assertions.AssertionRefused as refused:
            raise ApplicationError(f"not authorized: {refused}", non_retryable=True) from None
        return payload.model_copy(update={"officer": principal.principal_id, "assertion": None})

    def _check_door(self, request: RightsRequest, door: assertions.Assertion | None) -> None:
        """A request its door says it verified fails here, before anything is written or sent,
        unless that door signed it (``submit``, with the channel in its credential)."""
        if not request.vouched_by_door:
            return
        try:
            if door is None:
                raise assertions.AssertionRefused("it carries no assertion")
            principal = assertions.verify(door, self._pol.authorities, self._expected(
                "submit", request))
            channel = principal.evidence.get("channel")
            if channel != request.channel.value:
                raise assertions.AssertionRefused(
                    f"the door vouches for {channel}, not {request.channel.value}")
        except assertions.AssertionRefused as refused:
            raise ApplicationError(
                f"a {request.channel.value} request claiming a verified requester needs the "
                f"assertion of the door that verified it: {refused}",
                type="NotVouched", non_retryable=True) from None

    def _expected(self, action: str, arguments: Any) -> assertions.Expected:
        info = workflow.info()
        return assertions.Expected(
            namespace=info.namespace, target=info.workflow_id, action=action,
            arguments=arguments, roles=frozenset(self._pol.action_roles.get(action, [])),
            now=self._now())

    def _principal(self, action: str, payload: OfficerPayload,
                   seen: assertions.NonceBook | None) -> assertions.Principal:
        if self._policy is None:
            raise assertions.AssertionRefused("the request is still being received; try again")
        if payload.assertion is None:
            raise assertions.AssertionRefused("the action carries no assertion; officers act "
                                              "through starter.py with their credential")
        return assertions.verify(payload.assertion, self._pol.authorities,
                                 self._expected(action, payload), seen)

    def _deadline_rights(self, request: RightsRequest) -> list[Right]:
        """The rights the legal deadline is counted for: those asked (the erasure a child
        review adds changes nothing)."""
        return self._asked_rights or request.rights

    def _cancel_reason(self) -> str | None:
        return self._cancelled.note if self._cancelled else None

    def _target(self, target_id: str) -> Target:
        return next(t for t in self._targets if t.target_id == target_id)

    def _entry(self, name: str) -> ConnectorEntry | None:
        return next((e for e in self._pol.connectors if e.name == name), None)

    def _entry_or_fail(self, name: str) -> ConnectorEntry:
        entry = self._entry(name)
        assert entry is not None
        return entry

    def _now(self) -> datetime:
        return workflow.now()

    def _begin(self, step: str) -> None:
        self._steps[step].status = StepStatus.RUNNING
        self._upsert(sa.STEP.value_set(step))

    def _done(self, step: str, detail: str | None = None) -> None:
        self._set_step(step, StepStatus.DONE, detail)

    def _skip(self, step: str, detail: str) -> None:
        self._set_step(step, StepStatus.SKIPPED, detail)

    def _fail(self, step: str, detail: str) -> None:
        self._set_step(step, StepStatus.FAILED, detail)

    def _set_step(self, step: str, status: StepStatus, detail: str | None) -> None:
        self._steps[step] = Step(name=step, status=status, at=self._now(), detail=detail)

    def _set_status(self, status: Status) -> None:
        self._status = status
        self._upsert(sa.STATUS.value_set(status.value))

    def _resume(self, status: Status) -> None:
        """Back to ``status`` once an officer has decided what the request waited for; if a
        clarification was asked meanwhile, once its reply is in."""
        if self._status is Status.AWAITING_CLARIFICATION:
            self._previous_status = status
        else:
            self._set_status(status)

    def _upsert(self, *updates: Any) -> None:
        workflow.upsert_search_attributes(list(updates))

    async def _activity(self, call: ActivityInterface[In, Out], payload: In, *,
                        timeout: timedelta = QUICK, heartbeat: timedelta | None = None) -> Out:
        """One of the orchestrator's own activities, through the server."""
        return await calls.activity(call, payload, **_remote(timeout, heartbeat))

    async def _quick(self, call: ActivityInterface[In, Out], payload: In) -> Out:
        """One of the orchestrator's own quick steps (register, policy, deadline, hold check):
        a local activity on this worker, with no round trip through the server; remote for
        requests begun before ``local-quick-steps``. Each is idempotent, since a local activity
        runs again if the worker is lost before its result is recorded."""
        if not self._local_quick_steps:
            return await self._activity(call, payload)
        return await calls.local_activity(
            call,
            payload,
            start_to_close_timeout=QUICK,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )

    async def _registered_contact(self, account_id: str) -> dict[str, Any]:
        """The customer's registered address and name, from the customer-account connector."""
        entry = self._entry("customer_account")
        contact: dict[str, Any] = await calls.activity(
            "customer_account.registered_contact",
            {"account_id": account_id},
            result_type=dict,
            **_remote(task_queue=entry.task_queue if entry else None),
        )
        return contact

    async def _notice(
        self,
        template: str,
        *,
        to_requester: bool = False,
        to: str | None = None,
        key: str | None = None,
        **context: Any,
    ) -> None:
        """To the requester, to ``to``, or else to the privacy officer."""
        request = self._req
        notice = Notice(
            request_id=request.request_id,
            template=template,
            language=Language.EN if to else request.language,
            to=to or (request.requester.email if to_requester else None),
            message_id=f"<{key or template}.{request.request_id}@dsr>",
            context=context,
        )
        await self._activity(SEND_NOTICE, notice)

    async def _milestone(
        self,
        key: str,
        step: str,
        *,
        actor: str = "orchestrator",
        detail: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        milestone = Milestone(
            request_id=self._req.request_id,
            key=key,
            step=step,
            at=self._now(),
            actor=actor,
            detail=detail or {},
            status=fields.pop("status", self._status.value),
            **fields,
        )
        await self._quick(RECORD_MILESTONE, milestone)


def _remote(
    timeout: timedelta = QUICK, heartbeat: timedelta | None = None, task_queue: str | None = None
) -> dict[str, Any]:
    """An activity call's options. ``heartbeat``: for a long activity, how soon a worker lost
    mid-call (or a result lost with it) is noticed and the call retried, instead of after
    ``timeout``."""
    return {
        "task_queue": task_queue,
        "start_to_close_timeout": timeout,
        "heartbeat_timeout": heartbeat,
        "retry_policy": RetryPolicy(maximum_interval=timedelta(seconds=30)),
    }
