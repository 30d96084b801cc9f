"""Purging proof past its retention (``activities/proof.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from activities.interfaces import ActivityInterface


class PurgeInput(BaseModel):
    as_of: datetime


class PurgeResult(BaseModel):
    purged: int
    request_ids: list[str]
    # Register rows (with their milestones) purged, the proof period having passed.
    register_purged: int = 0
    register_request_ids: list[str] = Field(default_factory=list)
    packages_purged: list[str] = Field(default_factory=list)  # their download link ended


PURGE_CONFIRMATIONS = ActivityInterface[PurgeInput, PurgeResult](
    name="proof.purge_confirmations", input=PurgeInput, output=PurgeResult
)
