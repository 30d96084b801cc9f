"""The Flow Builder store: its table (``invocations``), the categories and their treatments,
whose invocations a subject's are and the subject's records as exported
(``connectors.flow_builder`` is the connector that works on it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Index, Integer, Select, String, or_, select, true
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, Session, mapped_column

from connectors.kit.identities import EndUser, IdentityColumns
from connectors.kit.queries import export_partitions
from connectors.kit.restrictions import RestrictionMixin
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import Strategy, Treatment
from dsr.models import IdentityType

INVOCATION_IDENTIFIERS = "invocation_identifiers"
CHANNEL_DATA = "channel_data"
CATEGORIES = (INVOCATION_IDENTIFIERS, CHANNEL_DATA)
IDENTIFIER_COLUMNS = ("contact_email", "contact_phone", "contact_channel_id")
CHANNEL_COLUMNS = ("payload", "step_outputs")
TREATMENTS = tuple(
    Treatment(category=category, table="invocations", column=column, strategy=strategy)
    for category, treatments in (
        (
            INVOCATION_IDENTIFIERS,
            (
                *((column, Strategy.NULL) for column in IDENTIFIER_COLUMNS + CHANNEL_COLUMNS),
                ("anonymised_at", Strategy.MARK),
            ),
        ),
        (CHANNEL_DATA, tuple((column, Strategy.NULL) for column in CHANNEL_COLUMNS)),
    )
    for column, strategy in treatments
)


class FlowBuilderBase(DeclarativeBase):
    pass


class Invocation(FlowBuilderBase):
    __tablename__ = "invocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    flow_id: Mapped[str] = mapped_column(String(64))
    invoked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    trigger_channel: Mapped[str] = mapped_column(String(16))
    contact_email: Mapped[str | None] = mapped_column(String(254))  # lower case
    contact_phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    contact_channel_id: Mapped[str | None] = mapped_column(String(170))  # "whatsapp:..."
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    step_results: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # each step and status
    # What each step produced, in the order of ``step_results`` (None: no output).
    step_outputs: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_invocations_email", "customer_account", "contact_email", "invoked_at"),
        Index("ix_invocations_phone", "customer_account", "contact_phone", "invoked_at"),
        Index("ix_invocations_channel_id", "customer_account", "contact_channel_id"),
        # locating the controllers of an identity, across customers
        Index("ix_invocations_locate_email", "contact_email"),
        Index("ix_invocations_locate_phone", "contact_phone"),
        Index("ix_invocations_locate_channel_id", "contact_channel_id"),
    )


class Restriction(RestrictionMixin, FlowBuilderBase):
    pass


class FlowBuilderOperationLog(OperationLogMixin, FlowBuilderBase):
    pass


# --- the subject ---------------------------------------------------------------------------

IDENTITY_COLUMNS: dict[IdentityType, InstrumentedAttribute[str | None]] = {
    IdentityType.EMAIL: Invocation.contact_email,
    IdentityType.PHONE: Invocation.contact_phone,
    IdentityType.CHANNEL_ID: Invocation.contact_channel_id,
}
# An end user is found by whichever of these the invocation names (customer first, or across
# customers by the ``ix_invocations_locate_*`` indexes).
CONTACTS = IdentityColumns(IDENTITY_COLUMNS, Invocation.customer_account, Invocation.anonymised_at)
Subject = EndUser  # one customer's end user, by every identity Flow Builder matches
subject_of = CONTACTS.subject
subject_where = CONTACTS.where
locate_holders = CONTACTS.holders


def subject_invocations(subject: Subject) -> Select[Invocation]:
    """The subject lookup every operation uses (served by the ``ix_invocations_*`` indexes)."""
    return select(Invocation).where(*subject_where(subject))


def holds(category: str) -> ColumnElement[bool]:
    """Whether a (not anonymised) invocation still holds data of ``category``."""
    if category == CHANNEL_DATA:
        return or_(Invocation.payload.is_not(None), Invocation.step_outputs.is_not(None))
    return true()


# --- export --------------------------------------------------------------------------------


def subject_export_chunks(session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
    """The subject's invocations, oldest first, a partition at a time."""
    statement = subject_invocations(subject).order_by(Invocation.invoked_at, Invocation.id)
    return export_partitions(session, statement, _records)


def _records(invocation: Invocation) -> Iterator[dict[str, Any]]:
    """One export record per category the invocation holds, joined by ``invocation_id``."""
    ids = {"invocation_id": invocation.id, "customer_account": invocation.customer_account}
    yield {
        "category": INVOCATION_IDENTIFIERS,
        **ids,
        "flow_id": invocation.flow_id,
        "invoked_at": invocation.invoked_at,
        "trigger_channel": invocation.trigger_channel,
        "email": invocation.contact_email,
        "phone_number": invocation.contact_phone,
        "channel_id": invocation.contact_channel_id,
    }
    if invocation.payload is not None or invocation.step_outputs is not None:
        yield {
            "category": CHANNEL_DATA,
            **ids,
            "payload": invocation.payload,
            "step_results": _with_outputs(invocation.step_results, invocation.step_outputs),
        }


def _with_outputs(steps: list[dict[str, Any]], outputs: list[Any] | None) -> list[dict[str, Any]]:
    """Each step with what it produced, as the flow ran it."""
    padded = [*(outputs or []), *([None] * len(steps))]
    return [
        step if out is None else {**step, "output": out}
        for step, out in zip(steps, padded, strict=False)
    ]
