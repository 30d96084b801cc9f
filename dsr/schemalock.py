"""One process at a time changing a database's schema: a PostgreSQL advisory lock, or on a
SQLite file an exclusive ``flock`` on a file beside it. Taken by the application database's
migrations and by a connector store creating its tables, so that two processes starting at
once on an empty database never both create them."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.engine import make_url

# pg_advisory_lock's key: any bigint the deployment's other software does not use.
ADVISORY_LOCK_KEY = 0x6473_725F_6D69_6772  # "dsr_migr"


@contextmanager
def schema_lock(engine: Engine) -> Iterator[Connection]:
    """A connection held by one process at a time (per database)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(select(func.pg_advisory_lock(ADVISORY_LOCK_KEY)))
            connection.commit()
            try:
                yield connection
            finally:
                connection.rollback()
                connection.execute(select(func.pg_advisory_unlock(ADVISORY_LOCK_KEY)))
                connection.commit()
        return
    database = make_url(str(engine.url)).database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        with engine.connect() as connection:
            yield connection
        return
    lock_path = Path(database).expanduser().with_name(Path(database).name + ".migrate-lock")
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
