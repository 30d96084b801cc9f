"""Restriction of processing in a connector's store: by keyed hash of an identity, placed,
lifted and carried over to a rectified identity."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, select
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from connectors.kit.store import Store, UtcDateTime
from dsr.connector_contract import FlagInput, Scope
from dsr.models import Identity
from dsr.serverkeys import PurposeKeys


class RestrictionMixin:
    """A restriction of processing for one end user of one customer (or of the group's own
    data: customer ``"-"``), by keyed hash of one identity."""

    __tablename__ = "restrictions"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    identity_hash: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UtcDateTime)
    lifted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Index]:
        return (Index("ix_restrictions_subject", "customer_account", "identity_hash"),)


class Restrictions:
    """The restrictions of one store: placed, lifted and carried over to a corrected identity."""

    def __init__(self, model: type[RestrictionMixin], index: PurposeKeys) -> None:
        self.model = model
        self.index = index  # the identity index's keys (``dsr.serverkeys``)

    def identity_hash(self, identity: Identity) -> str:
        return self.index.tag(identity.normalised)

    def active(self, session: Session, customer: str, identities: Iterable[Identity]) -> list[Any]:
        """The live restrictions of these identities, made under any key still held."""
        forms = [form for identity in identities
                 for form in self.index.candidates(identity.normalised)]
        statement = select(self.model).where(
            self.model.customer_account == customer,
            self.model.identity_hash.in_(forms),
            self.model.lifted_at.is_(None),
        )
        return list(session.scalars(statement))

    def place_or_lift(
        self, session: Session, customer: str, call: FlagInput, identities: Iterable[Identity]
    ) -> None:
        """Restrict each identity (once), or lift their restrictions."""
        scope = call.scope
        for identity in identities:
            active = self.active(session, customer, [identity])
            if call.lift:
                for restriction in active:
                    restriction.lifted_at = scope.as_of
            elif not active:
                self._place(session, customer, identity, scope)

    def carry_over(
        self, session: Session, customer: str, scope: Scope, corrected: Identity
    ) -> None:
        """A rectified identity stays restricted: the corrected value gets the restriction the
        old one had (the old one keeps it too, should it come back)."""
        if not self.active(session, customer, scope.identities):
            return
        if not self.active(session, customer, [corrected]):
            self._place(session, customer, corrected, scope)

    def _place(self, session: Session, customer: str, identity: Identity, scope: Scope) -> None:
        restriction = self.model()
        restriction.customer_account = customer
        restriction.identity_hash = self.identity_hash(identity)
        restriction.request_id = scope.request_id
        restriction.since = scope.as_of
        session.add(restriction)


def is_restricted(
    store: Store, restrictions: Restrictions, customer: str, identity: Identity
) -> bool:
    with store.reading() as session:
        return restrictions.active(session, customer, [identity]) != []
