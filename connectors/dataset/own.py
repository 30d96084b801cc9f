"""The tables the dataset connector creates for itself, the only ones it creates: its operation
log, its restrictions and its other flags (objections, withdrawals of consent, marketing
opt-outs), these two by keyed identity hash, never an identity.

On PostgreSQL they live in a schema of their own, ``dsr_connector.<connector>_<table>`` (the
schema created if missing); elsewhere as prefixed tables, ``dsr_connector_<connector>_<table>``.
One set per connector: keys do not name the connector. It never creates or alters the
affiliate's tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Index, MetaData, String, inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateSchema

from connectors.kit.restrictions import RestrictionMixin
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.schemalock import schema_lock

OWN_SCHEMA = "dsr_connector"  # PostgreSQL: the schema of the connector's own tables


class FlagMixin:
    """An objection, a withdrawal of consent or a marketing opt-out (``operation``) of one end
    user of one customer (or of the group's own data: customer ``"-"``), by keyed hash of one
    identity. None of them is lifted; the first one recorded stays."""

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    identity_hash: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class OwnTables:
    base: type[DeclarativeBase]
    operation_log: type[OperationLogMixin]
    restrictions: type[RestrictionMixin]
    flags: type[FlagMixin]


def own_tables(connector: str, engine: Engine) -> OwnTables:
    """The connector's own tables (declared here, created by its ``Store``)."""
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        with schema_lock(engine) as connection:
            if OWN_SCHEMA not in inspect(connection).get_schema_names():
                connection.execute(CreateSchema(OWN_SCHEMA))
                connection.commit()

    class Base(DeclarativeBase):
        metadata = MetaData(schema=OWN_SCHEMA if postgres else None)

    def named(table: str) -> str:
        return f"{connector}_{table}" if postgres else f"{OWN_SCHEMA}_{connector}_{table}"

    def subject_index(table: str) -> tuple[Index]:  # index names are unique per schema
        return (Index(f"ix_{named(table)}", "customer_account", "identity_hash"),)

    log = type("DatasetOperationLog", (OperationLogMixin, Base),
               {"__tablename__": named("operation_log")})
    restrictions = type("DatasetRestriction", (RestrictionMixin, Base), {
        "__tablename__": named("restrictions"), "__table_args__": subject_index("restrictions")})
    flags = type("DatasetFlag", (FlagMixin, Base), {
        "__tablename__": named("flags"), "__table_args__": subject_index("flags")})
    return OwnTables(Base, log, restrictions, flags)
