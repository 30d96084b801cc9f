"""The legal-hold check: what each erasure may remove now, and what must wait, until when."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from temporalio import activity

from connectors.protocol import Discovery
from connectors.registry import load_registry
from dsr.retention import ErasurePlan, load_retention_policy, plan_erasure
from dsr.settings import Settings


class HoldCheck(BaseModel):
    request_id: str
    discoveries: list[Discovery]
    as_of: datetime


class LegalHoldActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name="legal_hold.assess")
    def assess(self, check: HoldCheck) -> ErasurePlan:
        policy = load_retention_policy(self._settings.policy_dir / "retention.yaml")
        registry = load_registry(self._settings.connector_registry)
        declared = {e.name: set(e.categories) for e in registry.connectors if e.categories}
        return plan_erasure(check.discoveries, check.as_of, policy, declared)
