"""A connector's store: its engine on SQLite or PostgreSQL, its UTC timestamps (the
application database's ``dsr.orm.UtcDateTime``: a naive datetime is refused), and the operation
log that makes each operation idempotent (``Store.once``)."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import JSON, Connection, Engine, String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateIndex

from dsr.connector_contract import SweepInput
from dsr.hashing import keyed_hash
from dsr.orm import UtcDateTime, new_engine
from dsr.schemalock import schema_lock

Result = TypeVar("Result", bound=BaseModel)


def create_store_engine(url: str) -> Engine:
    """An engine for a connector's store; SQLite gets WAL, foreign keys and its folder, and
    SQLAlchemy (not the sqlite3 module) emits BEGIN, so that a write session can take the write
    lock up front (``BEGIN IMMEDIATE``). PostgreSQL works too (``postgresql://`` means psycopg
    3, the driver installed); the connector creates its own tables there as on SQLite."""
    return new_engine(url, busy_timeout_ms=10_000, synchronous_normal=False, immediate_writes=True)


def as_engine(engine_or_url: Engine | str) -> Engine:
    return create_store_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url


# --- idempotency ---------------------------------------------------------------------------


class OperationLogMixin:
    """One row per operation done for a request: the result is stored in the same transaction
    as the data change, so a retry after a crash returns it instead of acting twice.

    ``fingerprint`` (a keyed hash of the operation's input, no personal data readable) tells a
    retry of the same call from a later call of the same operation with other rules, such as
    the deferred erasure of records whose legal hold has ended."""

    __tablename__ = "operation_log"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    operation: Mapped[str] = mapped_column(String(40), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OperationKey(typing.NamedTuple):
    request_id: str
    operation: str
    fingerprint: str


def operation_key(secret: bytes, operation: str, call: BaseModel) -> OperationKey:
    """The key of one call: request id, operation and a keyed hash of its input.

    ``as_of`` is left out: the same instruction scheduled again later is the same operation."""
    payload = call.model_dump(mode="json", exclude={"scope": {"as_of"}})
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    request_id = payload["scope"]["request_id"]
    return OperationKey(request_id, operation, keyed_hash(secret, canonical, "operation"))


def sweep_key(secret: bytes, call: SweepInput) -> OperationKey:
    """The key of one sweep: its ``sweep_id`` stands for the request id (``as_of`` left out)."""
    payload = call.model_dump(mode="json", exclude={"as_of"})
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return OperationKey(call.sweep_id, "sweep", keyed_hash(secret, canonical, "operation"))


class Store:
    """A connector's database: its engine, its tables and its operation log."""

    def __init__(
        self,
        engine_or_url: Engine | str,
        base: type[DeclarativeBase],
        log_model: type[OperationLogMixin],
    ) -> None:
        self.engine = as_engine(engine_or_url)
        self.log_model = log_model
        with schema_lock(self.engine) as connection:  # two workers starting on an empty store
            base.metadata.create_all(connection)
            _create_missing_indexes(connection, base)
            connection.commit()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read transaction (one consistent snapshot)."""
        with Session(self.engine) as session, session.begin():
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction; on SQLite it holds the write lock from its first statement."""
        engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        with Session(engine) as session, session.begin():
            yield session

    def recorded(self, session: Session, key: OperationKey, kind: type[Result]) -> Result | None:
        row = session.get(self.log_model, tuple(key))
        if row is None:
            return None
        return kind.model_validate(row.result).model_copy(update={"already_done": True})

    def record(self, session: Session, key: OperationKey, result: BaseModel) -> None:
        session.add(self._entry(key, result))
        session.flush()

    def _entry(self, key: OperationKey, result: BaseModel) -> OperationLogMixin:
        entry = self.log_model()
        entry.request_id, entry.operation, entry.fingerprint = key
        entry.result = result.model_dump(mode="json")
        entry.created_at = datetime.now(UTC)
        return entry

    def lookup(self, key: OperationKey, kind: type[Result]) -> Result | None:
        with self.reading() as session:
            return self.recorded(session, key, kind)

    def remember(self, key: OperationKey, result: BaseModel) -> None:
        """Record the result of an operation that changes no data (an export), replacing an
        earlier entry for the same key."""
        with self.writing() as session:
            session.merge(self._entry(key, result))

    def once(
        self, key: OperationKey, kind: type[Result], work: Callable[[Session], Result]
    ) -> Result:
        """Do ``work`` once per key: its data change and its log entry commit together."""
        try:
            with self.writing() as session:
                done = self.recorded(session, key, kind)
                if done is not None:
                    return done
                result = work(session)
                self.record(session, key, result)
                return result
        except IntegrityError:
            # A concurrent attempt committed first (backends without BEGIN IMMEDIATE).
            with self.reading() as session:
                done = self.recorded(session, key, kind)
            if done is None:
                raise
            return done


def _create_missing_indexes(connection: Connection, base: type[DeclarativeBase]) -> None:
    """``create_all`` skips the indexes of tables that already exist: an index added in a later
    version (a locate index, say) is created on an existing store here."""
    for table in base.metadata.sorted_tables:
        for index in table.indexes:
            connection.execute(CreateIndex(index, if_not_exists=True))
