"""The Voice store: its tables (``calls`` and ``recordings``), the categories and their treatments,
and whose rows a subject's are (``connectors.voice`` is the connector that works on it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    Float,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    or_,
    select,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connectors.kit.communications import phone_where
from connectors.kit.restrictions import RestrictionMixin
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import Strategy, Treatment

PHONE_NUMBER = "phone_number"
TRAFFIC_DATA = "traffic_data"
LOCATION_DATA = "location_data"
CALL_RECORDINGS = "call_recordings"
CATEGORIES = (PHONE_NUMBER, TRAFFIC_DATA, LOCATION_DATA, CALL_RECORDINGS)
# Erasing either cuts the call loose from the person (see the module docstring).
LINK_CATEGORIES = frozenset({PHONE_NUMBER, TRAFFIC_DATA})
LOCATION_COLUMNS = ("cell_id", "latitude", "longitude")
RECORDING_TREATMENTS = (
    ("recordings", "*", Strategy.DELETE_ROW),
    ("calls", "recording_ref", Strategy.NULL),
)
LOCATION_TREATMENTS = tuple(("calls", column, Strategy.NULL) for column in LOCATION_COLUMNS)
UNLINK = (
    ("calls", "end_user_phone", Strategy.PSEUDONYM),
    ("calls", "started_at", Strategy.TO_DAY),
    ("calls", "route", Strategy.NULL),
    *LOCATION_TREATMENTS,
    *RECORDING_TREATMENTS,
    ("calls", "anonymised_at", Strategy.MARK),
)
TREATMENTS = tuple(
    Treatment(category=category, table=table, column=column, strategy=strategy)
    for category, treatments in (
        *((category, UNLINK) for category in sorted(LINK_CATEGORIES)),
        (LOCATION_DATA, LOCATION_TREATMENTS),
        (CALL_RECORDINGS, RECORDING_TREATMENTS),
    )
    for table, column, strategy in treatments
)


class VoiceBase(DeclarativeBase):
    pass


class Recording(VoiceBase):
    """A call's optional recording: where its audio lives, and its transcript if made."""

    __tablename__ = "recordings"

    ref: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    audio_path: Mapped[str] = mapped_column(String(200))  # in the customer's recording storage
    size_bytes: Mapped[int] = mapped_column(Integer)
    transcript: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Call(VoiceBase):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    end_user_phone: Mapped[str] = mapped_column(String(64))  # E.164, or pseudonym once anonymised
    direction: Mapped[str] = mapped_column(String(8))
    caller_id: Mapped[str] = mapped_column(String(20))  # the customer's number on the call
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration_s: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    route: Mapped[str | None] = mapped_column(String(64))
    country_ended: Mapped[str] = mapped_column(String(2))  # ISO 3166 alpha-2
    cell_id: Mapped[str | None] = mapped_column(String(64))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    recording_ref: Mapped[str | None] = mapped_column(ForeignKey("recordings.ref"))
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_calls_subject", "customer_account", "end_user_phone", "started_at"),
        Index("ix_calls_recording_ref", "recording_ref"),
        Index("ix_calls_locate_phone", "end_user_phone"),  # locating the controllers of a number
        CheckConstraint("direction IN ('inbound', 'outbound')", name="ck_calls_direction"),
    )


class Restriction(RestrictionMixin, VoiceBase):
    pass


class VoiceOperationLog(OperationLogMixin, VoiceBase):
    pass


# --- the subject ---------------------------------------------------------------------------

def subject_where(customer_account: str, phones: Iterable[str]) -> list[ColumnElement[bool]]:
    return phone_where(Call, customer_account, phones)


def subject_calls(customer_account: str, phones: Iterable[str]) -> Select[Call]:
    """The subject lookup every operation uses (served by ``ix_calls_subject``)."""
    return select(Call).where(*subject_where(customer_account, phones))


def holds(category: str) -> ColumnElement[bool]:
    """Whether a (not anonymised) call still holds data of ``category``."""
    if category == LOCATION_DATA:
        return or_(*(getattr(Call, column).is_not(None) for column in LOCATION_COLUMNS))
    if category == CALL_RECORDINGS:
        return Call.recording_ref.is_not(None)
    return true()
