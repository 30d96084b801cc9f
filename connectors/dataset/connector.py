"""A connector made from a dataset file: the contract's operations over an affiliate's own
relational database, from its declarations alone (``connectors/README.md``, "A dataset file").

``dataset_connector(path)`` is a connector class like the built-in ones: its ``name``,
``activities``, ``categories`` and ``treatments`` come from the file, and
``connector_activities(cls(url, blobs, secret))`` serves it on a worker. Starting it checks the
file against the database (``connectors.dataset.schema``) and creates its operation log, the
only table it creates: in a schema of its own on PostgreSQL (``dsr_connector``), as a prefixed
table elsewhere. It never creates or alters the affiliate's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError
from sqlalchemy import Engine, MetaData, inspect, select, update
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.schema import CreateSchema

from connectors.dataset.erasure import Erasure, check_rules
from connectors.dataset.model import Dataset, load_dataset
from connectors.dataset.reach import Reach, Rows, chunked
from connectors.dataset.records import export_chunks, holding
from connectors.dataset.schema import check_dataset
from connectors.kit.errors import ConnectorInputError
from connectors.kit.exports import discover_holdings, export_once
from connectors.kit.store import OperationLogMixin, Store, as_engine, operation_key
from dsr.blobstore import BlobStore
from dsr.connector_contract import (
    AccessInput,
    AccessResult,
    Discovery,
    EraseInput,
    EraseResult,
    Located,
    Operation,
    RectifyInput,
    RectifyResult,
    Scope,
    Strategy,
    Treatment,
)
from dsr.connector_registry import DataRole
from dsr.models import Identity, IdentityType
from dsr.schemalock import schema_lock

OWN_SCHEMA = "dsr_connector"  # PostgreSQL: the schema of the connector's operation log


class DatasetConnector:
    """The contract over a dataset; ``for_dataset`` makes the class of one dataset."""

    name: ClassVar[str]
    activities: ClassVar[tuple[str, ...]]
    categories: ClassVar[tuple[str, ...]]
    treatments: ClassVar[tuple[Treatment, ...]]
    dataset: ClassVar[Dataset]

    def __init__(self, engine_or_url: Engine | str, blobs: BlobStore, secret: bytes, *,
                 previous_secrets: Sequence[bytes] = ()) -> None:
        """Checks the dataset against the database (``DatasetError`` lists what is wrong);
        ``warnings`` are what it found worth telling (unindexed lookups, say)."""
        engine = as_engine(engine_or_url)
        checked = check_dataset(self.dataset, engine)
        self.warnings = checked.warnings
        self.reach = Reach(self.dataset, checked)
        self.store = Store(engine, *operation_log(self.name, engine))
        self.blobs = blobs
        self.secret = secret  # pseudonyms and operation keys (earlier secrets: not needed)

    @classmethod
    def for_dataset(cls, dataset: Dataset) -> type[DatasetConnector]:
        """The connector class of one dataset."""
        operations = ["discover", "access", "erase", "rectify"]
        if dataset.role is DataRole.END_USER:
            operations.append("locate")
        attributes = {
            "name": dataset.connector, "dataset": dataset, "activities": tuple(operations),
            "categories": dataset.categories, "treatments": dataset_treatments(dataset),
        }
        title = "".join(part.title() for part in dataset.connector.split("_"))
        return type(f"{title}DatasetConnector", (cls,), attributes)

    # --- operations ------------------------------------------------------------------------

    def discover(self, scope: Scope) -> Discovery:
        found: list[Rows | None] = []

        def category_holding(session: Session, category: str) -> Any:
            if not found:
                found.append(self.reach.subject_rows(session, scope))
            return holding(self.reach, found[0], category) if found[0] is not None else None

        return discover_holdings(self.store, self.name, self.categories, category_holding)

    def access(self, call: AccessInput) -> AccessResult:
        if self._out_of_scope(call.scope):
            return AccessResult(connector=self.name)
        key = operation_key(self.secret, Operation.ACCESS, call)

        def chunks(session: Session) -> Any:
            rows = self.reach.subject_rows(session, call.scope) or {}
            return export_chunks(self.reach, session, rows)

        return export_once(self.store, self.blobs, self.name, key, chunks)

    def erase(self, call: EraseInput) -> EraseResult:
        check_rules(self.reach, call.rules)  # a bad rule fails even when nothing is found
        if self._out_of_scope(call.scope):
            return EraseResult(connector=self.name)
        key = operation_key(self.secret, Operation.ERASE, call)

        def work(session: Session) -> EraseResult:
            erasure = Erasure(self.reach, session, self.secret, call.scope.as_of)
            erasure.run(self.reach.subject_rows(session, call.scope) or {}, call.rules)
            return EraseResult(connector=self.name, erased=dict(erasure.erased),
                               retained=dict(erasure.retained))

        return self.store.once(key, EraseResult, work)

    def rectify(self, call: RectifyInput) -> RectifyResult:
        """Corrects identity columns (fields ``email``, ``phone``...: the identity types the
        dataset holds), in the rows holding the subject's identities."""
        held = {kind for spec in self.dataset.tables.values()
                for kind in spec.identities.values()}
        values: dict[IdentityType, str] = {}
        unsupported = []
        for correction in call.corrections:
            kind = next((k for k in held if k.value == correction.field), None)
            if kind is None:
                unsupported.append(correction.field)
                continue
            try:
                identity = Identity(type=kind, value=correction.value)
            except ValidationError:
                raise ConnectorInputError(
                    f"correction of {correction.field} is malformed") from None
            values[kind] = identity.normalised.partition(":")[2]
        unsupported = sorted(set(unsupported))
        if self._out_of_scope(call.scope):
            return RectifyResult(connector=self.name, unsupported_fields=unsupported)
        key = operation_key(self.secret, Operation.RECTIFY, call)

        def work(session: Session) -> RectifyResult:
            rows = self.reach.subject_rows(session, call.scope) or {}
            found = self._found_by_identity(session, rows, call.scope)
            updated = {kind.value: self._correct(session, found, kind, value)
                       for kind, value in values.items()}
            return RectifyResult(connector=self.name, updated=updated,
                                 unsupported_fields=unsupported)

        return self.store.once(key, RectifyResult, work)

    def locate(self, scope: Scope) -> Located:
        statement = self.reach.holders(scope)
        if statement is None:
            return Located(connector=self.name)
        with self.store.reading() as session:
            return Located(connector=self.name, customers=list(session.scalars(statement)))

    # --- helpers ---------------------------------------------------------------------------

    def _out_of_scope(self, scope: Scope) -> bool:
        """End-user data without a customer account: nothing is ever looked up."""
        return self.dataset.role is DataRole.END_USER and scope.customer_account is None

    def _found_by_identity(self, session: Session, rows: Rows,
                           scope: Scope) -> dict[str, list[tuple[Any, ...]]]:
        """The keys of the subject's rows that hold one of their identities (not rows reached
        only by reference: another person's number may be on those), before any correction."""
        found: dict[str, list[tuple[Any, ...]]] = {}
        for name in self.dataset.tables:
            holding = self.reach.identity_where(name, scope)
            key = list(self.reach.table(name).primary_key.columns)
            for chunk in chunked([row.key for row in rows.get(name, [])]):
                if holding is not None:
                    found.setdefault(name, []).extend(tuple(k) for k in session.execute(
                        select(*key).where(self.reach.key_in(name, chunk), holding)))
        return found

    def _correct(self, session: Session, found: dict[str, list[tuple[Any, ...]]],
                 kind: IdentityType, value: str) -> int:
        """One identity type's columns corrected in the rows found by identity."""
        count = 0
        for name, keys in found.items():
            table, spec = self.reach.table(name), self.dataset.tables[name]
            for column in (c for c, k in spec.identities.items() if k is kind):
                for chunk in chunked(keys):
                    result = session.execute(update(table).where(
                        self.reach.key_in(name, chunk)).values({column: value}))
                    count += result.rowcount  # type: ignore[attr-defined]
        return count


def dataset_treatments(dataset: Dataset) -> tuple[Treatment, ...]:
    """The treatments the file declares, as the contract states them."""
    found = []
    for name, spec in dataset.tables.items():
        if spec.delete_rows:
            found.append(Treatment(category=spec.delete_rows, table=name, column="*",
                                   strategy=Strategy.DELETE_ROW))
        found += [Treatment(category=column.category, table=name, column=column_name,
                            strategy=column.treatment)
                  for column_name, column in spec.columns.items()
                  if column.category and column.treatment]
    return tuple(found)


def dataset_connector(path: Path) -> type[DatasetConnector]:
    """The connector class of a dataset file (its shape checked; the database is checked
    when an instance starts)."""
    return DatasetConnector.for_dataset(load_dataset(path))


def operation_log(connector: str, engine: Engine) -> tuple[type[DeclarativeBase],
                                                            type[OperationLogMixin]]:
    """The connector's operation log: ``dsr_connector.<connector>_operation_log`` on
    PostgreSQL (the schema created if missing), ``dsr_connector_<connector>_operation_log``
    elsewhere. One table per connector: keys do not name the connector."""
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        with schema_lock(engine) as connection:
            if OWN_SCHEMA not in inspect(connection).get_schema_names():
                connection.execute(CreateSchema(OWN_SCHEMA))
                connection.commit()

    class Base(DeclarativeBase):
        metadata = MetaData(schema=OWN_SCHEMA if postgres else None)

    table = f"{connector}_operation_log" if postgres else f"{OWN_SCHEMA}_{connector}_operation_log"
    log = type("DatasetOperationLog", (OperationLogMixin, Base), {"__tablename__": table})
    return Base, log
