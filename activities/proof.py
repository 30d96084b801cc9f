"""Purging proof past its retention: confirmation records are kept 5 years, then removed.

Each run records the purge in the audit ledger (counts only) and then anchors the ledger's
chain head outside the database, so the daily Schedule is also the ledger's regular anchor.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session
from temporalio import activity

from dsr import ledger
from dsr.database import ConfirmationRecord, MilestoneRecord

if TYPE_CHECKING:
    from dsr.settings import Settings

PURGE_ACTOR = "confirmation-purge-schedule"


class PurgeInput(BaseModel):
    as_of: datetime


class PurgeResult(BaseModel):
    purged: int
    request_ids: list[str]


class ProofActivities:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._key = ledger.ledger_key(settings.secret)
        self._anchors = ledger.anchors_path(settings)

    @activity.defn(name="proof.purge_confirmations")
    def purge_confirmations(self, purge: PurgeInput) -> PurgeResult:
        with Session(self._engine) as session, session.begin():
            expired = list(session.scalars(
                select(ConfirmationRecord.request_id)
                .where(ConfirmationRecord.retain_until <= purge.as_of)
            ))
            session.execute(delete(ConfirmationRecord)
                            .where(ConfirmationRecord.request_id.in_(expired)))
            session.add_all(
                MilestoneRecord(request_id=request_id, key="proof-purged", step="purge",
                                at=purge.as_of, actor=PURGE_ACTOR,
                                detail={"reason": "confirmation retention ended"})
                for request_id in expired
            )
            for request_id in expired:
                ledger.append(session, "purge", PURGE_ACTOR, purge.as_of, request_id,
                              {"purged": "confirmation", "records": 1,
                               "reason": "confirmation retention ended"}, self._key)
            ledger.append(session, "purge", PURGE_ACTOR, purge.as_of, None,
                          {"purged": "confirmations", "count": len(expired)}, self._key)
        ledger.anchor(self._engine, self._key, self._anchors)
        return PurgeResult(purged=len(expired), request_ids=expired)
