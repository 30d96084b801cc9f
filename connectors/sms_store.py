"""The SMS store: its table (``messages``), the categories and their treatments, and whose
rows a subject's are (``connectors.sms`` is the connector that works on it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    Float,
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
MESSAGE_CONTENT = "message_content"
CATEGORIES = (PHONE_NUMBER, TRAFFIC_DATA, LOCATION_DATA, MESSAGE_CONTENT)
# Erasing either cuts the record loose from the person (see ``connectors.sms``).
LINK_CATEGORIES = frozenset({PHONE_NUMBER, TRAFFIC_DATA})
CONTENT_COLUMNS = ("content",)
LOCATION_COLUMNS = ("cell_id", "latitude", "longitude")
UNLINK = (
    ("end_user_phone", Strategy.PSEUDONYM),
    ("sent_at", Strategy.TO_DAY),
    *((column, Strategy.NULL) for column in ("operator", "route")),
    *((column, Strategy.NULL) for column in CONTENT_COLUMNS + LOCATION_COLUMNS),
    ("anonymised_at", Strategy.MARK),
)
TREATMENTS = (
    *(
        Treatment(category=category, table="messages", column=column, strategy=strategy)
        for category in sorted(LINK_CATEGORIES)
        for column, strategy in UNLINK
    ),
    *(
        Treatment(category=MESSAGE_CONTENT, table="messages", column=column, strategy=Strategy.NULL)
        for column in CONTENT_COLUMNS
    ),
    *(
        Treatment(category=LOCATION_DATA, table="messages", column=column, strategy=Strategy.NULL)
        for column in LOCATION_COLUMNS
    ),
)


class SmsBase(DeclarativeBase):
    pass


class Message(SmsBase):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    end_user_phone: Mapped[str] = mapped_column(String(64))  # E.164, or pseudonym once anonymised
    direction: Mapped[str] = mapped_column(String(8))
    sender_id: Mapped[str] = mapped_column(String(20))  # the customer's number or alphanumeric
    content: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16))
    operator: Mapped[str | None] = mapped_column(String(64))
    route: Mapped[str | None] = mapped_column(String(64))
    segments: Mapped[int] = mapped_column(Integer)
    country_ended: Mapped[str] = mapped_column(String(2))  # ISO 3166 alpha-2
    cell_id: Mapped[str | None] = mapped_column(String(64))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_messages_subject", "customer_account", "end_user_phone", "sent_at"),
        Index("ix_messages_phone", "end_user_phone"),  # locating the controllers of a number
        CheckConstraint("direction IN ('inbound', 'outbound')", name="ck_messages_direction"),
    )


class Restriction(RestrictionMixin, SmsBase):
    pass


class SmsOperationLog(OperationLogMixin, SmsBase):
    pass


# --- the subject ---------------------------------------------------------------------------

def subject_where(customer_account: str, phones: Iterable[str]) -> list[ColumnElement[bool]]:
    return phone_where(Message, customer_account, phones)


def subject_messages(customer_account: str, phones: Iterable[str]) -> Select[Message]:
    """The subject lookup every operation uses (served by ``ix_messages_subject``)."""
    return select(Message).where(*subject_where(customer_account, phones))


def holds(category: str) -> ColumnElement[bool]:
    """Whether a (not anonymised) message still holds data of ``category``."""
    if category == LOCATION_DATA:
        return or_(*(getattr(Message, column).is_not(None) for column in LOCATION_COLUMNS))
    if category == MESSAGE_CONTENT:
        return Message.content.is_not(None)
    return true()
