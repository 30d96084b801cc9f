"""Push connector (Pusher): Pusher Beams device registrations and Pusher Channels connection
logs with the client events sent over them, held for the customers whose apps use Pusher.

The customer is the controller of its end users' data and the group its processor, so every
lookup is confined to one customer account: without ``scope.customer_account`` the connector
finds nothing, and it never searches across customers.

Pusher knows an end user only by the customer's own user id for them (Beams ``setUserId``,
Channels presence and user authentication). Many customers use the email address: an ``email``
identity finds that user id. Others use an id of their own, which a request names as a channel
id ``pusher:<user id>``; other channel ids (``whatsapp:...``) belong to other products.

Erasure, per category:
- ``device_and_ip``: Beams devices are deleted (Pusher stops delivering to them, as Beams'
  delete-user does) and the IP of Channels connections is cleared;
- ``message_content``: the data of client events is cleared; event name and time stay;
- ``traffic_data``: a Channels connection is cut loose from the person. The user id becomes a
  keyed-hash pseudonym (statistics still count distinct users), socket id, channel name and IP
  are cleared, ``connected_at`` is cut to the day and the row gets ``anonymised_at``; the data
  of its client events goes too. Day and duration stay.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    CursorResult,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    delete,
    false,
    func,
    select,
    union,
    update,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, Session, mapped_column

from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.cutoffs import id_chunks
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from connectors.kit.restrictions import RestrictionMixin, is_restricted
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    FlagInput,
    Scope,
    Strategy,
    SweepInput,
    SweepResult,
    Treatment,
    treat,
)
from dsr.hashing import keyed_hash
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


@dataclass(frozen=True)
class Part:
    """One table's share of a category: the subject's rows still holding it, and their date."""

    model: type[PushBase]
    dated: InstrumentedAttribute[datetime]
    where: list[ColumnElement[bool]]


def parts(subject: PushSubject, category: str) -> list[Part]:
    if category == DEVICE_AND_IP:
        with_ip = [*connection_where(subject), ChannelConnection.ip.is_not(None)]
        return [
            Part(BeamsDevice, BeamsDevice.registered_at, device_where(subject)),
            Part(ChannelConnection, ChannelConnection.connected_at, with_ip),
        ]
    if category == TRAFFIC_DATA:
        return [Part(ChannelConnection, ChannelConnection.connected_at, connection_where(subject))]
    connections = select(ChannelConnection.id).where(*connection_where(subject))
    content: list[ColumnElement[bool]] = [
        ClientEvent.connection_id.in_(connections),
        ClientEvent.data.is_not(None),
    ]
    return [Part(ClientEvent, ClientEvent.sent_at, content)]


# --- the connector -------------------------------------------------------------------------


class PushConnector(CutoffConnector[PushSubject]):
    name: ClassVar[str] = "push"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = (
        "discover",
        "access",
        "erase",
        "restrict",
        "locate",
        "sweep",
    )

    schema = PushBase
    operation_log = PushOperationLog
    restriction_model = Restriction

    subject = staticmethod(push_subject)
    holders = staticmethod(locate_holders)

    def holding(
        self, session: Session, subject: PushSubject, category: str
    ) -> CategoryHolding | None:
        return _holding(session, subject, category)

    def export_chunks(
        self, session: Session, subject: PushSubject
    ) -> Iterator[list[dict[str, Any]]]:
        return _export_chunks(session, subject)

    def is_restricted(self, customer_account: str, identity: Identity) -> bool:
        """Whether processing of this end user's push data is restricted for this customer."""
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- erase and restrict, inside the operation's transaction ----------------------------

    def erase_now(
        self, session: Session, subject: PushSubject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        as_of = scope.as_of
        erased: dict[str, int] = {}
        if DEVICE_AND_IP in cutoffs:
            erased[DEVICE_AND_IP] = _erase_devices(session, subject, cutoffs[DEVICE_AND_IP])
        if MESSAGE_CONTENT in cutoffs:
            (content,) = parts(subject, MESSAGE_CONTENT)
            before = ClientEvent.sent_at < cutoffs[MESSAGE_CONTENT]
            erased[MESSAGE_CONTENT] = _clear_content(session, [*content.where, before])
        if TRAFFIC_DATA in cutoffs:
            unlinked = self._unlink(session, subject, cutoffs[TRAFFIC_DATA], as_of)
            for category, count in unlinked.items():
                if category in cutoffs or count:
                    erased[category] = erased.get(category, 0) + count
        retained = {category: _count(session, subject, category) for category in cutoffs}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The erase of the devices registered before the device cutoff, then of the
        connections (and their events) made before the widest cutoff, a chunk at a time."""
        scope = sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        if DEVICE_AND_IP in cutoffs:
            old = [BeamsDevice.registered_at < cutoffs[DEVICE_AND_IP]]
            for ids in id_chunks(session, BeamsDevice.id, old):
                chunk = PushSubject("", (), (), (BeamsDevice.id.in_(ids), false()))
                anonymised.update(self.erase_now(session, chunk, cutoffs, scope).erased)
        if cutoffs:
            pending: list[ColumnElement[bool]] = [
                ChannelConnection.anonymised_at.is_(None),
                ChannelConnection.connected_at < max(cutoffs.values()),
            ]
            for ids in id_chunks(session, ChannelConnection.id, pending):
                chunk = PushSubject("", (), (), (false(), ChannelConnection.id.in_(ids)))
                anonymised.update(self.erase_now(session, chunk, cutoffs, scope).erased)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def _unlink(
        self, session: Session, subject: PushSubject, before: datetime, as_of: datetime
    ) -> dict[str, int]:
        """Cut loose the connections made before ``before``, with their events' content;
        returns the count per category."""
        rows = session.execute(
            select(
                ChannelConnection.id,
                ChannelConnection.user_id,
                ChannelConnection.ip,
                ChannelConnection.connected_at,
            ).where(*connection_where(subject), ChannelConnection.connected_at < before)
        ).all()
        content = _clear_content(session, [ClientEvent.connection_id.in_([r.id for r in rows])])
        changes = [
            {
                "id": row.id,
                "user_id": keyed_hash(self.secret, row.user_id, "pseudonym"),
                "socket_id": None,
                "channel_name": None,
                "ip": None,
                "connected_at": row.connected_at.replace(hour=0, minute=0, second=0, microsecond=0),
                "anonymised_at": as_of,
            }
            for row in rows
        ]
        if changes:
            session.execute(update(ChannelConnection), changes)
        return {
            TRAFFIC_DATA: len(changes),
            MESSAGE_CONTENT: content,
            DEVICE_AND_IP: sum(1 for row in rows if row.ip is not None),
        }

    def restrict_now(self, session: Session, subject: PushSubject, call: FlagInput) -> int:
        customer = subject.customer_account
        self.restrictions.place_or_lift(session, customer, call, subject.identities)
        return _subject_rows(session, subject)


# --- queries -------------------------------------------------------------------------------


def _holding(session: Session, subject: PushSubject, category: str) -> CategoryHolding | None:
    records, earliest, latest = 0, None, None
    for part in parts(subject, category):
        count, first, last = session.execute(
            select(func.count(), func.min(part.dated), func.max(part.dated))
            .select_from(part.model)
            .where(*part.where)
        ).one()
        if count:
            records += count
            earliest = first if earliest is None else min(earliest, first)
            latest = last if latest is None else max(latest, last)
    if not records:
        return None
    return CategoryHolding(category=category, records=records, earliest=earliest, latest=latest)


def _count(session: Session, subject: PushSubject, category: str) -> int:
    return sum(
        session.scalar(select(func.count()).select_from(part.model).where(*part.where)) or 0
        for part in parts(subject, category)
    )


def _subject_rows(session: Session, subject: PushSubject) -> int:
    """The subject's rows a restriction covers: devices, connections and their events."""
    connections = select(ChannelConnection.id).where(*connection_where(subject))
    events = select(func.count()).where(ClientEvent.connection_id.in_(connections))
    devices = select(func.count()).select_from(BeamsDevice).where(*device_where(subject))
    return (
        (session.scalar(devices) or 0)
        + _count(session, subject, TRAFFIC_DATA)
        + (session.scalar(events) or 0)
    )


def _changed(session: Session, statement: Any) -> int:
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _erase_devices(session: Session, subject: PushSubject, before: datetime) -> int:
    """Delete the Beams devices registered before ``before`` and clear the IP of the
    connections made before it."""
    devices = delete(BeamsDevice).where(*device_where(subject), BeamsDevice.registered_at < before)
    addresses = (
        update(ChannelConnection)
        .where(
            *connection_where(subject),
            ChannelConnection.ip.is_not(None),
            ChannelConnection.connected_at < before,
        )
        .values(ip=None)
        .execution_options(synchronize_session=False)
    )
    return _changed(session, devices) + _changed(session, addresses)


def _clear_content(session: Session, where: list[ColumnElement[bool]]) -> int:
    statement = (
        update(ClientEvent)
        .where(*where, ClientEvent.data.is_not(None))
        .values(data=None)
        .execution_options(synchronize_session=False)
    )
    return _changed(session, statement)


# --- export --------------------------------------------------------------------------------


def _export_chunks(session: Session, subject: PushSubject) -> Iterator[list[dict[str, Any]]]:
    """The subject's devices, connections and client events, one chunk per partition."""
    (content,) = parts(subject, MESSAGE_CONTENT)
    sources: list[tuple[Select[Any], Any]] = [
        (select(BeamsDevice).where(*device_where(subject)).order_by(BeamsDevice.id), _device),
        (
            select(ChannelConnection)
            .where(*connection_where(subject))
            .order_by(ChannelConnection.id),
            _connection,
        ),
        (select(ClientEvent).where(*content.where).order_by(ClientEvent.id), _client_event),
    ]
    for statement, records in sources:
        rows = session.scalars(statement.execution_options(yield_per=EXPORT_CHUNK_ROWS))
        for partition in rows.partitions():
            yield [record for row in partition for record in records(row)]


def _device(device: BeamsDevice) -> Iterator[dict[str, Any]]:
    yield {
        "category": DEVICE_AND_IP,
        "device_id": device.device_id,
        "customer_account": device.customer_account,
        "product": "Pusher Beams",
        "user_id": device.user_id,
        "platform": device.platform,
        "token": device.token,
        "interests": device.interests,
        "ip": device.ip,
        "registered_at": device.registered_at,
    }


def _connection(connection: ChannelConnection) -> Iterator[dict[str, Any]]:
    ids = {"connection_id": connection.id, "customer_account": connection.customer_account}
    yield {
        "category": TRAFFIC_DATA,
        **ids,
        "product": "Pusher Channels",
        "user_id": connection.user_id,
        "socket_id": connection.socket_id,
        "channel_name": connection.channel_name,
        "connected_at": connection.connected_at,
        "duration_seconds": connection.duration_seconds,
    }
    if connection.ip is not None:
        yield {"category": DEVICE_AND_IP, **ids, "product": "Pusher Channels", "ip": connection.ip}


def _client_event(event: ClientEvent) -> Iterator[dict[str, Any]]:
    yield {
        "category": MESSAGE_CONTENT,
        "event_id": event.id,
        "connection_id": event.connection_id,
        "event_name": event.event_name,
        "data": event.data,
        "sent_at": event.sent_at,
    }
