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
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.orm import Session

from connectors.kit.connector import PROCESSOR_ACTIVITIES, CutoffConnector, sweep_scope
from connectors.kit.queries import count_rows, export_partitions, holding
from connectors.kit.reach import in_chunks
from connectors.kit.restrictions import is_restricted
from connectors.kit.shares import erase_dated
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
from dsr.models import Identity

# --- the connector -------------------------------------------------------------------------


class PushConnector(CutoffConnector[PushSubject]):
    name: ClassVar[str] = "push"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = PROCESSOR_ACTIVITIES

    schema = PushBase
    operation_log = PushOperationLog
    restriction_model = Restriction
    marks_treated = True  # a user id is the customer's own: it may look like a pseudonym

    subject = staticmethod(push_subject)
    holders = staticmethod(locate_holders)

    def holding(
        self, session: Session, subject: PushSubject, category: str
    ) -> CategoryHolding | None:
        return holding(session, category, parts(subject, category))

    def export_chunks(
        self, session: Session, subject: PushSubject
    ) -> Iterator[list[dict[str, Any]]]:
        """The subject's devices, connections and client events, one chunk per partition."""
        devices = select(BeamsDevice).where(*device_where(subject)).order_by(BeamsDevice.id)
        yield from export_partitions(session, devices, _device)
        connections = select(ChannelConnection).where(*connection_where(subject))
        connections = connections.order_by(ChannelConnection.id)
        yield from export_partitions(session, connections, _connection)
        (content,) = parts(subject, MESSAGE_CONTENT)
        events = select(ClientEvent).where(*content.where).order_by(ClientEvent.id)
        yield from export_partitions(session, events, _client_event)

    def is_restricted(self, customer_account: str, identity: Identity) -> bool:
        """Whether processing of this end user's push data is restricted for this customer."""
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- erase and restrict, inside the operation's transaction ----------------------------

    def erase_now(
        self, session: Session, subject: PushSubject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        """Each category as declared (``push_store.TREATMENTS``), through the kit's
        treatments: devices and addresses, events' content, then the connections cut loose
        (their events' content and addresses with them)."""
        as_of = scope.as_of
        erased: dict[str, int] = {}
        for category in (DEVICE_AND_IP, MESSAGE_CONTENT):  # table by table
            before = cutoffs.get(category)
            if before is not None:
                held = parts(subject, category)
                erased[category] = erase_dated(self.treat, session, category, held, before, as_of)
        if TRAFFIC_DATA in cutoffs:
            unlinked = self._unlink(session, subject, cutoffs[TRAFFIC_DATA], as_of)
            for category, found in unlinked.items():
                if category in cutoffs or found:
                    erased[category] = erased.get(category, 0) + found
        retained = {category: _count(session, subject, category) for category in cutoffs}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The erase of the devices registered before the device cutoff, then of the
        connections (and their events) made before the widest cutoff, a chunk at a time."""
        scope = sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))

        def erase(devices: ColumnElement[bool], connections: ColumnElement[bool]) -> dict[str, int]:
            chunk = PushSubject("", (), (), (devices, connections))
            return self.erase_now(session, chunk, cutoffs, scope).erased

        if DEVICE_AND_IP in cutoffs:
            old = [BeamsDevice.registered_at < cutoffs[DEVICE_AND_IP]]
            in_chunks(session, BeamsDevice.id, old, lambda ids: erase(ids, false()), anonymised)
        if cutoffs:
            pending = [
                ChannelConnection.anonymised_at.is_(None),
                ChannelConnection.connected_at < max(cutoffs.values()),
            ]
            in_chunks(
                session, ChannelConnection.id, pending, lambda ids: erase(false(), ids), anonymised
            )
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def _unlink(
        self, session: Session, subject: PushSubject, before: datetime, as_of: datetime
    ) -> dict[str, int]:
        """Cut loose the connections made before ``before``, with their events' content;
        returns the count per category."""
        made = [*connection_where(subject), ChannelConnection.connected_at < before]
        with_ip = [*made, ChannelConnection.ip.is_not(None)]
        addresses = count_rows(session, ChannelConnection, with_ip)
        events = [
            ClientEvent.connection_id.in_(select(ChannelConnection.id).where(*made)),
            ClientEvent.data.is_not(None),
        ]
        content = self.treat.apply(session, "client_events", [TRAFFIC_DATA], events, as_of)
        unlinked = self.treat.apply(session, "channel_connections", [TRAFFIC_DATA], made, as_of)
        return {TRAFFIC_DATA: unlinked, MESSAGE_CONTENT: content, DEVICE_AND_IP: addresses}

    def restrict_now(self, session: Session, subject: PushSubject, call: FlagInput) -> int:
        customer = subject.customer_account
        self.restrictions.place_or_lift(session, customer, call, subject.identities)
        return _subject_rows(session, subject)


# --- queries -------------------------------------------------------------------------------


def _count(session: Session, subject: PushSubject, category: str) -> int:
    return sum(count_rows(session, part.model, part.where) for part in parts(subject, category))


def _subject_rows(session: Session, subject: PushSubject) -> int:
    """The subject's rows a restriction covers: devices, connections and their events."""
    connections = select(ChannelConnection.id).where(*connection_where(subject))
    return (
        count_rows(session, BeamsDevice, device_where(subject))
        + _count(session, subject, TRAFFIC_DATA)
        + count_rows(session, ClientEvent, [ClientEvent.connection_id.in_(connections)])
    )


# --- export --------------------------------------------------------------------------------


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
