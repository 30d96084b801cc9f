"""An affiliate connector whose errors quote the person's email, as careless code does.

It stands in for an outside system that cannot exist here. Run as its own worker process
(``python -m tests.leaky_connector TASK_QUEUE``), so its log lines are real ones; the leak test
checks that the error it raises reaches Temporal, the officer and the logs without the email.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, ClassVar

from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from connectors.kit.activities import connector_activities
from dsr.connector_contract import AccessInput, AccessResult, Discovery, Scope, Treatment
from dsr.logging import configure
from dsr.settings import load_settings
from dsr.temporal import connect

NAME = "leaky"


def registry_entry(task_queue: str) -> dict[str, Any]:
    return {"name": NAME, "affiliate": "Telvox", "products": ["CRM"], "task_queue": task_queue,
            "role": "group", "identity_types": ["email"], "operations": ["discover", "access"],
            "categories": []}


class LeakyConnector:
    name: ClassVar[str] = NAME
    activities: ClassVar[tuple[str, ...]] = ("discover", "access")
    categories: ClassVar[tuple[str, ...]] = ()
    treatments: ClassVar[tuple[Treatment, ...]] = ()

    def discover(self, scope: Scope) -> Discovery:
        emails = ", ".join(identity.value for identity in scope.identities)
        raise ApplicationError(f"no CRM contact found for {emails} (lookup by email failed)",
                               non_retryable=True)

    def access(self, call: AccessInput) -> AccessResult:
        raise ApplicationError(f"cannot export {call.scope.identities}", non_retryable=True)


async def serve(task_queue: str) -> None:
    settings = load_settings()
    client = await connect(settings)
    worker = Worker(client, task_queue=task_queue,
                    activities=connector_activities(LeakyConnector()))
    await worker.run()


if __name__ == "__main__":
    configure()
    asyncio.run(serve(sys.argv[1]))
