"""One durable workflow per rights request: intake to proof, as a privacy officer tells it.

Deterministic code only: time from ``workflow.now()``, every side effect in an activity,
policy read in activities and kept in history.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.answer import AnswerInput, AnswerSent
    from activities.legal_hold import HoldCheck
    from activities.mail import Notice
    from activities.package import Package, PackageInput
    from activities.policy import ExtensionQuery, PolicyQuery, RequestPolicy
    from activities.register import Intake
    from activities.verification import CodeCheck, CodeIssue, CodeRecipient, IssuedCode
    from connectors import protocol as p
    from connectors.registry import ConnectorEntry, DataRole
    from dsr import search_attributes as sa
    from dsr.deadlines import Deadline, DeadlineQuery
    from dsr.emails import ProductOutcome
    from dsr.models import Right, RightsRequest
    from dsr.register import Milestone
    from dsr.retention import ErasurePlan
    from dsr.verification import Method, Target, plan_verification
    from workflows.models import (
        CLOSED,
        CodeResult,
        CodeSubmission,
        ConnectorDecision,
        ConnectorResolution,
        ConnectorState,
        ConnectorStatus,
        Denial,
        Extension,
        OfficerAction,
        OfficerNote,
        RequestInput,
        RequestOutcome,
        RequestStatus,
        Status,
        Step,
        StepStatus,
        UpdateResult,
    )

QUICK = timedelta(seconds=30)
CONNECTOR_CALL = timedelta(minutes=10)
CONNECTOR_HEARTBEAT = timedelta(minutes=2)
STEPS = ("intake", "deadline", "acknowledge", "verify", "discover", "legal_hold_check",
         "approval", "execute", "package", "answer", "proof")
REMINDERS = (("remind_7_days", timedelta(days=7)), ("remind_1_day", timedelta(days=1)),
             ("overdue_check", timedelta(0)))
ORDER = (p.Operation.ACCESS, p.Operation.RECTIFY, p.Operation.RESTRICT, p.Operation.OBJECT,
         p.Operation.WITHDRAW_CONSENT, p.Operation.MARKETING_OPT_OUT, p.Operation.ERASE)
RIGHT_OPERATIONS = {
    Right.ACCESS: p.Operation.ACCESS,
    Right.PORTABILITY: p.Operation.ACCESS,
    Right.RECTIFICATION: p.Operation.RECTIFY,
    Right.ERASURE: p.Operation.ERASE,
    Right.RESTRICTION: p.Operation.RESTRICT,
    Right.OBJECTION: p.Operation.OBJECT,
    Right.WITHDRAW_CONSENT: p.Operation.WITHDRAW_CONSENT,
    Right.MARKETING_OPT_OUT: p.Operation.MARKETING_OPT_OUT,
}
ACTIONS = {
    p.Operation.ACCESS: "exported",
    p.Operation.ERASE: "erased",
    p.Operation.RECTIFY: "rectified",
    p.Operation.RESTRICT: "restricted",
    p.Operation.OBJECT: "objection recorded",
    p.Operation.WITHDRAW_CONSENT: "consent withdrawn",
    p.Operation.MARKETING_OPT_OUT: "unsubscribed from marketing",
}


class Stopped(Exception):
    """The request was denied or cancelled by an officer."""


@workflow.defn(name="RightsRequest")
class RightsRequestWorkflow:
    def __init__(self) -> None:
        self._request: RightsRequest | None = None
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
        self._denial: Denial | None = None
        self._cancelled: OfficerNote | None = None
        self._executing = False
        self._connectors: dict[str, ConnectorState] = {}
        self._decisions: dict[str, ConnectorDecision] = {}
        self._results: dict[str, list[Any]] = {}
        self._held: dict[str, int] = {}
        self._registered: dict[str, str] = {}
        self._previous_status = Status.IN_PROGRESS
        self._outcome: str | None = None
        self._lock = asyncio.Lock()
        self._fired: set[tuple[str, datetime]] = set()

    # The story ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, start: RequestInput) -> RequestOutcome:
        self._request = start.request
        await self._intake()
        watcher = asyncio.create_task(self._watch_deadline())
        try:
            await self._acknowledge()
            if not await self._verify():
                return await self._close(Status.UNVERIFIED, "unverified")
            discoveries = await self._discover()
            plan = await self._legal_hold_check(discoveries)
            await self._await_approval()
            await self._execute(discoveries, plan)
            package = await self._package()
            await self._answer(plan, package)
            return await self._finish(Status.ANSWERED, "answered")
        except Stopped:
            if self._denial is not None:
                return await self._close(Status.DENIED, "denial", self._denial.reason)
            return await self._close(Status.CANCELLED, "cancelled", self._cancel_reason())
        finally:
            watcher.cancel()

    async def _intake(self) -> None:
        request = self._req
        self._begin("intake")
        await self._activity("register.intake", Intake(request=request))
        self._policy = await self._activity("policy.snapshot", PolicyQuery(as_of=self._now()),
                                            result_type=RequestPolicy)
        self._done("intake", f"{len(request.rights)} rights, {request.jurisdiction.value}")
        await self._compute_deadline()

    async def _compute_deadline(self) -> None:
        self._begin("deadline")
        request = self._req
        query = DeadlineQuery(jurisdiction=request.jurisdiction, rights=request.rights,
                              received_at=request.received_at, paused_days=self._paused_days)
        self._deadline = await self._activity("deadline.compute", query, result_type=Deadline)
        self._done("deadline", f"due {self._deadline.due_on.isoformat()}")
        self._upsert(sa.DUE_AT.value_set(self._deadline.due_at))
        await self._milestone("deadline", "deadline", due_at=self._deadline.due_at,
                              policy_version=self._deadline.policy_version,
                              detail={"due_on": self._deadline.due_on.isoformat(),
                                      "target_on": self._deadline.target_on.isoformat(),
                                      "basis": self._deadline.basis})

    async def _acknowledge(self) -> None:
        self._begin("acknowledge")
        await self._notice("acknowledgement", to_requester=True,
                           rights=[r.value for r in self._req.rights],
                           due_on=self._dl.due_on.isoformat())
        self._done("acknowledge")
        await self._milestone("acknowledge", "acknowledge")

    # Identity verification -----------------------------------------------------------------

    async def _verify(self) -> bool:
        self._begin("verify")
        self._targets = plan_verification(self._req, self._now(), self._pol.panel_reauth_minutes)
        if not self._targets:
            self._done("verify", "not needed for these rights")
            return True
        await self._resolve_registered_contacts()
        await self._issue_codes()
        self._set_status(Status.AWAITING_VERIFICATION)
        while not self._all_verified():
            self._check_stopped()
            remaining = self._verify_by() - self._now()
            if remaining <= timedelta(0):
                self._fail("verify", "not verified in time")
                return False
            round_ = self._code_round
            try:
                await workflow.wait_condition(
                    partial(self._verification_moved, round_),
                    timeout=remaining, timeout_summary="verification expiry")
            except TimeoutError:
                continue
        self._done("verify", ", ".join(t.how or t.method.value for t in self._targets))
        await self._milestone("verify", "verify",
                              detail={t.target_id: t.how or "" for t in self._targets})
        self._set_status(Status.IN_PROGRESS)
        return True

    async def _resolve_registered_contacts(self) -> None:
        """A customer's code goes to the address registered on its account."""
        for target in self._targets:
            if target.registered_account is None or target.verified:
                continue
            entry = self._entry("customer_account")
            contact: dict[str, Any] = await self._activity(
                "customer_account.registered_contact",
                {"account_id": target.registered_account},
                task_queue=entry.task_queue if entry else None, result_type=dict)
            if not contact.get("email"):
                target.method = Method.MANUAL
                target.registered_account = None
            else:
                target.how = f"code to registered contact of {target.registered_account}"
                self._registered[target.target_id] = contact["email"]

    async def _issue_codes(self) -> None:
        recipients = [CodeRecipient(target_id=t.target_id, email=self._code_address(t))
                      for t in self._targets if t.method is Method.CODE and not t.verified]
        if not recipients:
            return
        self._code_round += 1
        issue = CodeIssue(request_id=self._req.request_id, round=self._code_round,
                          language=self._req.language, valid_hours=self._pol.code_validity_hours,
                          as_of=self._now(), recipients=recipients)
        self._codes = await self._activity("verification.issue_codes", issue,
                                           result_type=list[IssuedCode])
        self._wrong_codes = 0
        self._locked = False

    def _code_address(self, target: Target) -> str:
        if target.identity_index is not None:
            return self._req.identities[target.identity_index].value
        return self._registered[target.target_id]

    def _verification_moved(self, round_: int) -> bool:
        return self._all_verified() or self._stopping or self._code_round != round_

    def _all_verified(self) -> bool:
        return all(target.verified for target in self._targets)

    def _verify_by(self) -> datetime:
        pending = [t for t in self._targets if not t.verified]
        if self._codes and any(t.method is Method.CODE for t in pending):
            return max(code.expires_at for code in self._codes)
        return self._dl.due_at

    # Discovery, legal holds, execution ------------------------------------------------------

    async def _discover(self) -> list[p.Discovery]:
        self._begin("discover")
        connectors = self._applicable_connectors()
        for entry in connectors:
            self._connectors[entry.name] = ConnectorState(connector=entry.name)
        found = await asyncio.gather(*(self._call_connector(entry, p.Operation.DISCOVER,
                                                            self._scope(entry), p.Discovery)
                                       for entry in connectors))
        discoveries = [d for d in found if isinstance(d, p.Discovery)]
        for discovery in discoveries:
            self._connectors[discovery.connector].status = ConnectorStatus.DONE
            self._held[discovery.connector] = discovery.records
        holding = [d.connector for d in discoveries if d.records]
        affiliates = sorted({self._entry_or_fail(n).affiliate for n in holding})
        self._upsert(sa.AFFILIATES.value_set(affiliates))
        self._done("discover", f"{len(holding)} of {len(connectors)} connectors hold data")
        await self._milestone("discover", "discover", affiliates=affiliates,
                              detail={d.connector: d.records for d in discoveries})
        self._check_stopped()
        return discoveries

    def _applicable_connectors(self) -> list[ConnectorEntry]:
        """A customer's instruction reaches its end users' data only; anyone else's request
        reaches the group's own data."""
        role = DataRole.END_USER if self._req.customer_scope else DataRole.GROUP
        types = {identity.type for identity in self._req.identities}
        return [
            entry for entry in self._pol.connectors
            if entry.role is role
            and p.Operation.DISCOVER in entry.operations
            and types & set(entry.identity_types)
        ]

    def _scope(self, entry: ConnectorEntry) -> p.Scope:
        identities = [i for i in self._req.identities if i.type in entry.identity_types]
        customer = self._req.customer_scope if entry.role is DataRole.END_USER else None
        return p.Scope(request_id=self._req.request_id, identities=identities,
                       customer_account=customer, as_of=self._now())

    async def _legal_hold_check(self, discoveries: list[p.Discovery]) -> ErasurePlan | None:
        if Right.ERASURE not in self._req.rights:
            self._skip("legal_hold_check", "no erasure requested")
            return None
        self._begin("legal_hold_check")
        plan = await self._activity(
            "legal_hold.assess",
            HoldCheck(request_id=self._req.request_id, discoveries=discoveries, as_of=self._now()),
            result_type=ErasurePlan)
        self._done("legal_hold_check", f"{len(plan.retained)} parts retained")
        await self._milestone("legal_hold_check", "legal_hold_check",
                              detail={"retained": [f"{r.connector}/{r.category}: {r.rule_id}"
                                                   for r in plan.retained]})
        return plan

    async def _await_approval(self) -> None:
        if not set(self._req.rights) & set(self._pol.approval_required_for) and not self._approved:
            self._skip("approval", "not required")
            return
        self._begin("approval")
        self._set_status(Status.AWAITING_APPROVAL)
        await workflow.wait_condition(lambda: self._approved or self._stopping)
        self._check_stopped()
        self._done("approval")
        if self._status is Status.AWAITING_CLARIFICATION:
            # Approved while a clarification is awaited: carry on once it arrives.
            self._previous_status = Status.IN_PROGRESS
        else:
            self._set_status(Status.IN_PROGRESS)

    async def _execute(self, discoveries: list[p.Discovery], plan: ErasurePlan | None) -> None:
        self._begin("execute")
        await self._checkpoint()
        self._executing = True
        holding = [d for d in discoveries if d.records]
        await asyncio.gather(*(self._execute_connector(self._entry_or_fail(d.connector), plan)
                               for d in holding))
        self._done("execute", f"{len(holding)} connectors")
        await self._milestone("execute", "execute",
                              detail={n: s.status.value for n, s in self._connectors.items()})
        self._check_stopped()

    async def _execute_connector(self, entry: ConnectorEntry, plan: ErasurePlan | None) -> None:
        state = self._connectors[entry.name]
        results = self._results.setdefault(entry.name, [])
        for operation in self._operations(entry):
            if self._stopping:
                state.status = ConnectorStatus.NOT_STARTED
                return
            payload, result_type = self._operation_input(entry, operation, plan)
            result = await self._call_connector(entry, operation, payload, result_type)
            if result is None:
                return
            results.append(result)
            for category, count in _counts(result).items():
                state.records[f"{ACTIONS[operation]} {category}"] = count
            if isinstance(result, p.EraseResult):
                for category, count in result.retained.items():
                    state.records[f"retained {category}"] = count
        state.status = ConnectorStatus.DONE

    def _operations(self, entry: ConnectorEntry) -> list[p.Operation]:
        wanted = {RIGHT_OPERATIONS[r] for r in self._req.rights if r in RIGHT_OPERATIONS}
        return [op for op in ORDER if op in wanted and entry.supports(op)]

    def _operation_input(self, entry: ConnectorEntry, operation: p.Operation,
                         plan: ErasurePlan | None) -> tuple[Any, type]:
        scope = self._scope(entry)
        if operation is p.Operation.ACCESS:
            return p.AccessInput(scope=scope), p.AccessResult
        if operation is p.Operation.ERASE:
            rules = plan.rules.get(entry.name, []) if plan else []
            return p.EraseInput(scope=scope, rules=rules), p.EraseResult
        if operation is p.Operation.RECTIFY:
            return p.RectifyInput(scope=scope, corrections=self._req.corrections), p.RectifyResult
        return p.FlagInput(scope=scope), p.FlagResult

    async def _call_connector(self, entry: ConnectorEntry, operation: p.Operation,
                              payload: Any, result_type: type) -> Any:
        """Call a connector; when it keeps failing, show it to the officer and wait for a
        decision (retry, done by hand, skipped) without holding up the other connectors."""
        state = self._connectors[entry.name]
        while True:
            state.status = ConnectorStatus.RUNNING
            try:
                return await workflow.execute_activity(
                    p.activity_name(entry.name, operation), payload,
                    task_queue=entry.task_queue, result_type=result_type,
                    start_to_close_timeout=CONNECTOR_CALL, heartbeat_timeout=CONNECTOR_HEARTBEAT,
                    retry_policy=self._connector_retry(),
                    summary=f"{entry.name} {operation.value}")
            except ActivityError as error:
                state.status = ConnectorStatus.FAILED
                state.error = f"{operation.value} failed: {_failure_type(error)}"
            decision = await self._await_decision(entry)
            if decision is None or decision.resolution is not ConnectorResolution.RETRY:
                return None

    def _connector_retry(self) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self._pol.connector_retry_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=30),
            maximum_attempts=self._pol.connector_max_attempts,
        )

    async def _await_decision(self, entry: ConnectorEntry) -> ConnectorDecision | None:
        self._decisions.pop(entry.name, None)
        self._refresh_attention()
        await self._notice("officer_connector_failed", connector=entry.name,
                           error=self._connectors[entry.name].error or "")
        await workflow.wait_condition(lambda: entry.name in self._decisions or self._stopping)
        state = self._connectors[entry.name]
        decision = self._decisions.get(entry.name)
        if decision is None:
            state.status = ConnectorStatus.NOT_STARTED
        elif decision.resolution is ConnectorResolution.DONE_BY_HAND:
            state.status = ConnectorStatus.DONE_BY_HAND
        elif decision.resolution is ConnectorResolution.SKIPPED:
            state.status = ConnectorStatus.SKIPPED
        if decision is not None:
            state.resolution_reason = decision.reason
            await self._milestone(f"connector-{entry.name}-{decision.resolution.value}",
                                  "execute", actor=decision.officer,
                                  detail={"connector": entry.name,
                                          "resolution": decision.resolution.value,
                                          "reason": decision.reason})
        self._refresh_attention()
        return decision

    def _refresh_attention(self) -> None:
        failing = sorted(n for n, s in self._connectors.items()
                         if s.status is ConnectorStatus.FAILED)
        self._upsert(sa.CONNECTORS_ATTENTION.value_set(failing))
        if failing:
            self._set_status(Status.AWAITING_OFFICER)
        elif self._status is Status.AWAITING_OFFICER:
            self._set_status(Status.IN_PROGRESS)

    # Answer and proof ----------------------------------------------------------------------

    async def _package(self) -> Package | None:
        exports = [r for rs in self._results.values() for r in rs
                   if isinstance(r, p.AccessResult)]
        if not exports:
            self._skip("package", "no access or portability requested")
            return None
        self._begin("package")
        package = await self._activity(
            "package.assemble",
            PackageInput(request_id=self._req.request_id, language=self._req.language,
                         exports=exports),
            result_type=Package, timeout=CONNECTOR_CALL)
        self._done("package", f"{package.records} records")
        return package

    async def _answer(self, plan: ErasurePlan | None, package: Package | None) -> None:
        self._begin("answer")
        exported = {name: sorted(r.records) for name, rs in self._results.items() for r in rs
                    if isinstance(r, p.AccessResult)}
        answer = AnswerInput(
            request=self._req, answered_at=self._now(), outcomes=self._outcomes(),
            retained=plan.retained if plan else [], exported=exported,
            package_ref=package.blob_ref if package else None)
        await self._send_answer(answer)

    async def _send_answer(self, answer: AnswerInput) -> None:
        sent = await self._activity("answer.send", answer, result_type=AnswerSent)
        self._done("answer", sent.message_id)
        self._begin("proof")
        self._done("proof", f"confirmation kept until {sent.retain_until.date().isoformat()}")

    def _outcomes(self) -> list[ProductOutcome]:
        outcomes = []
        for name, state in self._connectors.items():
            entry = self._entry_or_fail(name)
            if state.status is ConnectorStatus.DONE and self._held.get(name):
                outcomes += [ProductOutcome(connector=name, products=entry.products,
                                            action=ACTIONS[_operation_of(result)],
                                            records=_counts(result))
                             for result in self._results.get(name, [])]
            else:
                outcomes.append(ProductOutcome(
                    connector=name, products=entry.products, action=_action_for(state),
                    note=state.resolution_reason))
        return outcomes

    async def _close(self, status: Status, template: str,
                     reason: str | None = None) -> RequestOutcome:
        self._begin("answer")
        answer = AnswerInput(request=self._req, kind=template, answered_at=self._now(),
                             outcomes=self._outcomes() if self._executing else [],
                             reason=reason)
        await self._send_answer(answer)
        return await self._finish(status, template)

    async def _finish(self, status: Status, outcome: str) -> RequestOutcome:
        self._outcome = outcome
        self._set_status(status)
        await self._milestone("closed", "closed", status=status.value, outcome=outcome,
                              overdue=self._overdue, closed=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return RequestOutcome(request_id=self._req.request_id, status=status,
                              answered_at=self._now(),
                              connectors=list(self._connectors.values()))

    # Deadline watch: reminders and overdue --------------------------------------------------

    async def _watch_deadline(self) -> None:
        while self._status not in CLOSED:
            due = self._dl.due_at
            pending = self._pending_reminders(due)
            if not pending or self._paused_since is not None:
                await workflow.wait_condition(
                    partial(self._deadline_moved, due, resumed=bool(pending)))
                continue
            name, at = pending[0]
            try:
                await workflow.wait_condition(
                    partial(self._deadline_moved, due),
                    timeout=max(at - self._now(), timedelta(seconds=1)), timeout_summary=name)
                continue
            except TimeoutError:
                self._fired.add((name, due))
            await self._remind(name, due)

    def _deadline_moved(self, due: datetime, resumed: bool = False) -> bool:
        """The due date changed, or the clock stopped (or, with ``resumed``, restarted)."""
        if self._dl.due_at != due:
            return True
        return self._paused_since is None if resumed else self._paused_since is not None

    def _pending_reminders(self, due: datetime) -> list[tuple[str, datetime]]:
        """Reminders not yet sent for this due date; of those already past, only the latest."""
        now = self._now()
        events = [(name, due - before) for name, before in REMINDERS
                  if (name, due) not in self._fired]
        past = [e for e in events if e[1] <= now]
        future = [e for e in events if e[1] > now]
        return past[-1:] + future

    async def _remind(self, name: str, due: datetime) -> None:
        self._fired.update((n, due) for n, _ in REMINDERS[: [n for n, _ in REMINDERS].index(name)])
        # The due date in the jurisdiction's own time zone: ``due`` is the end of that day in
        # UTC, which west of UTC (US-CA, CO, BR) falls on the next UTC date.
        due_on = self._dl.due_on if due == self._dl.due_at else due.date()
        self._done(name, due_on.isoformat())
        if name == "overdue_check":
            self._overdue = True
            self._upsert(sa.OVERDUE.value_set(True))
            await self._milestone(f"overdue-{due_on}", "overdue", overdue=True)
            await self._notice("officer_overdue", due_on=due_on.isoformat())
            return
        days = -((self._now() - due) // timedelta(days=1))  # whole days left, rounded up
        await self._notice("officer_reminder", due_on=due_on.isoformat(), days_left=days,
                           key=f"{name}.{due_on}")

    # Updates: the requester's code and the officers' actions ---------------------------------

    @workflow.update(name="submit_code")
    async def submit_code(self, submission: CodeSubmission) -> CodeResult:
        async with self._lock:
            pending = [c for c in self._codes
                       if not self._target(c.target_id).verified and c.expires_at > self._now()]
            matched = await self._activity(
                "verification.check_code",
                CodeCheck(request_id=self._req.request_id, code=submission.code,
                          candidates=pending), result_type=str | None)
            if matched is not None:
                target = self._target(matched)
                target.verified = True
                target.how = target.how or "one-time code by email"
            else:
                await self._wrong_code()
            left = self._pol.code_max_attempts - self._wrong_codes
            return CodeResult(accepted=matched is not None, locked=self._locked,
                              remaining_targets=sum(not t.verified for t in self._targets),
                              attempts_left=max(left, 0))

    @submit_code.validator
    def _validate_code(self, submission: CodeSubmission) -> None:
        if not submission.code.isdigit() or len(submission.code) != 6:
            raise ValueError("the code is 6 digits, as in the verification email")
        if self._status is not Status.AWAITING_VERIFICATION:
            raise ValueError(f"the request is not waiting for a code (status: {self._status})")
        if self._locked:
            raise ValueError("verification is locked after too many wrong codes; "
                             "an officer can issue a new code (starter.py new-code)")

    async def _wrong_code(self) -> None:
        self._wrong_codes += 1
        if self._wrong_codes >= self._pol.code_max_attempts and not self._locked:
            self._locked = True
            self._set_status(Status.VERIFICATION_LOCKED)
            await self._notice("officer_locked", key=f"locked.{self._code_round}",
                               attempts=self._wrong_codes)
            await self._milestone(f"locked-{self._code_round}", "verify",
                                  detail={"wrong_codes": self._wrong_codes})

    @workflow.update(name="new_code")
    async def new_code(self, action: OfficerAction) -> UpdateResult:
        async with self._lock:
            await self._issue_codes()
            self._set_status(Status.AWAITING_VERIFICATION)
            await self._milestone(f"new-code-{self._code_round}", "verify", actor=action.officer,
                                  detail={"round": self._code_round})
            return UpdateResult(message=f"new code sent (round {self._code_round})")

    @new_code.validator
    def _validate_new_code(self, action: OfficerAction) -> None:
        if not any(t.method is Method.CODE and not t.verified for t in self._targets):
            raise ValueError("no identity of this request is waiting for a code")
        if self._status not in (Status.AWAITING_VERIFICATION, Status.VERIFICATION_LOCKED):
            raise ValueError(f"the request is not waiting for verification ({self._status})")

    @workflow.update(name="mark_verified")
    async def mark_verified(self, note: OfficerNote) -> UpdateResult:
        for target in self._targets:
            if not target.verified:
                target.verified = True
                target.how = f"verified by hand by {note.officer}"
        await self._milestone("verified-by-hand", "verify", actor=note.officer,
                              detail={"note": note.note})
        return UpdateResult(message="identity recorded as verified by hand")

    @mark_verified.validator
    def _validate_mark_verified(self, note: OfficerNote) -> None:
        if self._status not in (Status.AWAITING_VERIFICATION, Status.VERIFICATION_LOCKED):
            raise ValueError(f"the request is not waiting for verification ({self._status})")

    @workflow.update(name="extend")
    async def extend(self, extension: Extension) -> UpdateResult:
        limit = self._dl.extension_limit_on
        assert limit is not None
        until = extension.until or limit
        self._deadline = await self._activity(
            "deadline.extend", ExtensionQuery(deadline=self._dl, until=until), result_type=Deadline)
        self._extended = True
        self._upsert(sa.DUE_AT.value_set(self._dl.due_at))
        await self._notice("extension_notice", to_requester=True, due_on=until.isoformat(),
                           reason=extension.reason, key="extension")
        await self._milestone("extended", "deadline", actor=extension.officer,
                              due_at=self._dl.due_at, extended=True,
                              detail={"due_on": until.isoformat(), "reason": extension.reason})
        return UpdateResult(message=f"extended to {until.isoformat()}", due_at=self._dl.due_at)

    @extend.validator
    def _validate_extend(self, extension: Extension) -> None:
        self._require_open()
        deadline = self._dl
        if self._extended:
            raise ValueError("the deadline has already been extended once")
        if deadline.extension_limit_on is None or deadline.extension_notice_by is None:
            raise ValueError(f"no extension is allowed for this request in "
                             f"{deadline.jurisdiction.value}")
        if self._now() > deadline.extension_notice_by:
            raise ValueError("the notice window for an extension closed on "
                             f"{deadline.extension_notice_by.date().isoformat()}")
        until = extension.until or deadline.extension_limit_on
        if until > deadline.extension_limit_on:
            raise ValueError(f"{until.isoformat()} is beyond the limit "
                             f"{deadline.extension_limit_on.isoformat()}")
        if until <= deadline.due_on:
            raise ValueError(f"{until.isoformat()} is not after the current due date "
                             f"{deadline.due_on.isoformat()}")

    @workflow.update(name="request_clarification")
    async def request_clarification(self, note: OfficerNote) -> UpdateResult:
        stops = self._dl.clock_stops_for_clarification
        if stops:
            self._paused_since = self._now()
        self._previous_status = self._status
        self._set_status(Status.AWAITING_CLARIFICATION)
        await self._notice("clarification", to_requester=True, question=note.note,
                           clock_stops=stops, key=f"clarification.{self._now().date()}")
        await self._milestone(f"clarification-asked-{self._now().isoformat()}", "clarification",
                              actor=note.officer, detail={"clock_stopped": stops})
        return UpdateResult(message="clarification requested" + (
            "; the clock is stopped until the answer arrives" if stops else ""))

    @request_clarification.validator
    def _validate_clarification(self, note: OfficerNote) -> None:
        self._require_open()
        if self._status is Status.AWAITING_CLARIFICATION:
            raise ValueError("a clarification is already awaited")

    @workflow.update(name="clarification_received")
    async def clarification_received(self, note: OfficerNote) -> UpdateResult:
        if self._paused_since is not None:
            self._paused_days += _days_between(self._paused_since.date(), self._now().date())
            await self._compute_deadline()  # before the clock restarts: no false overdue
            self._paused_since = None
        self._set_status(self._previous_status)
        await self._milestone(f"clarification-received-{self._now().isoformat()}",
                              "clarification", actor=note.officer, due_at=self._dl.due_at,
                              detail={"paused_days": self._paused_days})
        return UpdateResult(message="clarification recorded", due_at=self._dl.due_at)

    @clarification_received.validator
    def _validate_clarification_received(self, note: OfficerNote) -> None:
        if self._status is not Status.AWAITING_CLARIFICATION:
            raise ValueError("no clarification is awaited for this request")

    @workflow.update(name="approve")
    async def approve(self, action: OfficerAction) -> UpdateResult:
        self._approved = True
        await self._milestone("approved", "approval", actor=action.officer)
        return UpdateResult(message="approved")

    @approve.validator
    def _validate_approve(self, action: OfficerAction) -> None:
        self._require_open()
        if self._executing:
            raise ValueError("execution has already begun")

    @workflow.update(name="deny")
    async def deny(self, denial: Denial) -> UpdateResult:
        self._denial = denial
        await self._milestone("denied", "denial", actor=denial.officer,
                              detail={"reason": denial.reason,
                                      "manifestly_unfounded": denial.manifestly_unfounded})
        return UpdateResult(message="denied; the requester is told the reasons")

    @deny.validator
    def _validate_deny(self, denial: Denial) -> None:
        self._require_open()
        if self._executing:
            raise ValueError("execution has already begun: cancel instead")

    @workflow.update(name="cancel")
    async def cancel(self, note: OfficerNote) -> UpdateResult:
        self._cancelled = note
        await self._milestone("cancelled", "cancel", actor=note.officer,
                              detail={"reason": note.note})
        return UpdateResult(message="cancelled; nothing not yet started will start")

    @cancel.validator
    def _validate_cancel(self, note: OfficerNote) -> None:
        self._require_open()

    @workflow.update(name="resolve_connector")
    async def resolve_connector(self, decision: ConnectorDecision) -> UpdateResult:
        self._decisions[decision.connector] = decision
        return UpdateResult(message=f"{decision.connector}: {decision.resolution.value}")

    @resolve_connector.validator
    def _validate_resolve(self, decision: ConnectorDecision) -> None:
        state = self._connectors.get(decision.connector)
        if state is None or state.status is not ConnectorStatus.FAILED:
            failing = [n for n, s in self._connectors.items() if s.status is ConnectorStatus.FAILED]
            raise ValueError(f"connector {decision.connector} is not waiting for an officer; "
                             f"failing connectors: {', '.join(failing) or 'none'}")

    @workflow.query(name="status")
    def status(self) -> RequestStatus:
        request = self._req
        return RequestStatus(
            request_id=request.request_id, status=self._status,
            rights=[r.value for r in request.rights], jurisdiction=request.jurisdiction.value,
            received_at=request.received_at,
            due_at=self._deadline.due_at if self._deadline else None,
            target_on=self._deadline.target_on if self._deadline else None,
            extended=self._extended, overdue=self._overdue,
            verification={t.target_id: (t.how or t.method.value) if t.verified else "pending"
                          for t in self._targets},
            wrong_codes=self._wrong_codes,
            connectors=list(self._connectors.values()),
            steps=list(self._steps.values()),
            outcome=self._outcome)

    # Plumbing ------------------------------------------------------------------------------

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
            lambda: self._status is not Status.AWAITING_CLARIFICATION or self._stopping)
        self._check_stopped()

    def _require_open(self) -> None:
        if self._status in CLOSED or self._stopping:
            raise ValueError(f"the request is closed ({self._status})")
        if self._deadline is None:
            raise ValueError("the request is still being received; try again in a moment")

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

    def _upsert(self, *updates: Any) -> None:
        workflow.upsert_search_attributes(list(updates))

    async def _activity(self, name: str, payload: Any, *, result_type: Any = None,
                        task_queue: str | None = None, timeout: timedelta = QUICK) -> Any:
        return await workflow.execute_activity(
            name, payload, result_type=result_type, task_queue=task_queue,
            start_to_close_timeout=timeout,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)))

    async def _notice(self, template: str, *, to_requester: bool = False,
                      key: str | None = None, **context: Any) -> None:
        request = self._req
        notice = Notice(request_id=request.request_id, template=template,
                        language=request.language,
                        to=request.requester.email if to_requester else None,
                        message_id=f"<{key or template}.{request.request_id}@dsr>",
                        context=context)
        await self._activity("mail.send_notice", notice)

    async def _milestone(self, key: str, step: str, *, actor: str = "orchestrator",
                         detail: dict[str, Any] | None = None, **fields: Any) -> None:
        milestone = Milestone(request_id=self._req.request_id, key=key, step=step,
                              at=self._now(), actor=actor, detail=detail or {},
                              status=fields.pop("status", self._status.value), **fields)
        await self._activity("register.milestone", milestone)


def _counts(result: Any) -> dict[str, int]:
    if isinstance(result, p.AccessResult):
        return result.records
    if isinstance(result, p.EraseResult):
        return result.erased
    if isinstance(result, p.RectifyResult):
        return result.updated
    if isinstance(result, p.FlagResult):
        return {"records": result.records}
    return {}


def _operation_of(result: Any) -> p.Operation:
    if isinstance(result, p.AccessResult):
        return p.Operation.ACCESS
    if isinstance(result, p.EraseResult):
        return p.Operation.ERASE
    if isinstance(result, p.RectifyResult):
        return p.Operation.RECTIFY
    return result.operation  # type: ignore[no-any-return]


def _action_for(state: ConnectorState) -> str:
    return {
        ConnectorStatus.DONE_BY_HAND: "done by hand",
        ConnectorStatus.SKIPPED: "skipped",
        ConnectorStatus.DONE: "nothing held",
    }.get(state.status, "not completed")


def _failure_type(error: ActivityError) -> str:
    """The failure's type only: a connector's message may quote personal data."""
    cause = error.cause
    kind = getattr(cause, "type", None) or type(cause).__name__
    return str(kind)


def _days_between(start: date, end: date) -> int:
    return max((end - start).days, 0)
