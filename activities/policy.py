"""Policy read at the start of a request and kept in its history: a lawyer editing a file
later changes new requests, never the replay of running ones."""

from __future__ import annotations

from temporalio import activity

from activities.interfaces.policy import (
    COMPUTE_DEADLINE,
    EXTEND_DEADLINE,
    SNAPSHOT_POLICY,
    ExtensionQuery,
    PolicyQuery,
    RequestPolicy,
)
from dsr.connector_registry import load_registry
from dsr.credentials import authority, load_action_roles
from dsr.deadline_policy import load_deadline_policy
from dsr.deadlines import (
    Deadline,
    DeadlineQuery,
    compute_deadline,
    end_of_day,
)
from dsr.settings import Settings


class PolicyActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name=SNAPSHOT_POLICY.name)
    def snapshot(self, _: PolicyQuery) -> RequestPolicy:
        settings = self._settings
        return RequestPolicy(
            code_validity_hours=settings.code_validity_hours,
            code_max_attempts=settings.code_max_attempts,
            panel_reauth_minutes=settings.panel_reauth_minutes,
            approval_required_for=settings.approval_required_for,
            connector_max_attempts=settings.connector_max_attempts,
            connector_retry_seconds=settings.connector_retry_seconds,
            connector_start_timeout_seconds=settings.connector_start_timeout_seconds,
            connector_missing_retry_seconds=settings.connector_missing_retry_seconds,
            connector_heartbeat_seconds=settings.connector_heartbeat_seconds,
            connectors=load_registry(settings.connector_registry).connectors,
            authorities=authority(settings.secret).public,
            action_roles=load_action_roles(settings.policy_dir),
        )

    @activity.defn(name=COMPUTE_DEADLINE.name)
    def compute(self, query: DeadlineQuery) -> Deadline:
        return compute_deadline(query, self._policy())

    @activity.defn(name=EXTEND_DEADLINE.name)
    def extend(self, query: ExtensionQuery) -> Deadline:
        """The deadline moved to the officer's date, at the end of that local day."""
        timezone = self._policy().jurisdictions[query.deadline.jurisdiction].time_zone
        return query.deadline.model_copy(
            update={
                "target_on": query.until,
                "due_on": query.until,
                "due_at": end_of_day(query.until, timezone),
            }
        )

    def _policy(self):  # type: ignore[no-untyped-def]
        return load_deadline_policy(self._settings.policy_dir / "deadlines.yaml")
