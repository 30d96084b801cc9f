"""Anchoring the audit ledger's head outside the database (``activities/anchor.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from activities.interfaces import ActivityInterface
from dsr.anchors import Anchor


class AnchorInput(BaseModel):
    as_of: datetime


ANCHOR_LEDGER = ActivityInterface[AnchorInput, Anchor](
    name="ledger.anchor", input=AnchorInput, output=Anchor
)
