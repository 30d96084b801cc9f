"""The retention sweep's plan and its record (``activities/sweep.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from activities.interfaces import ActivityInterface
from dsr.connector_contract import EraseRule


class SweepPlanQuery(BaseModel):
    as_of: datetime


class ConnectorSweep(BaseModel):
    """One connector's part of a sweep: its rules, and the categories a legal hold keeps."""

    connector: str
    task_queue: str
    rules: list[EraseRule] = Field(default_factory=list)
    held: dict[str, list[str]] = Field(default_factory=dict)  # category -> hold ids


class SweepPlan(BaseModel):
    as_of: datetime
    policy_version: str
    connectors: list[ConnectorSweep] = Field(default_factory=list)
    # How long to wait for a connector (from settings, so a deployment tunes them).
    start_timeout_seconds: float = 300
    heartbeat_seconds: float = 120
    max_attempts: int = 5
    retry_seconds: float = 1.0


class SweepReport(BaseModel):
    """What a sweep did: counts only, no personal data."""

    sweep_id: str
    as_of: datetime
    policy_version: str
    anonymised: dict[str, dict[str, int]] = Field(default_factory=dict)  # connector -> cat -> n
    already_done: list[str] = Field(default_factory=list)  # connectors that had done this sweep
    failed: dict[str, str] = Field(default_factory=dict)  # connector -> why (no message text)
    held: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    not_swept: list[str] = Field(default_factory=list)  # connectors with no period to apply

    @property
    def total(self) -> int:
        return sum(sum(counts.values()) for counts in self.anonymised.values())


class RecordSweep(BaseModel):
    report: SweepReport
    at: datetime  # when the sweep finished (the workflow's clock)


PLAN_SWEEP = ActivityInterface[SweepPlanQuery, SweepPlan](
    name="retention.sweep_plan", input=SweepPlanQuery, output=SweepPlan
)
# The ledger entry's sequence number.
RECORD_SWEEP = ActivityInterface[RecordSweep, int](
    name="retention.record_sweep", input=RecordSweep, output=int
)
