"""Activity calls that trust only the product's own results.

A result that is not the product's (``dsr.converter.Refused``: say, a task taken from the
queue by someone without the keys and answered in plaintext) is that call's failure: the call
is made again after a backoff, and after ``refusals`` such results in a row (if given) fails
with :class:`ResultRefused`. A normal result makes no extra command, so running requests
replay as before.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar, overload

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import ActivityInterface
    from dsr.converter import Refused

MAX_BACKOFF = timedelta(seconds=30)
In = TypeVar("In")
Out = TypeVar("Out")


class ResultRefused(ApplicationError):
    """A call's result the workflow may not use; ``why`` names what is wrong, never data."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name}: {why}", type="ForeignResult", non_retryable=True)
        self.why = why


@overload
async def activity(call: ActivityInterface[In, Out], arg: In, *, refusals: int | None = None,
                   backoff: timedelta = ..., **options: Any) -> Out: ...
@overload
async def activity(call: str, arg: Any, *, refusals: int | None = None,
                   backoff: timedelta = ..., **options: Any) -> Any: ...
async def activity(call: ActivityInterface[Any, Any] | str, arg: Any, *,
                   refusals: int | None = None, backoff: timedelta = timedelta(seconds=1),
                   **options: Any) -> Any:
    """``workflow.execute_activity`` of ``call``, called again while its result is refused.
    An orchestrator activity's result is read as its interface's output; a connector's
    activity is called by name, with its ``result_type`` among ``options``."""
    name = _name(call, options)
    return await _repeat(name, refusals, backoff,
                         lambda: workflow.execute_activity(name, arg, **options))


async def local_activity(call: ActivityInterface[In, Out], arg: In, **options: Any) -> Out:
    """``workflow.execute_local_activity`` of ``call``, called again while refused."""
    name = _name(call, options)
    result: Out = await _repeat(name, None, timedelta(seconds=1),
                                lambda: workflow.execute_local_activity(name, arg, **options))
    return result


def _name(call: ActivityInterface[Any, Any] | str, options: dict[str, Any]) -> str:
    """The activity's name; an interface's output is the call's ``result_type``."""
    if isinstance(call, str):
        return call
    options["result_type"] = call.output
    return call.name


async def _repeat(name: str, refusals: int | None, backoff: timedelta, call: Any) -> Any:
    refused = 0
    while True:
        result = await call()
        if not isinstance(result, Refused):
            return result
        refused += 1
        workflow.logger.warning(
            "activity result refused, calling again",
            extra={"activity": name, "reason": result.reason, "refused": refused},
        )
        if refusals is not None and refused >= refusals:
            raise ResultRefused(name, "its result was not the product's")
        await workflow.sleep(min(backoff * 2 ** (refused - 1), MAX_BACKOFF),
                             summary=f"{name} result refused")
