"""Flags in a dataset: a restriction of processing, an objection, a withdrawal of consent, a
marketing opt-out. Each is kept in the connector's own tables by keyed hash of each of the
subject's identities (per customer for end-user data, customer ``"-"`` for the group's own),
as the hand-written connectors keep theirs (``connectors.kit.restrictions``), and recorded in
the subject's rows of every column the file flags with it: the time it was asked (the first
time stays) or true. Only a restriction can be lifted (its columns cleared)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Date, DateTime, false, or_, select, true, update
from sqlalchemy.orm import Session

from connectors.dataset.own import FlagMixin, OwnTables
from connectors.dataset.reach import Reach, Rows, chunked
from connectors.kit.errors import ConnectorInputError
from connectors.kit.restrictions import Restrictions, is_restricted
from connectors.kit.store import Store
from connectors.kit.treatments import stored_time
from dsr.connector_contract import FlagInput, Operation, Scope
from dsr.connector_registry import DataRole
from dsr.models import Identity
from dsr.serverkeys import PurposeKeys

GROUP = "-"  # the group's own data belongs to no customer


class Flags:
    """The flags of one dataset: placed (once), lifted, and asked about."""

    def __init__(self, reach: Reach, own: OwnTables, index: PurposeKeys) -> None:
        self.reach, self.dataset = reach, reach.dataset
        self.model: type[FlagMixin] = own.flags
        self.index = index  # the identity index's keys (``dsr.serverkeys``)
        self.restrictions = Restrictions(own.restrictions, index)

    def customer(self, customer_account: str | None) -> str:
        """Whose records a flag is about: the customer's for end-user data."""
        if self.dataset.role is DataRole.GROUP:
            return GROUP
        if customer_account is None:
            raise ValueError("end-user data is flagged within one customer account")
        return customer_account

    def identities(self, scope: Scope) -> list[Identity]:
        """The scope's identities of the types the dataset holds."""
        held = set(self.dataset.identity_types)
        return [identity for identity in scope.identities if identity.type in held]

    def apply(self, session: Session, rows: Rows, call: FlagInput, operation: Operation) -> int:
        """Flag the subject (or lift a restriction), inside the operation's transaction; the
        subject's rows it covers: all of them for a restriction, else those of the tables with
        a column for the flag."""
        if call.lift and operation is not Operation.RESTRICT:
            raise ConnectorInputError(f"{self.dataset.connector} cannot lift {operation.value}")
        customer = self.customer(call.scope.customer_account)
        identities = self.identities(call.scope)
        if operation is Operation.RESTRICT:
            self.restrictions.place_or_lift(session, customer, call, identities)
        else:
            self._record(session, customer, identities, operation, call.scope)
        covered = 0
        for name, spec in self.dataset.tables.items():
            columns = spec.flagged(operation)
            if columns or operation is Operation.RESTRICT:
                covered += len(rows.get(name, []))
            for column in columns:
                self._mark(session, name, column, rows.get(name, []), call)
        return covered

    def is_flagged(self, store: Store, operation: Operation, customer: str,
                   identity: Identity) -> bool:
        """Whether the identity is flagged for this customer, under any key still held (a
        restriction: the kit's ``is_restricted``)."""
        if operation is Operation.RESTRICT:
            return is_restricted(store, self.restrictions, customer, identity)
        with store.reading() as session:
            return bool(self._found(session, customer, [identity], operation))

    def _found(self, session: Session, customer: str, identities: Iterable[Identity],
               operation: Operation) -> list[Any]:
        forms = [form for identity in identities
                 for form in self.index.candidates(identity.normalised)]
        return list(session.scalars(select(self.model).where(
            self.model.customer_account == customer, self.model.identity_hash.in_(forms),
            self.model.operation == operation.value)))

    def _record(self, session: Session, customer: str, identities: list[Identity],
                operation: Operation, scope: Scope) -> None:
        for identity in identities:
            if self._found(session, customer, [identity], operation):
                continue  # the first one stays, under any key
            flag = self.model()
            flag.customer_account, flag.operation = customer, operation.value
            flag.identity_hash = self.index.tag(identity.normalised)
            flag.request_id, flag.since = scope.request_id, scope.as_of
            session.add(flag)
        session.flush()

    def _mark(self, session: Session, name: str, column: str, rows: list[Any],
              call: FlagInput) -> None:
        """Record the flag in one column of the subject's rows (or clear it, lifted)."""
        table = self.reach.table(name)
        target = table.c[column]
        boolean = not isinstance(target.type, Date | DateTime)
        dialect = session.get_bind().dialect.name
        value: Any
        unset: ColumnElement[bool]
        if call.lift:
            value, unset = (false() if boolean else None), true()
        elif boolean:
            value, unset = true(), or_(target.is_(None), target == false())
        else:
            value, unset = stored_time(call.scope.as_of, target.type, dialect), target.is_(None)
        for chunk in chunked([row.key for row in rows]):
            session.execute(update(table).where(self.reach.key_in(name, chunk), unset)
                            .values({column: value}))
