"""What every connector shares: its store's engine, the operation log that makes operations
idempotent, JSON Lines exports into the blob store, and the Temporal activities.

Identity values and message content are personal data: nothing here logs them or puts them
into an exception message.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import json
import typing
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Index,
    Select,
    String,
    and_,
    create_engine,
    event,
    make_url,
    or_,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, declared_attr, mapped_column
from sqlalchemy.schema import CreateIndex
from sqlalchemy.types import TypeDecorator
from temporalio import activity
from temporalio.exceptions import ApplicationError

from dsr.blobstore import BlobStore
from dsr.connector_contract import (
    AccessInput,
    AccessResult,
    CategoryHolding,
    Discovery,
    EraseInput,
    EraseResult,
    EraseRule,
    FlagInput,
    FlagResult,
    Located,
    Operation,
    RectifyInput,
    RectifyResult,
    Scope,
    SweepInput,
    SweepResult,
    Treatment,
    export_area,
)
from dsr.hashing import keyed_hash
from dsr.models import Correction, Identity
from dsr.schemalock import schema_lock
from dsr.serverkeys import PurposeKeys, ServerKeys

EXPORT_CHUNK_ROWS = 1000
END_OF_TIME = datetime.max.replace(tzinfo=UTC)
SWEEP_CHUNK_ROWS = 10_000
Result = TypeVar("Result", bound=BaseModel)


class ConnectorInputError(ValueError):
    """An input the connector cannot act on (unknown category, malformed correction).

    Retrying cannot help, so the activity fails without retry. The message names the field
    or category, never a value."""


# --- the store -----------------------------------------------------------------------------


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no offset: stored as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create_store_engine(url: str) -> Engine:
    """An engine for a connector's store; SQLite gets WAL, foreign keys and its folder.
    PostgreSQL works too (``postgresql://`` means psycopg 3, the driver installed); the
    connector creates its own tables there as on SQLite."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    engine = create_engine(parsed, hide_parameters=True, pool_pre_ping=backend != "sqlite")
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: Engine) -> None:
    """WAL and foreign keys, and SQLAlchemy (not the sqlite3 module) emits BEGIN, so that a
    write session can take the write lock up front (``BEGIN IMMEDIATE``)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


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


def sweep_cutoffs(
    connector: str, rules: list[EraseRule], categories: Iterable[str], countries: bool = False
) -> dict[str, datetime]:
    """The widest cutoff per category of a sweep; a rule without ``before`` is refused (a
    sweep never erases everything), and so is a rule confined to countries unless the
    connector keeps them (``countries``)."""
    known = set(categories)
    cutoffs: dict[str, datetime] = {}
    for rule in rules:
        if rule.countries_ended is not None and not countries:
            raise ConnectorInputError(
                f"{connector} keeps no country: the sweep rule for {rule.category} cannot be "
                "confined to countries_ended"
            )
        if rule.category not in known:
            raise ConnectorInputError(f"{connector} holds no category named {rule.category!r}")
        if rule.before is None:
            raise ConnectorInputError(f"sweep rule for {rule.category} needs a 'before' cutoff")
        if rule.before.tzinfo is None:
            raise ConnectorInputError(f"sweep rule for {rule.category} needs a timezone")
        cutoffs[rule.category] = max(rule.before, cutoffs.get(rule.category, rule.before))
    return cutoffs


def id_chunks(
    session: Session,
    id_column: Any,
    where: Iterable[Any],
    size: int | None = None,
) -> Iterator[list[Any]]:
    """The ids of the rows matching ``where``, in ascending chunks of ``size`` (keyset paging,
    so a million rows never sit in memory); a heartbeat after each chunk."""
    size = size or SWEEP_CHUNK_ROWS
    conditions = list(where)
    last: Any = None
    done = 0
    while True:
        statement = select(id_column).where(*conditions).order_by(id_column).limit(size)
        if last is not None:
            statement = statement.where(id_column > last)
        ids = list(session.scalars(statement))
        if not ids:
            return
        yield ids
        done += len(ids)
        heartbeat({"swept_rows": done})
        if len(ids) < size:
            return
        last = ids[-1]


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


# --- erase rules ---------------------------------------------------------------------------


def erase_cutoffs(
    connector: str, rules: Iterable[EraseRule], categories: Iterable[str]
) -> dict[str, datetime]:
    """The widest cutoff per category; ``before=None`` (all records) becomes the end of time.
    A rule confined to some countries is refused: this connector keeps no country."""
    known = set(categories)
    cutoffs: dict[str, datetime] = {}
    for rule in rules:
        before = _checked_cutoff(connector, rule, known)
        if rule.countries_ended is not None:
            raise ConnectorInputError(
                f"{connector} keeps no country: the rule for {rule.category} cannot be "
                "confined to countries_ended"
            )
        cutoffs[rule.category] = max(before, cutoffs.get(rule.category, before))
    return cutoffs


def country_conditions(
    connector: str,
    rules: Iterable[EraseRule],
    categories: Iterable[str],
    dated: Any,
    country: Any,
) -> dict[str, ColumnElement[bool]]:
    """Per category, the records its rules reach: dated before the cutoff and, for a rule
    confined to countries, ended in one of them. The most specific rule governs: a rule not
    confined to countries reaches only the countries no rule of its category names (so a
    sweep can say "6 months, but 2 years in Italy")."""
    known = set(categories)
    rules = list(rules)
    named: dict[str, set[str]] = {}
    for rule in rules:
        for code in rule.countries_ended or ():
            named.setdefault(rule.category, set()).add(code.upper())
    reached: dict[str, list[ColumnElement[bool]]] = {}
    for rule in rules:
        condition = dated < _checked_cutoff(connector, rule, known)
        if rule.countries_ended is not None:
            countries = [code.upper() for code in rule.countries_ended]
            condition = and_(condition, country.in_(countries))
        elif rule.category in named:
            condition = and_(condition, country.not_in(sorted(named[rule.category])))
        reached.setdefault(rule.category, []).append(condition)
    return {category: or_(*conditions) for category, conditions in reached.items()}


def _checked_cutoff(connector: str, rule: EraseRule, known: set[str]) -> datetime:
    if rule.category not in known:
        raise ConnectorInputError(f"{connector} holds no category named {rule.category!r}")
    before = rule.before if rule.before is not None else END_OF_TIME
    if before.tzinfo is None:
        raise ConnectorInputError(f"erase rule for {rule.category} needs a timezone")
    return before


# --- restrictions --------------------------------------------------------------------------


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


# --- exports -------------------------------------------------------------------------------


def heartbeat(*details: Any) -> None:
    """Tell Temporal the activity is alive; does nothing outside an activity."""
    beat = _thread_heartbeat.get()
    if beat is not None:
        beat(*details)
    elif activity.in_activity():
        activity.heartbeat(*details)


def export_jsonl(
    blobs: BlobStore, key: str, chunks: Iterable[Iterable[Mapping[str, Any]]]
) -> Export:
    """Stream records (each with its ``category``) into a JSON Lines blob, one chunk at a time
    with a heartbeat after each. Returns the count per category, the blob reference and its
    SHA-256, or no reference when there was nothing to export."""
    counts: Counter[str] = Counter()
    digest = hashlib.sha256()
    with blobs.open_writer(key) as file:
        for number, chunk in enumerate(chunks, start=1):
            for record in chunk:
                counts[record["category"]] += 1
                line = json.dumps(record, default=_json_default).encode() + b"\n"
                digest.update(line)
                file.write(line)
            heartbeat({"chunks": number, "records": sum(counts.values())})
    ref = blobs.ref(key)
    if not counts:
        blobs.delete(ref)
        return Export({}, None, None)
    return Export(dict(counts), ref, digest.hexdigest())


class Export(typing.NamedTuple):
    records: dict[str, int]
    blob_ref: str | None
    sha256: str | None


def export_key(request_id: str, connector: str) -> str:
    return f"{export_area(request_id)}{connector}.jsonl"


def discover_holdings(
    store: Store,
    connector: str,
    categories: Iterable[str],
    holding: Callable[[Session, str], CategoryHolding | None],
) -> Discovery:
    """Discovery from one consistent read: each category the subject has records in."""
    discovery = Discovery(connector=connector)
    with store.reading() as session:
        for category in categories:
            found = holding(session, category)
            if found is not None:
                discovery.holdings.append(found)
    return discovery


def export_once(
    store: Store,
    blobs: BlobStore,
    connector: str,
    key: OperationKey,
    chunks: Callable[[Session], Iterable[Iterable[Mapping[str, Any]]]],
) -> AccessResult:
    """An access export, done once per key: a retry returns the recorded result, unless its
    blob has since gone, in which case the records are exported again."""
    done = store.lookup(key, AccessResult)
    if done is not None and (done.blob_ref is None or blobs.exists(done.blob_ref)):
        return done
    with store.reading() as session:
        export = export_jsonl(blobs, export_key(key.request_id, connector), chunks(session))
    result = AccessResult(
        connector=connector, records=export.records, blob_ref=export.blob_ref, sha256=export.sha256
    )
    store.remember(key, result)
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot export a value of type {type(value).__name__}")


# --- the operations ------------------------------------------------------------------------

Subject = TypeVar("Subject")  # how a connector finds one subject's records
Reach = TypeVar("Reach")  # what erase rules reach in a connector's records


class StoreConnector:
    """A connector with its own store: the store (its tables, ``schema``, and its operation
    log), the blob store for exports, the deployment's secret and, with a
    ``restriction_model``, its restrictions. ``sweep`` is done here once for every connector;
    the connector anonymises in ``sweep_now``."""

    name: ClassVar[str]
    categories: ClassVar[tuple[str, ...]]
    schema: ClassVar[type[DeclarativeBase]]
    operation_log: ClassVar[type[OperationLogMixin]]
    restriction_model: ClassVar[type[RestrictionMixin] | None] = None
    sweeps_countries: ClassVar[bool] = False  # whether a sweep rule may name countries_ended

    restrictions: Restrictions  # only with a restriction model

    def __init__(self, engine_or_url: Engine | str, blobs: BlobStore, secret: bytes, *,
                 previous_secrets: Sequence[bytes] = ()) -> None:
        """``previous_secrets``: earlier server secrets, kept to match what they hashed."""
        self.store = Store(engine_or_url, self.schema, self.operation_log)
        self.identity_index = ServerKeys(secret, previous_secrets).identities
        if self.restriction_model is not None:
            self.restrictions = Restrictions(self.restriction_model, self.identity_index)
        self.blobs = blobs
        self.secret = secret

    def sweep(self, call: SweepInput) -> SweepResult:
        """Anonymise every customer's records past their retention, as ``erase`` would."""
        cutoffs = sweep_cutoffs(self.name, call.rules, self.categories, self.sweeps_countries)
        key = sweep_key(self.secret, call)
        return self.store.once(
            key, SweepResult, lambda session: self.sweep_now(session, call, cutoffs)
        )

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The sweep, inside its transaction: ``cutoffs`` are the checked widest cutoffs."""
        raise NotImplementedError(f"{self.name} does not sweep")


class SubjectConnector(StoreConnector, Generic[Subject, Reach]):
    """A connector that finds the subject from the request's scope alone.

    Each public operation is done here once: no subject, an empty result (nothing recorded);
    else the operation, once per key, through the hooks the connector provides for the subject
    it found. A connector whose operation does not fit this shape overrides it."""

    correctable: ClassVar[Collection[str]] = ()  # the fields ``rectify`` corrects

    # --- hooks -----------------------------------------------------------------------------

    def subject(self, scope: Scope) -> Subject | None:
        """The subject the scope names, or None: nothing of it can be held here."""
        raise NotImplementedError(f"{self.name} finds no subject")

    def holding(self, session: Session, subject: Subject, category: str) -> CategoryHolding | None:
        """The subject's records of one category, if any."""
        raise NotImplementedError(f"{self.name} discovers no category")

    def export_chunks(
        self, session: Session, subject: Subject
    ) -> Iterable[Iterable[Mapping[str, Any]]]:
        """The subject's export records (each with its ``category``), a chunk at a time."""
        raise NotImplementedError(f"{self.name} exports nothing")

    def reach(self, rules: list[EraseRule]) -> Reach:
        """What erase rules reach, checked before the subject is looked up (a bad rule fails
        even when no subject is found)."""
        raise NotImplementedError(f"{self.name} erases nothing")

    def erase_now(
        self, session: Session, subject: Subject, reach: Reach, scope: Scope
    ) -> EraseResult:
        """The erasure, inside its transaction."""
        raise NotImplementedError(f"{self.name} erases nothing")

    def corrections(self, corrections: list[Correction]) -> dict[str, str]:
        """The corrected value per field, the last one given winning, each ``corrected``."""
        return {c.field: self.corrected(c.field, c.value) for c in corrections}

    def corrected(self, field: str, value: str) -> str:
        """One corrected value, checked (an error names the field, never the value) and
        normalised; as given by default."""
        return value

    def rectify_now(
        self, session: Session, subject: Subject, values: dict[str, str], scope: Scope
    ) -> dict[str, int]:
        """Correct the ``correctable`` fields, inside the transaction; records per field."""
        raise NotImplementedError(f"{self.name} rectifies nothing")

    def restrict_now(self, session: Session, subject: Subject, call: FlagInput) -> int:
        """Restrict the subject (or lift), inside the transaction; the records covered."""
        raise NotImplementedError(f"{self.name} restricts nothing")

    def holders(self, scope: Scope) -> Select[Any] | None:
        """The customer accounts holding records of the scope's identities, across customers;
        None without an identity the connector matches."""
        raise NotImplementedError(f"{self.name} locates nothing")

    # --- operations ------------------------------------------------------------------------

    def discover(self, scope: Scope) -> Discovery:
        subject = self.subject(scope)
        if subject is None:
            return Discovery(connector=self.name)
        return discover_holdings(
            self.store,
            self.name,
            self.categories,
            lambda session, category: self.holding(session, subject, category),
        )

    def access(self, call: AccessInput) -> AccessResult:
        subject = self.subject(call.scope)
        if subject is None:
            return AccessResult(connector=self.name)
        key = operation_key(self.secret, Operation.ACCESS, call)
        return export_once(
            self.store,
            self.blobs,
            self.name,
            key,
            lambda session: self.export_chunks(session, subject),
        )

    def erase(self, call: EraseInput) -> EraseResult:
        reach = self.reach(call.rules)
        subject = self.subject(call.scope)
        if subject is None:
            return EraseResult(connector=self.name)
        key = operation_key(self.secret, Operation.ERASE, call)
        return self.store.once(
            key, EraseResult, lambda session: self.erase_now(session, subject, reach, call.scope)
        )

    def rectify(self, call: RectifyInput) -> RectifyResult:
        corrections = self.corrections(call.corrections)
        subject = self.subject(call.scope)
        unsupported = sorted(field for field in corrections if field not in self.correctable)
        if subject is None:
            return RectifyResult(connector=self.name, unsupported_fields=unsupported)
        values = {f: v for f, v in corrections.items() if f in self.correctable}
        key = operation_key(self.secret, Operation.RECTIFY, call)
        return self.store.once(
            key,
            RectifyResult,
            lambda session: RectifyResult(
                connector=self.name,
                updated=self.rectify_now(session, subject, values, call.scope),
                unsupported_fields=unsupported,
            ),
        )

    def restrict(self, call: FlagInput) -> FlagResult:
        return self.flag(
            call,
            Operation.RESTRICT,
            lambda session, subject: self.restrict_now(session, subject, call),
        )

    def locate(self, scope: Scope) -> Located:
        """The customers holding records of these identities, whatever customer the scope
        names: an end user wrote to the group directly, and each of them is a controller to
        refer the request to. The one lookup across customers; account ids only, never the
        records. Read-only, so not in the operation log."""
        statement = self.holders(scope)
        if statement is None:
            return Located(connector=self.name)
        with self.store.reading() as session:
            customers = session.scalars(statement).all()
        return Located(connector=self.name, customers=list(customers))

    def flag(
        self, call: FlagInput, operation: Operation, change: Callable[[Session, Subject], int]
    ) -> FlagResult:
        """A flag operation (restrict, object...) done once: ``change`` flags the subject and
        returns the records it covers."""
        subject = self.subject(call.scope)
        if subject is None:
            return FlagResult(connector=self.name, operation=operation)
        key = operation_key(self.secret, operation, call)

        def work(session: Session) -> FlagResult:
            records = change(session, subject)
            return FlagResult(connector=self.name, operation=operation, records=records)

        return self.store.once(key, FlagResult, work)


def sweep_scope(call: SweepInput) -> Scope:
    """The scope a sweep erases under: no subject, and its sweep id for a request id."""
    return Scope(request_id=call.sweep_id, identities=[], as_of=call.as_of)


class CutoffConnector(SubjectConnector[Subject, dict[str, datetime]]):
    """A subject connector whose erase rules reach records by date alone: the widest cutoff
    per category (it keeps no country, so a rule confined to countries is refused)."""

    def reach(self, rules: list[EraseRule]) -> dict[str, datetime]:
        return erase_cutoffs(self.name, rules, self.categories)


# --- Temporal activities -------------------------------------------------------------------


class Connector(Protocol):
    """A connector object: its name and the methods served as activities.

    Each method takes one pydantic model and returns one; it is blocking (it talks to the
    store) and is run in a thread by its activity."""

    name: ClassVar[str]
    activities: ClassVar[tuple[str, ...]]
    categories: ClassVar[tuple[str, ...]]
    treatments: ClassVar[tuple[Treatment, ...]]  # how erasing each category anonymises


_thread_heartbeat: contextvars.ContextVar[Callable[..., None] | None] = contextvars.ContextVar(
    "connector_thread_heartbeat", default=None
)


def connector_activities(connector: Connector) -> list[Callable[..., Any]]:
    """The connector's methods as async Temporal activities named ``"<name>.<method>"``."""
    return [
        _as_activity(f"{connector.name}.{method}", getattr(connector, method))
        for method in connector.activities
    ]


def _as_activity(name: str, method: Callable[[Any], Any]) -> Callable[..., Any]:
    hints = typing.get_type_hints(method)
    input_type = next(hint for parameter, hint in hints.items() if parameter != "return")

    async def run(call: Any) -> Any:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()

        def beat(*details: Any) -> None:
            # activity.heartbeat must run on the event loop, in the activity's context.
            loop.call_soon_threadsafe(
                functools.partial(activity.heartbeat, *details), context=context
            )

        token = _thread_heartbeat.set(beat)
        try:
            return await asyncio.to_thread(method, call)
        except ConnectorInputError as error:
            raise ApplicationError(
                str(error), type=type(error).__name__, non_retryable=True
            ) from None
        except DBAPIError as error:
            # The driver's message may quote stored values: report the kind of failure only.
            raise ApplicationError(
                f"{name}: store error {type(error.orig).__name__}", type="StoreError"
            ) from None
        finally:
            _thread_heartbeat.reset(token)

    run.__name__ = run.__qualname__ = name.replace(".", "_")
    run.__annotations__ = {"call": input_type, "return": hints["return"]}
    return activity.defn(name=name)(run)
