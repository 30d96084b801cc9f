"""The request register: a request's intake and its milestones (``activities/register.py``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from activities.interfaces import ActivityInterface
from dsr.models import RightsRequest
from dsr.register import Milestone


class Intake(BaseModel):
    request: RightsRequest
    submitted_by: str | None = None


class Registered(BaseModel):
    possible_duplicate_of: list[str] = Field(default_factory=list)


RECORD_INTAKE = ActivityInterface[Intake, Registered](
    name="register.intake", input=Intake, output=Registered
)
RECORD_MILESTONE = ActivityInterface[Milestone, None](
    name="register.milestone", input=Milestone, output=None
)
