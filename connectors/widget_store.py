"""The Omnichannel Widget store: its tables (``widget_sessions``), the categories and their
treatments, and whose rows a subject's are (``connectors.widget`` is the connector that works on
it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    JSON,
    ColumnElement,
    Index,
    Integer,
    Select,
    String,
    false,
    func,
    select,
    text,
    union,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connectors.kit.restrictions import RestrictionMixin
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import Scope, Strategy, Treatment
from dsr.models import Identity, IdentityType

CONTACT_IDENTIFIERS = "contact_identifiers"
TRAFFIC_DATA = "traffic_data"
CATEGORIES = (CONTACT_IDENTIFIERS, TRAFFIC_DATA)
PREFERRED_CHANNELS = ("email", "sms", "voice", "whatsapp", "messenger", "line", "instagram")
RECTIFIABLE = ("email", "phone", "preferred_channel")
IDENTIFIER_FIELDS = ("email", "phone", "channel_id", "preferred_channel", "ip")
IDENTITY_FIELDS = {"email": IdentityType.EMAIL, "phone": IdentityType.PHONE}
# Erasing either category cuts the whole session loose (see the module docstring).
UNLINK = (
    *((column, Strategy.NULL) for column in (*IDENTIFIER_FIELDS, "pages")),
    ("started_at", Strategy.TO_DAY),
    ("anonymised_at", Strategy.MARK),
)
TREATMENTS = tuple(
    Treatment(category=category, table="widget_sessions", column=column, strategy=strategy)
    for category in CATEGORIES
    for column, strategy in UNLINK
)


class WidgetBase(DeclarativeBase):
    pass


class WidgetSession(WidgetBase):
    __tablename__ = "widget_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))
    channel_id: Mapped[str | None] = mapped_column(String(161))  # "whatsapp:447700900123"
    preferred_channel: Mapped[str | None] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(String(45))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    page_count: Mapped[int] = mapped_column(Integer)
    pages: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_widget_sessions_phone", "customer_account", "phone", "started_at"),
        Index("ix_widget_sessions_channel", "customer_account", "channel_id", "started_at"),
        # locating the controllers of an identity, across customers
        Index("ix_widget_sessions_locate_email", func.lower(text("email"))),
        Index("ix_widget_sessions_locate_phone", "phone"),
        Index("ix_widget_sessions_locate_channel", "channel_id"),
    )


class Restriction(RestrictionMixin, WidgetBase):
    pass


class WidgetOperationLog(OperationLogMixin, WidgetBase):
    pass


# One subject's sessions at one customer by email; addresses match case-insensitively.
Index("ix_widget_sessions_email", WidgetSession.customer_account, func.lower(WidgetSession.email))


# --- the subject ---------------------------------------------------------------------------

LOOKUP = {
    IdentityType.EMAIL: func.lower(WidgetSession.email),
    IdentityType.PHONE: WidgetSession.phone,
    IdentityType.CHANNEL_ID: WidgetSession.channel_id,
}


@dataclass(frozen=True)
class WidgetSubject:
    customer_account: str
    identities: tuple[Identity, ...]
    # A sweep's filter in place of the identities: the sessions it names, any customer's.
    where: tuple[ColumnElement[bool], ...] = ()


def widget_subject(scope: Scope) -> WidgetSubject | None:
    """The identities to look up at the scope's customer; none without a customer account."""
    identities = tuple(i for i in scope.identities if i.type in LOOKUP)
    if scope.customer_account is None or not identities:
        return None
    return WidgetSubject(scope.customer_account, identities)


def session_where(subject: WidgetSubject) -> list[ColumnElement[bool]]:
    """The subject's sessions: one indexed lookup per identity type, each confined to the
    customer, joined by id (an OR across the indexes is left to the planner's guesses)."""
    if subject.where:
        return [*subject.where, WidgetSession.anonymised_at.is_(None)]
    lookups = []
    for kind, column in LOOKUP.items():
        values = sorted({_lookup_value(i) for i in subject.identities if i.type is kind})
        if values:
            lookups.append(
                select(WidgetSession.id).where(
                    WidgetSession.customer_account == subject.customer_account,
                    column.in_(values),
                )
            )
    return [
        WidgetSession.id.in_(union(*lookups)) if lookups else false(),
        WidgetSession.anonymised_at.is_(None),
    ]


def locate_holders(scope: Scope) -> Select[str] | None:
    """The customers holding sessions of these identities, across customers: one lookup per
    identity type (``ix_widget_sessions_locate_email``, ``_phone`` and ``_channel``); none
    without an identity the widget matches."""
    lookups = []
    for kind, column in LOOKUP.items():
        values = sorted({_lookup_value(i) for i in scope.identities if i.type is kind})
        if values:
            lookups.append(
                select(WidgetSession.customer_account).where(
                    column.in_(values), WidgetSession.anonymised_at.is_(None)
                )
            )
    if not lookups:
        return None
    held = union(*lookups).subquery()
    return select(held.c.customer_account).order_by(held.c.customer_account)


def subject_sessions(
    customer_account: str, identities: Iterable[Identity]
) -> Select[WidgetSession]:
    """The subject lookup every operation uses (``ix_widget_sessions_email``, ``_phone`` and
    ``_channel``)."""
    subject = WidgetSubject(customer_account, tuple(identities))
    return select(WidgetSession).where(*session_where(subject))


def _lookup_value(identity: Identity) -> str:
    return identity.value.lower() if identity.type is IdentityType.EMAIL else identity.value
