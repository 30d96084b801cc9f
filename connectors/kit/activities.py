"""A connector's methods as Temporal activities, run in a thread, and the heartbeat the kit
sends from that thread; input errors fail without retry, store errors name no value."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import typing
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DBAPIError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import Connector

_thread_heartbeat: contextvars.ContextVar[Callable[..., None] | None] = contextvars.ContextVar(
    "connector_thread_heartbeat", default=None
)


def heartbeat(*details: Any) -> None:
    """Tell Temporal the activity is alive; does nothing outside an activity."""
    beat = _thread_heartbeat.get()
    if beat is not None:
        beat(*details)
    elif activity.in_activity():
        activity.heartbeat(*details)


def connector_activities(connector: Connector) -> list[Callable[..., Any]]:
    """The connector's methods as async Temporal activities named ``"<name>.<method>"``."""
    return [
        _as_activity(f"{connector.name}.{method}", getattr(connector, method))
        for method in connector.activities
    ]


def _as_activity(name: str, method: Callable[[Any], Any]) -> Callable[..., Any]:
    hints = typing.get_type_hints(method)
    input_type = next(hint for parameter, hint in hints.items() if parameter != "return")

    async def run(call: Any) -> Any:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()

        def beat(*details: Any) -> None:
            # activity.heartbeat must run on the event loop, in the activity's context.
            loop.call_soon_threadsafe(
                functools.partial(activity.heartbeat, *details), context=context
            )

        token = _thread_heartbeat.set(beat)
        try:
            return await asyncio.to_thread(method, call)
        except ConnectorInputError as error:
            raise ApplicationError(
                str(error), type=type(error).__name__, non_retryable=True
            ) from None
        except DBAPIError as error:
            # The driver's message may quote stored values: report the kind of failure only.
            raise ApplicationError(
                f"{name}: store error {type(error.orig).__name__}", type="StoreError"
            ) from None
        finally:
            _thread_heartbeat.reset(token)

    run.__name__ = run.__qualname__ = name.replace(".", "_")
    run.__annotations__ = {"call": input_type, "return": hints["return"]}
    return activity.defn(name=name)(run)
