"""Alembic's environment for the application database.

``dsr.migrations`` runs it with a connection it has locked (``config.attributes
["connection"]``); the ``alembic`` command runs it with the URL from ``-x url=...``, the
ini's ``sqlalchemy.url``, or the settings (``DSR_DATABASE_URL``).
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from dsr import migrations  # noqa: F401  (every table module: Base knows every table)
from dsr.orm import Base, UtcDateTime, new_engine
from dsr.settings import load_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if url:
        return url
    return load_settings().app_database_url


def _render_item(kind: str, obj: Any, _context: AutogenContext) -> str | Literal[False]:
    """Autogenerate writes ``UtcDateTime`` as the column type it is (it only converts)."""
    if kind == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        # Autogenerate writes batch operations, whichever backend it ran against: SQLite
        # alters a table by copying it (batch mode), PostgreSQL runs them as plain ALTERs.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _configure(given)
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    # The alembic command line: no automatic upgrade first, the command decides.
    engine = new_engine(_url())
    with engine.connect() as connection:
        _configure(connection)
    engine.dispose()
