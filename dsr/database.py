"""The application database: the request register, its milestones, and confirmation records.

Identities appear here only as keyed hashes. It is the long-term record: Temporal forgets a
closed workflow after its namespace's retention, this register does not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    create_engine,
    event,
    false,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Stored as UTC, read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class RequestRecord(Base):
    __tablename__ = "requests"
    # Server defaults (child) read back when used, not by RETURNING on every insert: a row
    # written at a revision before the column (as the migration tests do) still inserts.
    __mapper_args__ = {"eager_defaults": False}  # noqa: RUF012  (SQLAlchemy's declaration)

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rights: Mapped[list[str]] = mapped_column(JSON)
    jurisdiction: Mapped[str] = mapped_column(String(8), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    requester_kind: Mapped[str] = mapped_column(String(20))
    customer_account: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(5))
    subject_hashes: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), index=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    extended: Mapped[bool] = mapped_column(Boolean, default=False)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    # A report that the subject is a child (privacy statement s.10): a marker, no age or date.
    child: Mapped[bool] = mapped_column(Boolean, server_default=false())
    affiliates: Mapped[list[str]] = mapped_column(JSON, default=list)
    policy_version: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RequestSubjectRecord(Base):
    """One subject hash of a registered request: the index possible duplicates are found by."""

    __tablename__ = "request_subjects"
    __table_args__ = (
        Index("ix_request_subjects_subject_hash_received_at", "subject_hash", "received_at"),
    )

    subject_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(
        ForeignKey("requests.request_id"), primary_key=True, index=True  # the purge's delete
    )
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)  # the request's, for the window


class MilestoneRecord(Base):
    __tablename__ = "milestones"
    __table_args__ = (UniqueConstraint("request_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.request_id"), index=True)
    key: Mapped[str] = mapped_column(String(80))
    step: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ConfirmationRecord(Base):
    """The answer as sent: proof that the request was honoured, kept for its retention."""

    __tablename__ = "confirmations"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)
    retain_until: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    message: Mapped[bytes] = mapped_column(LargeBinary)  # sealed: dsr.codec.unseal reads it


def database_url(url: str) -> str:
    """``postgresql://`` means psycopg (version 3), the PostgreSQL driver installed."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def make_engine(url: str, *, migrate: bool = True) -> Engine:
    """An engine on the application database (SQLite or PostgreSQL), upgraded to the newest
    migration first (``dsr.migrations``) unless ``migrate`` is False."""
    url = database_url(url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, hide_parameters=True, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        from dsr.migrations import upgrade

        upgrade(engine)
    return engine


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


import dsr.holds  # noqa: E402  (registers the legal holds' table on Base)
import dsr.ledger  # noqa: E402, F401  (registers the audit ledger's tables on Base)
from dsr import nonces as _nonces  # noqa: E402, F401  (registers spent_nonces on Base)
from dsr import officers as _officers  # noqa: E402, F401  (registers the officers' directory)
from dsr import package_links as _package_links  # noqa: E402, F401  (package_links on Base)
from dsr import sessions as _sessions  # noqa: E402, F401  (registers officer_sessions on Base)
