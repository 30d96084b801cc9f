"""Keeping the deadline: computing it, reminding the officer, marking it overdue, extending
it, and stopping the clock for a clarification where the law says so."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import partial

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.policy import COMPUTE_DEADLINE, EXTEND_DEADLINE, ExtensionQuery
    from dsr import search_attributes as sa
    from dsr.deadlines import DeadlineQuery
    from dsr.models import RightsRequest
    from dsr.status import CLOSED, Status
    from workflows.models import Extension, OfficerNote, UpdateResult


from workflows.base import REMINDERS, RequestState

PERIOD_FROM_VERIFICATION = "period-from-verification"
CLARIFICATION_OF_SCOPE = "clarification-of-scope"


class DeadlineKeeping(RequestState):
    async def _compute_deadline(self, request: RightsRequest) -> None:
        self._begin("deadline")
        query = DeadlineQuery(
            jurisdiction=request.jurisdiction,
            rights=self._deadline_rights(request),
            received_at=request.received_at,
            paused_days=self._paused_days,
            verified_at=self._verified_at,
        )
        self._deadline = await self._quick(COMPUTE_DEADLINE, query)
        self._done("deadline", f"due {self._deadline.due_on.isoformat()}")
        self._upsert(sa.DUE_AT.value_set(self._deadline.due_at))
        await self._milestone(
            "deadline",
            "deadline",
            due_at=self._deadline.due_at,
            policy_version=self._deadline.policy_version,
            detail={
                "due_on": self._deadline.due_on.isoformat(),
                "target_on": self._deadline.target_on.isoformat(),
                "basis": self._deadline.basis,
            },
        )

    async def _count_from_verification(self, request: RightsRequest) -> None:
        """Where the period starts only once identity is confirmed (UK Art. 12A), it is
        counted again from now, the day verification completed."""
        if not self._dl.starts_at_verification or not self._period_from_verification:
            return
        self._verified_at = self._now()
        await self._compute_deadline(request)
        await self._milestone("deadline-from-verification", "deadline", due_at=self._dl.due_at,
                              detail={"due_on": self._dl.due_on.isoformat(),
                                      "basis": self._dl.basis})

    async def _watch_deadline(self) -> None:
        while self._status not in CLOSED:
            due = self._dl.due_at
            pending = self._pending_reminders(due)
            if not pending or self._paused_since is not None:
                await workflow.wait_condition(
                    partial(self._deadline_moved, due, resumed=bool(pending))
                )
                continue
            name, at = pending[0]
            try:
                await workflow.wait_condition(
                    partial(self._deadline_moved, due),
                    timeout=max(at - self._now(), timedelta(seconds=1)),
                    timeout_summary=name,
                )
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
        events = [
            (name, due - before) for name, before in REMINDERS if (name, due) not in self._fired
        ]
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
        await self._notice(
            "officer_reminder", due_on=due_on.isoformat(), days_left=days, key=f"{name}.{due_on}"
        )

    @workflow.update(name="extend")
    async def extend(self, extension: Extension) -> UpdateResult:
        extension = self._acting("extend", extension)
        limit = self._dl.extension_limit_on
        assert limit is not None
        until = extension.until or limit
        self._deadline = await self._quick(
            EXTEND_DEADLINE, ExtensionQuery(deadline=self._dl, until=until)
        )
        self._extended = True
        self._upsert(sa.DUE_AT.value_set(self._dl.due_at))
        await self._notice(
            "extension_notice",
            to_requester=True,
            due_on=until.isoformat(),
            reason=extension.reason,
            key="extension",
        )
        await self._milestone(
            "extended",
            "deadline",
            actor=extension.actor,
            due_at=self._dl.due_at,
            extended=True,
            detail={"due_on": until.isoformat(), "reason": extension.reason},
        )
        return UpdateResult(message=f"extended to {until.isoformat()}", due_at=self._dl.due_at)

    @extend.validator
    def _validate_extend(self, extension: Extension) -> None:
        self._authorize("extend", extension)
        self._require_open()
        deadline = self._dl
        if self._extended:
            raise ValueError("the deadline has already been extended once")
        if deadline.extension_limit_on is None or deadline.extension_notice_by is None:
            raise ValueError(
                f"no extension is allowed for this request in {deadline.jurisdiction.value}"
            )
        if self._now() > deadline.extension_notice_by:
            raise ValueError(
                "the notice window for an extension closed on "
                f"{deadline.extension_notice_by.date().isoformat()}"
            )
        until = extension.until or deadline.extension_limit_on
        if until > deadline.extension_limit_on:
            raise ValueError(
                f"{until.isoformat()} is beyond the limit {deadline.extension_limit_on.isoformat()}"
            )
        if until <= deadline.due_on:
            raise ValueError(
                f"{until.isoformat()} is not after the current due date "
                f"{deadline.due_on.isoformat()}"
            )

    @workflow.update(name="request_clarification")
    async def request_clarification(self, note: OfficerNote) -> UpdateResult:
        """A question to the requester. Requests begun before clarification-of-scope stop the
        clock for any question where the law stops it; later ones only for a question about
        what the request covers (``request_scope_clarification``, UK GDPR Art. 12A)."""
        note = self._acting("request_clarification", note)
        return await self._ask(note, stops=not self._scope_clock)

    @workflow.update(name="request_scope_clarification")
    async def request_scope_clarification(self, note: OfficerNote) -> UpdateResult:
        note = self._acting("request_scope_clarification", note)
        return await self._ask(note, stops=True)

    @request_scope_clarification.validator
    def _validate_scope_clarification(self, note: OfficerNote) -> None:
        self._authorize("request_scope_clarification", note)
        self._validate_question()

    async def _ask(self, note: OfficerNote, stops: bool) -> UpdateResult:
        stops = stops and self._dl.clock_stops_for_clarification
        if stops:
            self._paused_since = self._now()
        self._previous_status = self._status
        self._set_status(Status.AWAITING_CLARIFICATION)
        await self._notice(
            "clarification",
            to_requester=True,
            question=note.note,
            clock_stops=stops,
            key=f"clarification.{self._now().date()}",
        )
        await self._milestone(
            f"clarification-asked-{self._now().isoformat()}",
            "clarification",
            actor=note.actor,
            detail={"clock_stopped": stops},
        )
        return UpdateResult(
            message="clarification requested"
            + ("; the clock is stopped until the answer arrives" if stops else "")
        )

    @request_clarification.validator
    def _validate_clarification(self, note: OfficerNote) -> None:
        self._authorize("request_clarification", note)
        self._validate_question()

    def _validate_question(self) -> None:
        self._require_open()
        if self._status is Status.AWAITING_CLARIFICATION:
            raise ValueError("a clarification is already awaited")

    @workflow.update(name="clarification_received")
    async def clarification_received(self, note: OfficerNote) -> UpdateResult:
        note = self._acting("clarification_received", note)
        if self._paused_since is not None:
            self._paused_days += _days_between(self._paused_since.date(), self._now().date())
            await self._compute_deadline(self._req)  # before the clock restarts: no false overdue
            self._paused_since = None
        self._set_status(self._previous_status)
        await self._milestone(
            f"clarification-received-{self._now().isoformat()}",
            "clarification",
            actor=note.actor,
            due_at=self._dl.due_at,
            detail={"paused_days": self._paused_days},
        )
        return UpdateResult(message="clarification recorded", due_at=self._dl.due_at)

    @clarification_received.validator
    def _validate_clarification_received(self, note: OfficerNote) -> None:
        self._authorize("clarification_received", note)
        if self._status is not Status.AWAITING_CLARIFICATION:
            raise ValueError("no clarification is awaited for this request")


def _days_between(start: date, end: date) -> int:
    return max((end - start).days, 0)
