"""The hold check: what each erasure may remove now, and what is kept, until when
(``activities/legal_hold.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from activities.interfaces import ActivityInterface
from dsr.connector_contract import Discovery
from dsr.models import Identity
from dsr.retention import ErasurePlan


class HoldCheck(BaseModel):
    request_id: str
    discoveries: list[Discovery]
    as_of: datetime
    # The subject's identities: hashed under every key held, so a hold placed before a change
    # of server secret still covers a request registered after it, and the reverse. Empty (a
    # check asked before this field): the hashes the register kept at intake.
    identities: list[Identity] = Field(default_factory=list, repr=False)
    # False: an approver decided the draft rules that would keep some of it do not apply.
    apply_drafts: bool = True


CHECK_HOLDS = ActivityInterface[HoldCheck, ErasurePlan](
    name="legal_hold.assess", input=HoldCheck, output=ErasurePlan
)
