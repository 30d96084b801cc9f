"""The application database: the request register (``dsr.register``), the audit ledger, the
officers' directory and the other tables, opened on SQLite or PostgreSQL.

Identities appear here only as keyed hashes. It is the long-term record: Temporal forgets a
closed workflow after its namespace's retention, this register does not.
"""

from __future__ import annotations

from sqlalchemy import Engine

from dsr.migrations import upgrade
from dsr.orm import new_engine


def make_engine(url: str, *, migrate: bool = True) -> Engine:
    """An engine on the application database (SQLite or PostgreSQL), upgraded to the newest
    migration first (``dsr.migrations``) unless ``migrate`` is False."""
    engine = new_engine(url)
    if migrate:
        upgrade(engine)
    return engine
