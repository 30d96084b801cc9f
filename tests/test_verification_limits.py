"""The one-time code's limits hold under concurrency, on the dev server: however many code
Updates arrive at once, no more codes are compared than the policy allows, and after the lock
no code is accepted until an officer issues a new one.

The server admits about ten in-flight Updates per workflow and refuses the rest, so what is
counted is the codes compared (each is one ``verification.check_code`` activity in the
request's history, and a wrong one is in ``wrong_codes``), not the Updates accepted."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from dsr.status import Status
from services import workflow_client as officer
from tests.conftest import Harness
from tests.test_requests_e2e import emailed_code, send_code
from workflows.models import CodeResult, OfficerAction

AT_ONCE = 50
# Why a code Update is refused without being compared: the server's in-flight limit, or the
# lock (checked when the Update is admitted, and again once its turn comes).
REFUSALS = ("refused: verification is locked after too many wrong codes",
            "Temporal refused the call",
            # Once the right code is accepted (when it is compared before the limit), the
            # codes still in flight find the request past verification, or closed.
            "refused: the request is not waiting for a code", "request ")


async def codes_compared(handle: WorkflowHandle) -> int:
    return len([
        event async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name
        == "verification.check_code"])


def wrong_codes(right: str, count: int) -> list[str]:
    return [f"{(int(right) + n) % 1_000_000:06d}" for n in range(1, count + 1)]


async def all_at_once(h: Harness, request_id: str,
                      codes: list[str]) -> list[CodeResult | BaseException]:
    return await asyncio.gather(*(send_code(h, request_id, code) for code in codes),
                                return_exceptions=True)


def refused(results: list[CodeResult | BaseException]) -> list[str]:
    messages = [str(r) for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, CodeResult | officer.OfficerError) for r in results), results
    assert all(m.startswith(REFUSALS) for m in messages), set(messages)
    return messages


async def test_fifty_codes_at_once_compare_no_more_than_the_limit(harness: Harness) -> None:
    h = harness
    limit = h.settings.code_max_attempts
    request = h.controller_erasure()
    rid = request.request_id
    handle = await h.submit(request)
    right = await emailed_code(h, rid)

    results = await all_at_once(h, rid, wrong_codes(right, AT_ONCE))

    answered = [r for r in results if isinstance(r, CodeResult)]
    assert len(refused(results)) == AT_ONCE - len(answered)
    assert await codes_compared(handle) == len(answered) == limit
    assert sorted(r.attempts_left for r in answered) == list(range(limit))
    assert not any(r.accepted for r in answered)
    assert [r.locked for r in answered if r.attempts_left == 0] == [True]
    status = await h.status(rid)
    assert status.status is Status.VERIFICATION_LOCKED and status.wrong_codes == limit

    # The right code after the lock is refused, and compared with nothing.
    with pytest.raises(officer.OfficerError, match="verification is locked"):
        await send_code(h, rid, right)
    assert await codes_compared(handle) == limit

    await h.update(rid, "new_code", OfficerAction(officer="Ada"))
    new = await emailed_code(h, rid, round_=2)
    assert (await send_code(h, rid, new)).accepted
    assert (await handle.result()).status is Status.ANSWERED
    assert await codes_compared(handle) == limit + 1


async def test_a_right_code_among_wrong_ones_is_never_accepted_after_the_lock(
        harness: Harness) -> None:
    """The right code sent with 49 wrong ones, last: accepted only if fewer wrong codes than
    the limit were compared before it; otherwise refused. Either way at most the limit of
    codes is compared, and once locked a new code is needed."""
    h = harness
    limit = h.settings.code_max_attempts
    request = h.controller_erasure()
    rid = request.request_id
    handle = await h.submit(request)
    right = await emailed_code(h, rid)

    results = await all_at_once(h, rid, [*wrong_codes(right, AT_ONCE - 1), right])

    refused(results)
    compared = await codes_compared(handle)
    assert compared <= limit
    status = await h.status(rid)
    last = results[-1]
    if isinstance(last, CodeResult) and last.accepted:
        assert status.wrong_codes < limit and compared == status.wrong_codes + 1
    else:
        assert status.wrong_codes == compared == limit
        assert status.status is Status.VERIFICATION_LOCKED
        await h.update(rid, "new_code", OfficerAction(officer="Ada"))
        assert (await send_code(h, rid, await emailed_code(h, rid, round_=2))).accepted
    assert (await handle.result()).status is Status.ANSWERED
