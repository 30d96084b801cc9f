"""Suppression in a connector's store: an identity never to be contacted or imported again
(whoever is erased, objects or opts out), by keyed hash of the normalised identity, nothing
readable. A request never lifts it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from connectors.kit.store import UtcDateTime
from dsr.connector_contract import Operation, Scope

Item = TypeVar("Item")
Entry = tuple[str, Sequence[str]]  # an identity's hash under the current key, and all its forms


class SuppressionMixin:
    """Never contact or import this identity again: a keyed hash, nothing readable."""

    __tablename__ = "suppressions"

    identity_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))  # the operation that added it
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Suppressions:
    """The suppression entries of one store: looked up in every form an identity's hash may
    take (under each key held, and bare), added once per identity."""

    def __init__(self, model: type[SuppressionMixin]) -> None:
        self.model = model

    def unsuppressed(
        self, session: Session, items: Sequence[Item], forms: Sequence[Sequence[str]]
    ) -> list[Item]:
        """The items (rows to import, say) whose identity is suppressed under none of its
        forms (``forms``: each item's)."""
        column = self.model.identity_hash
        wanted = [form for each in forms for form in each]
        suppressed = set(session.scalars(select(column).where(column.in_(wanted))))
        return [item for item, each in zip(items, forms, strict=True)
                if suppressed.isdisjoint(each)]

    def any(self, session: Session, forms: Iterable[str]) -> bool:
        """Whether one of the forms of an identity is suppressed."""
        column = self.model.identity_hash
        found = select(column).where(column.in_(list(forms))).limit(1)
        return session.scalar(found) is not None

    def add(
        self, session: Session, entries: Iterable[Entry], operation: Operation, scope: Scope
    ) -> None:
        """Suppress each identity not yet suppressed under any form (the first reason stays)."""
        for identity_hash, forms in entries:
            if not self.any(session, forms):
                entry = self.model()
                entry.identity_hash = identity_hash
                entry.reason = operation.value
                entry.request_id = scope.request_id
                entry.created_at = scope.as_of
                session.add(entry)
        session.flush()
