"""The one SQLite set-up and the one UTC timestamp column shared by the application database and
the connectors' stores (dsr/orm.py): each side's pragmas, and naive datetimes refused."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Integer, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from connectors.kit.store import create_store_engine
from dsr.orm import UtcDateTime, new_engine

PRAGMAS = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")


class _Base(DeclarativeBase):
    pass


class _Stamp(_Base):
    __tablename__ = "stamps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


def _pragmas(url: str, store: bool) -> list[object]:
    engine = create_store_engine(url) if store else new_engine(url)
    try:
        with engine.connect() as connection:
            return [connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in PRAGMAS]
    finally:
        engine.dispose()


def test_each_side_keeps_its_pragmas_and_gets_its_folder(tmp_path: Path) -> None:
    # The application database: synchronous=NORMAL (1), a 5-second busy timeout.
    app = _pragmas(f"sqlite:///{tmp_path}/app/dsr.db", store=False)
    assert app == ["wal", 1, 1, 5000]
    # A connector's store: SQLite's default synchronous (FULL, 2), a 10-second busy timeout.
    assert _pragmas(f"sqlite:///{tmp_path}/stores/sms.db", store=True) == ["wal", 2, 1, 10000]
    assert (tmp_path / "app").is_dir() and (tmp_path / "stores").is_dir()


def test_a_store_write_takes_the_lock_up_front_the_application_database_does_not(
    tmp_path: Path,
) -> None:
    for store, immediate in ((True, True), (False, False)):
        database = tmp_path / f"{store}.db"
        engine = create_store_engine(f"sqlite:///{database}") if store else new_engine(
            f"sqlite:///{database}")
        other = sqlite3.connect(database, isolation_level=None, timeout=0)
        try:
            writing = engine.connect().execution_options(sqlite_begin="IMMEDIATE")
            with writing, writing.begin():
                writing.exec_driver_sql("SELECT 1")
                if immediate:
                    with pytest.raises(sqlite3.OperationalError, match="locked"):
                        other.execute("BEGIN IMMEDIATE")
                else:
                    other.execute("BEGIN IMMEDIATE")
                    other.execute("ROLLBACK")
        finally:
            other.close()
            engine.dispose()


@pytest.mark.parametrize("store", [False, True], ids=["application", "store"])
def test_timestamps_are_kept_as_utc_and_a_naive_one_is_refused(tmp_path: Path,
                                                                store: bool) -> None:
    database = tmp_path / "stamps.db"
    engine = create_store_engine(f"sqlite:///{database}") if store else new_engine(
        f"sqlite:///{database}")
    _Base.metadata.create_all(engine)
    amsterdam = datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=1)))
    with Session(engine) as session, session.begin():
        session.add(_Stamp(id=1, at=amsterdam))
    with Session(engine) as session:
        stored = session.scalar(select(_Stamp.at))
        assert stored == amsterdam and stored is not None and stored.tzinfo is UTC
        with pytest.raises(StatementError, match="timezone-aware"):
            session.scalar(select(_Stamp).where(_Stamp.at < datetime(2026, 3, 1)))
    with Session(engine) as session, pytest.raises(StatementError, match="timezone-aware"):
        session.add(_Stamp(id=2, at=datetime(2026, 3, 1, 12, 30)))
        session.flush()
    engine.dispose()
    with sqlite3.connect(database) as raw:  # the text SQLite keeps: UTC, no offset
        assert raw.execute("SELECT at FROM stamps").fetchall() == [("2026-03-01 11:30:00.000000",)]
