"""The Push store: its tables (``beams_devices``, ``channel_connections`` and ``client_events``),
the categories and their treatments, and whose rows a subject's are (``connectors.push`` is the
connector that works on it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    JSON,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    select,
    union,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connectors.kit.queries import Held
from connectors.kit.restrictions import RestrictionMixin
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import Scope, Strategy, treat
from dsr.models import Identity, IdentityType

DEVICE_AND_IP = "device_and_ip"
TRAFFIC_DATA = "traffic_data"
MESSAGE_CONTENT = "message_content"
CATEGORIES = (DEVICE_AND_IP, TRAFFIC_DATA, MESSAGE_CONTENT)
CHANNEL_ID_PREFIX = "pusher:"
CLEAR_CONTENT = (("data", Strategy.NULL),)
UNLINK_CONNECTION = (
    ("user_id", Strategy.PSEUDONYM),
    *((column, Strategy.NULL) for column in ("socket_id", "channel_name", "ip")),
    ("connected_at", Strategy.TO_DAY),
    ("anonymised_at", Strategy.MARK),
)


TREATMENTS = (
    *treat(DEVICE_AND_IP, "beams_devices", [("*", Strategy.DELETE_ROW)]),
    *treat(DEVICE_AND_IP, "channel_connections", [("ip", Strategy.NULL)]),
    *treat(MESSAGE_CONTENT, "client_events", CLEAR_CONTENT),
    *treat(TRAFFIC_DATA, "channel_connections", UNLINK_CONNECTION),
    # A connection cut loose takes its client events' content with it.
    *treat(TRAFFIC_DATA, "client_events", CLEAR_CONTENT),
)


class PushBase(DeclarativeBase):
    pass


class BeamsDevice(PushBase):
    """A device registered with Pusher Beams for one of the customer's users."""

    __tablename__ = "beams_devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(254))  # the customer's id for its end user
    device_id: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(8))  # apns, fcm, web
    token: Mapped[str] = mapped_column(String(300))
    interests: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    ip: Mapped[str | None] = mapped_column(String(45))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_beams_devices_subject", "customer_account", "user_id", "registered_at"),
        Index("ix_beams_devices_locate_user", "user_id"),  # locating the controllers
    )


class ChannelConnection(PushBase):
    """One Pusher Channels connection of an authenticated user."""

    __tablename__ = "channel_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(254))  # or a pseudonym once anonymised
    socket_id: Mapped[str | None] = mapped_column(String(40))
    channel_name: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(45))
    connected_at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_channel_connections_subject", "customer_account", "user_id", "connected_at"),
        Index("ix_channel_connections_locate_user", "user_id"),  # locating the controllers
    )


class ClientEvent(PushBase):
    """An event a client sent over a connection (``client-*``), with its content."""

    __tablename__ = "client_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("channel_connections.id"))
    event_name: Mapped[str] = mapped_column(String(64))
    data: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_client_events_connection", "connection_id", "sent_at"),)


class Restriction(RestrictionMixin, PushBase):
    pass


class PushOperationLog(OperationLogMixin, PushBase):
    pass


# --- the subject ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PushSubject:
    customer_account: str
    identities: tuple[Identity, ...]
    user_ids: tuple[str, ...]
    # A sweep's filters in place of the user ids: the devices and the connections they name,
    # any customer's.
    sweep: tuple[ColumnElement[bool], ColumnElement[bool]] | None = None


def user_ids(identities: list[Identity]) -> list[str]:
    """The customer's user ids an identity can be: an email address (as given and lower-cased)
    or the id in a ``pusher:<user id>`` channel id."""
    ids: set[str] = set()
    for identity in identities:
        if identity.type is IdentityType.EMAIL:
            ids |= {identity.value, identity.value.lower()}
        elif identity.value.startswith(CHANNEL_ID_PREFIX):
            ids.add(identity.value.removeprefix(CHANNEL_ID_PREFIX))
    return sorted(ids)


def push_identities(identities: list[Identity]) -> list[Identity]:
    """The identities Pusher can match: email addresses and ``pusher:`` channel ids."""
    return [
        i
        for i in identities
        if i.type is IdentityType.EMAIL
        or (i.type is IdentityType.CHANNEL_ID and i.value.startswith(CHANNEL_ID_PREFIX))
    ]


def locate_holders(scope: Scope) -> Select[str] | None:
    """The customers holding Beams devices or Channels connections of these identities, across
    customers (``ix_beams_devices_locate_user`` and ``ix_channel_connections_locate_user``);
    none without an identity Pusher matches."""
    ids = user_ids(push_identities(scope.identities))
    if not ids:
        return None
    held = union(
        select(BeamsDevice.customer_account).where(BeamsDevice.user_id.in_(ids)),
        select(ChannelConnection.customer_account).where(
            ChannelConnection.user_id.in_(ids), ChannelConnection.anonymised_at.is_(None)
        ),
    ).subquery()
    return select(held.c.customer_account).order_by(held.c.customer_account)


def push_subject(scope: Scope) -> PushSubject | None:
    """The user ids to look up at the scope's customer; none without a customer account."""
    identities = push_identities(scope.identities)
    ids = user_ids(identities)
    if scope.customer_account is None or not ids:
        return None
    return PushSubject(scope.customer_account, tuple(identities), tuple(ids))


def device_where(subject: PushSubject) -> list[ColumnElement[bool]]:
    if subject.sweep is not None:
        return [subject.sweep[0]]
    return [
        BeamsDevice.customer_account == subject.customer_account,
        BeamsDevice.user_id.in_(subject.user_ids),
    ]


def connection_where(subject: PushSubject) -> list[ColumnElement[bool]]:
    if subject.sweep is not None:
        return [subject.sweep[1], ChannelConnection.anonymised_at.is_(None)]
    return [
        ChannelConnection.customer_account == subject.customer_account,
        ChannelConnection.user_id.in_(subject.user_ids),
        ChannelConnection.anonymised_at.is_(None),
    ]


def subject_devices(customer_account: str, ids: list[str]) -> Select[BeamsDevice]:
    """The subject's Beams devices (``ix_beams_devices_subject``)."""
    return select(BeamsDevice).where(*device_where(PushSubject(customer_account, (), tuple(ids))))


def subject_connections(customer_account: str, ids: list[str]) -> Select[ChannelConnection]:
    """The subject's Channels connections (``ix_channel_connections_subject``)."""
    subject = PushSubject(customer_account, (), tuple(ids))
    return select(ChannelConnection).where(*connection_where(subject))


def parts(subject: PushSubject, category: str) -> list[Held]:
    """The tables holding a category, each with the subject's rows still holding it."""
    if category == DEVICE_AND_IP:
        with_ip = [*connection_where(subject), ChannelConnection.ip.is_not(None)]
        return [
            Held(BeamsDevice.registered_at, device_where(subject)),
            Held(ChannelConnection.connected_at, with_ip),
        ]
    if category == TRAFFIC_DATA:
        return [Held(ChannelConnection.connected_at, connection_where(subject))]
    connections = select(ChannelConnection.id).where(*connection_where(subject))
    content: list[ColumnElement[bool]] = [
        ClientEvent.connection_id.in_(connections),
        ClientEvent.data.is_not(None),
    ]
    return [Held(ClientEvent.sent_at, content)]
