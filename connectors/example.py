"""The smallest real connector: a loyalty-points system keyed by the end user's email, within
each customer's records. `connectors/README.md` walks through it; a test runs it against the
orchestrator.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import ColumnElement, Engine, Integer, String, delete, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from connectors.kit.cutoffs import erase_cutoffs
from connectors.kit.store import OperationLogMixin, Store, UtcDateTime, operation_key
from dsr.blobstore import BlobStore
from dsr.connector_contract import (
    CategoryHolding,
    Discovery,
    EraseInput,
    EraseResult,
    Operation,
    Scope,
    Strategy,
    Treatment,
)
from dsr.models import IdentityType

CATEGORY = "loyalty_points"


class LoyaltyBase(DeclarativeBase):
    pass


class PointsEntry(LoyaltyBase):
    __tablename__ = "points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64), index=True)
    email: Mapped[str] = mapped_column(String(254))
    points: Mapped[int] = mapped_column(Integer)
    earned_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LoyaltyOperationLog(OperationLogMixin, LoyaltyBase):
    pass


class LoyaltyConnector:
    name: ClassVar[str] = "loyalty"
    activities: ClassVar[tuple[str, ...]] = ("discover", "erase")
    categories: ClassVar[tuple[str, ...]] = (CATEGORY,)
    # Erasing loyalty points deletes the entries: nothing in them feeds statistics.
    treatments: ClassVar[tuple[Treatment, ...]] = (
        Treatment(category=CATEGORY, table="points", column="*", strategy=Strategy.DELETE_ROW),
    )

    def __init__(self, engine_or_url: Engine | str, blobs: BlobStore, secret: bytes) -> None:
        self.store = Store(engine_or_url, LoyaltyBase, LoyaltyOperationLog)
        self.secret = secret

    def discover(self, scope: Scope) -> Discovery:
        found = Discovery(connector=self.name)
        if scope.customer_account is None:  # end-user data: only ever within one customer
            return found
        with self.store.reading() as session:
            count, earliest, latest = session.execute(
                select(func.count(), func.min(PointsEntry.earned_at),
                       func.max(PointsEntry.earned_at)).where(*self._subject(scope))
            ).one()
        if count:
            found.holdings.append(CategoryHolding(category=CATEGORY, records=count,
                                                  earliest=earliest, latest=latest))
        return found

    def erase(self, call: EraseInput) -> EraseResult:
        if call.scope.customer_account is None:
            return EraseResult(connector=self.name)
        key = operation_key(self.secret, Operation.ERASE, call)  # once per request and rule
        cutoffs = erase_cutoffs(self.name, call.rules, self.categories)  # checks the rules

        def work(session: Session) -> EraseResult:
            where = self._subject(call.scope)
            if CATEGORY not in cutoffs:
                return EraseResult(connector=self.name)
            older = [*where, PointsEntry.earned_at < cutoffs[CATEGORY]]
            erased = session.execute(delete(PointsEntry).where(*older)).rowcount  # type: ignore[attr-defined]
            kept = session.scalar(select(func.count()).where(*where)) or 0
            return EraseResult(connector=self.name, erased={CATEGORY: erased},
                               retained={CATEGORY: kept})

        return self.store.once(key, EraseResult, work)

    @staticmethod
    def _subject(scope: Scope) -> list[ColumnElement[bool]]:
        emails = [i.value.lower() for i in scope.identities if i.type is IdentityType.EMAIL]
        return [PointsEntry.customer_account == scope.customer_account,
                func.lower(PointsEntry.email).in_(emails)]
