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
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import ColumnElement, CursorResult, Select, delete, false, func, select, update
from sqlalchemy.orm import Session

from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.cutoffs import id_chunks
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from connectors.kit.restrictions import is_restricted
from connectors.push_store import (
    CATEGORIES,
    DEVICE_AND_IP,
    MESSAGE_CONTENT,
    TRAFFIC_DATA,
    TREATMENTS,
    BeamsDevice,
    ChannelConnection,
    ClientEvent,
    PushBase,
    PushOperationLog,
    PushSubject,
    Restriction,
    connection_where,
    device_where,
    locate_holders,
    parts,
    push_subject,
)
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    FlagInput,
    Scope,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.hashing import keyed_hash
from dsr.models import Identity

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
