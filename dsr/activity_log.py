"""One log line per activity, with the request id bound to every line logged inside it.

The request id comes from the workflow id (``dsr-<request id>``); payloads are never logged,
and a failure is logged by its type only, since its message may quote personal data.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from dsr.logging import get_logger

log = get_logger()


class RequestLogInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _LoggedActivity(next)


class _LoggedActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        workflow_id = info.workflow_id or ""
        request_id = workflow_id.removeprefix("dsr-")
        started = time.monotonic()
        with structlog.contextvars.bound_contextvars(
            request_id=request_id, activity=info.activity_type, attempt=info.attempt
        ):
            try:
                result = await super().execute_activity(input)
            except BaseException as error:
                log.warning("activity failed", error=type(error).__name__,
                            ms=round((time.monotonic() - started) * 1000))
                raise
            log.info("activity completed", ms=round((time.monotonic() - started) * 1000))
            return result
