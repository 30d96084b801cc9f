"""Alembic migrations of the application database (SQLite or PostgreSQL).

Every process that opens the database (``dsr.database.make_engine``) upgrades it to the
newest revision first: a no-op read of ``alembic_version`` when it is already there;
otherwise under a lock (``dsr.schemalock``), so that two processes starting at once (the
worker and the codec server, say) never both migrate. A database created by ``create_all``
before the migrations existed (tables, no ``alembic_version``) is adopted: the tables of the
initial revision it lacks are created, it is stamped at the initial revision, then upgraded.

The operator's command (``DSR_DATABASE_URL``, or ``--url``)::

    python -m dsr.migrations upgrade     # to the newest revision (what every start does)
    python -m dsr.migrations current     # the database's revision and the newest one
    python -m dsr.migrations check       # exit 1 if the models differ from the migrations

A new migration, after changing a model: ``alembic -c dsr/schema/alembic.ini revision
--autogenerate -m "what changes"`` against an up-to-date database, then review the file it
writes under ``dsr/schema/versions/`` (plain SQLAlchemy types: ``sa.DateTime(timezone=True)``
for ``UtcDateTime``).
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

# Every table module, so that Base knows every table the migrations manage.
from dsr import holds, ledger, nonces, officers, package_links, register, sessions  # noqa: F401
from dsr.files import private_umask
from dsr.logging import configure
from dsr.orm import Base, new_engine
from dsr.schemalock import schema_lock
from dsr.settings import SettingsError, load_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "schema"  # package data: installed too
INITIAL_REVISION = "0001"
# The tables of the initial revision: what create_all made before the migrations existed.
INITIAL_TABLES = (
    "requests",
    "milestones",
    "confirmations",
    "legal_holds",
    "ledger",
    "ledger_head",
    "officer_sessions",
    "package_links",
)

# The standard logger (shown where logging is set to INFO): a CLI's --json output, and what
# a test captures of a CLI's output, stay clean. ``python -m dsr.migrations`` says what it did.
log = logging.getLogger(__name__)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration; with ``connection``, the migrations run on it."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS_DIR}")
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default the newest), adopting a database that
    ``create_all`` made before the migrations existed. Safe to call from several processes
    at once, and a cheap no-op when the database is already there."""
    if revision == "head":
        with engine.connect() as connection:
            if current_revision(connection) == head_revision():
                return
    with schema_lock(engine) as connection:
        before = current_revision(connection)
        connection.commit()
        if before is None:
            _adopt_legacy(connection)
        command.upgrade(alembic_config(connection), revision)
        connection.commit()
        after = current_revision(connection)
        connection.commit()
        if after != before:
            log.info("application database migrated from %s to %s (%s)", before, after,
                     engine.dialect.name)


def differences(engine: Engine) -> list[Any]:
    """What autogenerate would put in a new migration: empty when the models and the
    migrations agree."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    return list(diff)


def _adopt_legacy(connection: Connection) -> None:
    """A database with our tables but no revision was made by ``create_all``: create what
    it lacks of the initial revision (as ``create_all`` would have), stamp it there."""
    present = set(inspect(connection).get_table_names())
    if not present & set(INITIAL_TABLES):
        return  # empty (or someone else's tables only): the initial migration creates ours
    missing = [Base.metadata.tables[name] for name in INITIAL_TABLES if name not in present]
    Base.metadata.create_all(connection, tables=missing)
    connection.commit()
    command.stamp(alembic_config(connection), INITIAL_REVISION)
    connection.commit()
    log.info("application database made before the migrations adopted: created %s, stamped "
             "%s (%s)", [table.name for table in missing], INITIAL_REVISION,
             connection.dialect.name)


# The operator's command: python -m dsr.migrations ... -----------------------------------

app = typer.Typer(no_args_is_help=True, help="The application database's migrations.")
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="A SQLAlchemy URL; default: DSR_DATABASE_URL or var/dsr.db."),
]


def _engine(url: str | None) -> Engine:
    if url is None:
        configure()
        try:
            url = load_settings().app_database_url
        except SettingsError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
    return new_engine(url)


@app.command("upgrade")
def upgrade_command(
    url: UrlOpt = None,
    revision: Annotated[str, typer.Option(help="The revision to go to.")] = "head",
) -> None:
    """Upgrade the database (adopting one made before the migrations)."""
    engine = _engine(url)
    upgrade(engine, revision)
    with engine.connect() as connection:
        typer.echo(f"database at revision {current_revision(connection)}")


@app.command("current")
def current_command(url: UrlOpt = None) -> None:
    """The database's revision, and the newest one."""
    with _engine(url).connect() as connection:
        typer.echo(f"database: {current_revision(connection)}, newest: {head_revision()}")


@app.command("check")
def check_command(url: UrlOpt = None) -> None:
    """Exit 1 if the models differ from the database (run after upgrade)."""
    found = differences(_engine(url))
    for difference in found:
        typer.echo(repr(difference))
    if found:
        raise typer.Exit(1)
    typer.echo("the models and the migrations agree")


if __name__ == "__main__":
    private_umask()
    app()
