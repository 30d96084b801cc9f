"""An affiliate connector whose system is down: discovery answers, erasure always fails.

It stands in for an outside system that cannot exist here; everything around it is real."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from temporalio.client import Client
from temporalio.worker import Worker

from connectors.kit.activities import connector_activities
from dsr.connector_contract import (
    CategoryHolding,
    Discovery,
    EraseInput,
    EraseResult,
    Scope,
    Strategy,
    Treatment,
)
from dsr.settings import Settings

NAME = "outage"


def registry_entry(suffix: str) -> dict[str, Any]:
    return {"name": NAME, "affiliate": "Telvox", "products": ["Voice"],
            "task_queue": f"dsr-connector-outage-{suffix}", "role": "end_user",
            "identity_types": ["phone"], "operations": ["discover", "erase"]}


class OutageConnector:
    name: ClassVar[str] = NAME
    activities: ClassVar[tuple[str, ...]] = ("discover", "erase")
    categories: ClassVar[tuple[str, ...]] = ("call_recordings",)
    treatments: ClassVar[tuple[Treatment, ...]] = ()  # it never gets to erase
    erase_calls = 0

    def discover(self, scope: Scope) -> Discovery:
        old = scope.as_of - timedelta(days=400)
        return Discovery(connector=NAME, holdings=[
            CategoryHolding(category="call_recordings", records=2, earliest=old, latest=old)])

    def erase(self, call: EraseInput) -> EraseResult:
        OutageConnector.erase_calls += 1
        raise ConnectionError("the affiliate's system refused the connection")


def outage_worker(task_queue: str) -> Any:
    def make(client: Client, settings: Settings) -> Worker:
        return Worker(client, task_queue=task_queue,
                      activities=connector_activities(OutageConnector()))
    return make


class StandbyConnector:
    """A healthy connector whose worker starts late: it erases what it holds."""

    name: ClassVar[str] = "standby"
    activities: ClassVar[tuple[str, ...]] = ("discover", "erase")
    categories: ClassVar[tuple[str, ...]] = ("call_recordings",)
    treatments: ClassVar[tuple[Treatment, ...]] = (
        Treatment(category="call_recordings", table="recordings", column="*",
                  strategy=Strategy.DELETE_ROW),
    )

    def discover(self, scope: Scope) -> Discovery:
        old = scope.as_of - timedelta(days=400)
        return Discovery(connector=self.name, holdings=[
            CategoryHolding(category="call_recordings", records=3, earliest=old, latest=old)])

    def erase(self, call: EraseInput) -> EraseResult:
        return EraseResult(connector=self.name, erased={"call_recordings": 3})


def standby_entry(suffix: str) -> dict[str, Any]:
    return registry_entry(suffix) | {"name": "standby",
                                     "task_queue": f"dsr-connector-standby-{suffix}"}
