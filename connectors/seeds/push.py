"""Demo data for the Push store: Beams devices, Channels connections and client events."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from connectors.push import PushConnector
from connectors.push_store import BeamsDevice, ChannelConnection, ClientEvent, PushBase
from connectors.seeds.population import EndUser, Population

HISTORY = timedelta(days=425)  # about 14 months
INTERESTS = ("order-updates", "promotions", "news", "price-alerts", "chat")
CLIENT_EVENTS = (
    ("client-typing", '{"typing": true}'),
    ("client-message", '{"text": "Is my order on its way?"}'),
    ("client-message", '{"text": "Thanks, that helps!"}'),
    ("client-location", '{"lat": 52.37, "lng": 4.89}'),
    ("client-read", '{"message_id": "m-{n}"}'),
)


@dataclass
class _Rows:
    devices: list[dict[str, Any]] = field(default_factory=list)
    connections: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def seed(connector: PushConnector, population: Population, *, now: datetime, seed: int = 42) -> int:
    """Clear the store and fill it from ``population``: about half the end users use the apps
    of each customer holding them, with one to three Beams devices and Channels connections
    over the last ~14 months before ``now``. Every third customer (``CUST-0003``, ...) knows
    its users by an id of its own, the others by email address. Deterministic for the same
    population, ``now`` and ``seed``; returns the rows written."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)
    rows = _Rows()
    for user in population.end_users:
        for customer in user.customers:
            if rng.random() < 0.5:
                user_id = _user_id(rng, user, customer)
                _seed_devices(rng, rows, user_id, user, customer, now.astimezone(UTC))
                _seed_connections(rng, rows, user_id, user, customer, now.astimezone(UTC))
    with connector.store.writing() as session:
        for table in reversed(PushBase.metadata.sorted_tables):
            session.execute(table.delete())
        tables = (
            (BeamsDevice, rows.devices),
            (ChannelConnection, rows.connections),
            (ClientEvent, rows.events),
        )
        for model, model_rows in tables:
            if model_rows:
                session.execute(insert(model), model_rows)
    return len(rows.devices) + len(rows.connections) + len(rows.events)


def _user_id(rng: random.Random, user: EndUser, customer: str) -> str:
    own_ids = int(customer.rsplit("-", 1)[-1]) % 3 == 0
    return f"u-{rng.getrandbits(48):012x}" if own_ids else user.email


def _seed_devices(
    rng: random.Random, rows: _Rows, user_id: str, user: EndUser, customer: str, now: datetime
) -> None:
    for _ in range(rng.randint(1, 3)):
        platform = rng.choice(("apns", "fcm", "web"))
        rows.devices.append(
            {
                "customer_account": customer,
                "user_id": user_id,
                "device_id": f"{platform}-{rng.getrandbits(96):024x}",
                "platform": platform,
                "token": f"{rng.getrandbits(256):064x}",
                "interests": rng.sample(INTERESTS, k=rng.randint(0, 3)) or None,
                "ip": user.ip if rng.random() < 0.8 else f"198.51.100.{rng.randint(1, 254)}",
                "registered_at": now - rng.uniform(0, 1) * HISTORY,
            }
        )


def _seed_connections(
    rng: random.Random, rows: _Rows, user_id: str, user: EndUser, customer: str, now: datetime
) -> None:
    private = f"private-user-{user_id}" if "@" not in user_id else "private-orders"
    for _ in range(rng.randint(2, 12)):
        connection_id = len(rows.connections) + 1
        connected_at = now - rng.uniform(0, 1) * HISTORY
        duration = rng.randint(5, 3600)
        rows.connections.append(
            {
                "id": connection_id,
                "customer_account": customer,
                "user_id": user_id,
                "socket_id": f"{rng.randint(100000, 999999)}.{rng.randint(1000000, 9999999)}",
                "channel_name": rng.choice(
                    (f"presence-support-{rng.randint(100, 999)}", "presence-lobby", private)
                ),
                "ip": user.ip if rng.random() < 0.9 else None,
                "connected_at": connected_at,
                "duration_seconds": duration,
                "anonymised_at": None,
            }
        )
        for _ in range(rng.choice((0, 0, 1, 2, 3, 4))):
            name, data = rng.choice(CLIENT_EVENTS)
            rows.events.append(
                {
                    "connection_id": connection_id,
                    "event_name": name,
                    "data": data.replace("{n}", str(rng.randint(1, 9999))),
                    "sent_at": connected_at + timedelta(seconds=rng.uniform(0, duration)),
                }
            )
