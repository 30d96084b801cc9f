"""Purging proof past its retention: confirmation records are kept 5 years, then removed;
so is the request register (a request's row and its milestones) once the proof period has
passed since the request closed (the ``request-confirmation`` rule of the retention policy);
and access packages, once their download link has expired or was revoked.

Each run records the purge in the audit ledger (counts and request ids only: the ledger holds
no personal data and is never purged) and then anchors the ledger's chain head outside the
database (the store DSR_LEDGER_ANCHOR_URL names), as the hourly anchoring Schedule does.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, or_, select
from sqlalchemy.orm import Session
from temporalio import activity

from activities.interfaces.proof import PURGE_CONFIRMATIONS, PurgeInput, PurgeResult
from dsr import ledger, package_links
from dsr.blobstore import BlobStore
from dsr.register import ConfirmationRecord, MilestoneRecord, RequestRecord, RequestSubjectRecord
from dsr.retention import (
    ORCHESTRATOR,
    RetentionPolicy,
    keep_until,
    load_retention_policy,
)
from dsr.retention_periods import subtract_period
from dsr.settings import Settings

PURGE_ACTOR = "confirmation-purge-schedule"
REGISTER_CATEGORY = "request_confirmation"  # the register is kept as long as the proof
# Month ends: a record closed up to 3 days after "as_of minus the period" may already be due
# (2024-02-29 plus 5 years is 2029-02-28); keep_until decides for each candidate.
MONTH_END_MARGIN = timedelta(days=3)


class ProofActivities:
    def __init__(self, engine: Engine, settings: Settings, blobs: BlobStore) -> None:
        self._engine = engine
        self._blobs = blobs
        self._key = ledger.ledger_key(settings.secret)
        self._anchors = ledger.anchor_store(settings)
        self._retention_file = settings.policy_dir / "retention.yaml"

    @activity.defn(name=PURGE_CONFIRMATIONS.name)
    def purge_confirmations(self, purge: PurgeInput) -> PurgeResult:
        with Session(self._engine) as session, session.begin():
            expired = list(session.scalars(
                select(ConfirmationRecord.request_id)
                .where(ConfirmationRecord.retain_until <= purge.as_of)
            ))
            session.execute(delete(ConfirmationRecord)
                            .where(ConfirmationRecord.request_id.in_(expired)))
            registered = set(session.scalars(
                select(RequestRecord.request_id).where(RequestRecord.request_id.in_(expired))
            ))
            session.add_all(
                MilestoneRecord(request_id=request_id, key="proof-purged", step="purge",
                                at=purge.as_of, actor=PURGE_ACTOR,
                                detail={"reason": "confirmation retention ended"})
                for request_id in expired
                if request_id in registered  # its register row may already be purged
            )
            for request_id in expired:
                ledger.append(session, "purge", PURGE_ACTOR, purge.as_of, request_id,
                              {"purged": "confirmation", "records": 1,
                               "reason": "confirmation retention ended"}, self._key)
            ledger.append(session, "purge", PURGE_ACTOR, purge.as_of, None,
                          {"purged": "confirmations", "count": len(expired)}, self._key)
            policy = load_retention_policy(self._retention_file)
            register = self._purge_register(session, policy, purge.as_of)
            packages = package_links.purge_packages(session, self._blobs, purge.as_of, self._key,
                                                    PURGE_ACTOR)
        ledger.anchor(self._engine, self._key, self._anchors)
        return PurgeResult(purged=len(expired), request_ids=expired,
                           register_purged=len(register), register_request_ids=register,
                           packages_purged=packages)

    def _purge_register(
        self, session: Session, policy: RetentionPolicy, as_of: datetime
    ) -> list[str]:
        """Delete the register rows (and milestones, subject hashes) of requests closed longer
        ago than the proof period; a policy without that duty purges nothing (kept, never
        early)."""
        duty = policy.duty_for(ORCHESTRATOR, REGISTER_CATEGORY, [])
        if duty is None:
            return []
        latest = subtract_period(as_of, duty.period) + MONTH_END_MARGIN
        candidates = session.execute(
            select(RequestRecord.request_id, RequestRecord.closed_at)
            .where(RequestRecord.closed_at.is_not(None), RequestRecord.closed_at <= latest)
            .order_by(RequestRecord.request_id)
        ).all()
        due = [
            row.request_id
            for row in candidates
            if (until := keep_until(policy, ORCHESTRATOR, REGISTER_CATEGORY, row.closed_at))
            is not None and until <= as_of
        ]
        due = [request_id for request_id in due if not self._erasure_pending(session, request_id)]
        if not due:
            return []
        milestones: dict[str, int] = {
            request_id: count
            for request_id, count in session.execute(
                select(MilestoneRecord.request_id, func.count())
                .where(MilestoneRecord.request_id.in_(due))
                .group_by(MilestoneRecord.request_id)
            )
        }
        session.execute(delete(MilestoneRecord).where(MilestoneRecord.request_id.in_(due)))
        session.execute(
            delete(RequestSubjectRecord).where(RequestSubjectRecord.request_id.in_(due))
        )
        session.execute(delete(RequestRecord).where(RequestRecord.request_id.in_(due)))
        for request_id in due:
            ledger.append(session, "purge", PURGE_ACTOR, as_of, request_id,
                          {"purged": "register", "milestones": milestones.get(request_id, 0),
                           "reason": "request register retention ended",
                           "rule": duty.rule_id}, self._key)
        ledger.append(session, "purge", PURGE_ACTOR, as_of, None,
                      {"purged": "register", "count": len(due), "rule": duty.rule_id},
                      self._key)
        return due

    @staticmethod
    def _erasure_pending(session: Session, request_id: str) -> bool:
        """Whether the request kept data whose deferred erasure has not finished: its
        workflow still needs the register row (the hold check reads it), and the request is
        not fully honoured yet. The last deferred round records ``still_kept: 0``."""
        rows = session.scalars(
            select(MilestoneRecord).where(
                MilestoneRecord.request_id == request_id,
                or_(MilestoneRecord.key == "legal_hold_check",
                    MilestoneRecord.key.startswith("deferred-erasure-")),
            )
        ).all()
        retained = any(row.detail.get("retained") for row in rows
                       if row.key == "legal_hold_check")
        finished = any(row.detail.get("still_kept") == 0 for row in rows
                       if row.key.startswith("deferred-erasure-"))
        return retained and not finished
