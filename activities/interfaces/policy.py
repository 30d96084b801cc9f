"""Policy read at the start of a request and kept in its history, and the deadline computed
and extended from it (``activities/policy.py``)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from activities.interfaces import ActivityInterface
from dsr.assertions import Role
from dsr.connector_registry import ConnectorEntry
from dsr.deadlines import Deadline, DeadlineQuery
from dsr.models import Right


class PolicyQuery(BaseModel):
    as_of: datetime


class RequestPolicy(BaseModel):
    code_validity_hours: int
    code_max_attempts: int
    panel_reauth_minutes: int
    approval_required_for: list[Right]
    connector_max_attempts: int
    connector_retry_seconds: float
    connectors: list[ConnectorEntry]
    connector_start_timeout_seconds: float = 300
    connector_missing_retry_seconds: float = 60
    connector_heartbeat_seconds: float = 120
    # Who may act on the request: the officer authority's public keys (key id to key) and the
    # roles each action needs, as they were when the request began.
    authorities: dict[str, str] = Field(default_factory=dict)
    action_roles: dict[str, list[Role]] = Field(default_factory=dict)


class ExtensionQuery(BaseModel):
    deadline: Deadline
    until: date


SNAPSHOT_POLICY = ActivityInterface[PolicyQuery, RequestPolicy](
    name="policy.snapshot", input=PolicyQuery, output=RequestPolicy
)
COMPUTE_DEADLINE = ActivityInterface[DeadlineQuery, Deadline](
    name="deadline.compute", input=DeadlineQuery, output=Deadline
)
EXTEND_DEADLINE = ActivityInterface[ExtensionQuery, Deadline](
    name="deadline.extend", input=ExtensionQuery, output=Deadline
)
