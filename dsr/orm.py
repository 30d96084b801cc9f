"""The databases' building blocks: the declarative base every table module of the application
database registers on, the UTC timestamp column of every database (the application's and the
connectors' stores), and an engine on SQLite or PostgreSQL (not migrated:
``dsr.database.make_engine`` migrates the application database)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no offset: stored as UTC).

    A naive datetime is refused (``ValueError``) rather than guessed at: every time the
    product writes or compares is timezone-aware."""

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


class Base(DeclarativeBase):
    pass


def database_url(url: str) -> str:
    """``postgresql://`` means psycopg (version 3), the PostgreSQL driver installed."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def new_engine(
    url: str,
    *,
    busy_timeout_ms: int = 5000,
    synchronous_normal: bool = True,
    immediate_writes: bool = False,
) -> Engine:
    """An engine on a database as it is, on SQLite or PostgreSQL. The defaults are the
    application database's; a connector's store passes its own (``create_store_engine``).

    On SQLite the database's folder is created, and every connection gets WAL, foreign keys
    and ``busy_timeout_ms``; ``synchronous_normal`` adds ``synchronous=NORMAL`` (WAL's default
    is FULL). With ``immediate_writes`` SQLAlchemy, not the sqlite3 module, emits ``BEGIN``, so
    that a connection with the execution option ``sqlite_begin="IMMEDIATE"`` takes the write
    lock up front (``DEFERRED`` otherwise)."""
    parsed = make_url(database_url(url))
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, hide_parameters=True, pool_pre_ping=not sqlite)
    if sqlite:
        _tune_sqlite(engine, busy_timeout_ms, synchronous_normal, immediate_writes)
    return engine


def _tune_sqlite(
    engine: Engine, busy_timeout_ms: int, synchronous_normal: bool, immediate_writes: bool
) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if immediate_writes:
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        if synchronous_normal:
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    if immediate_writes:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
            connection.exec_driver_sql(f"BEGIN {mode}")
