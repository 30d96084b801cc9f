"""Purging proof past its retention: confirmation records are kept 5 years, then removed."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session
from temporalio import activity

from dsr.database import ConfirmationRecord, MilestoneRecord


class PurgeInput(BaseModel):
    as_of: datetime


class PurgeResult(BaseModel):
    purged: int
    request_ids: list[str]


class ProofActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

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
                                at=purge.as_of, actor="confirmation-purge-schedule",
                                detail={"reason": "confirmation retention ended"})
                for request_id in expired
            )
        return PurgeResult(purged=len(expired), request_ids=expired)
