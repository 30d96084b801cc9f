"""Demo data for the Omnichannel Widget store: the widget sessions of the fictional people."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from connectors.dataset.connector import DatasetConnector
from connectors.seeds.population import EndUser, Population
from connectors.widget_store import WidgetBase, WidgetSession

HISTORY = timedelta(days=425)  # about 14 months
PAGES = (
    "/", "/pricing", "/products", "/products/plans", "/support", "/support/returns",
    "/contact", "/checkout", "/account/orders", "/blog/whats-new",
)  # fmt: skip


def seed(
    connector: DatasetConnector, population: Population, *, now: datetime, seed: int = 42
) -> int:
    """Clear the store and fill it from ``population``: about half the end users started two
    to ten widget sessions at each customer holding them over the last ~14 months before
    ``now``, giving an email, a phone number and/or a channel id. Deterministic for the same
    population, ``now`` and ``seed``; returns the rows written."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)
    rows = [
        row
        for user in population.end_users
        for customer in user.customers
        if rng.random() < 0.5
        for row in _sessions(rng, user, customer, now.astimezone(UTC))
    ]
    rows.sort(key=lambda row: row["started_at"])
    with connector.store.writing() as session:
        for table in reversed(WidgetBase.metadata.sorted_tables):
            session.execute(table.delete())
        if rows:
            session.execute(insert(WidgetSession), rows)
    return len(rows)


def _sessions(
    rng: random.Random, user: EndUser, customer: str, now: datetime
) -> list[dict[str, Any]]:
    channel = rng.choice(sorted(user.channel_ids))
    preferred = rng.choice(("email", "sms", channel))
    sessions = []
    for _ in range(rng.randint(2, 10)):
        given = {
            "email": user.email if rng.random() < 0.7 else None,
            "phone": user.phone if rng.random() < 0.5 else None,
            "channel_id": user.channel_ids[channel] if rng.random() < 0.3 else None,
        }
        if not any(given.values()):
            given["email"] = user.email
        pages = rng.sample(PAGES, k=rng.randint(1, 6))
        sessions.append(
            {
                "customer_account": customer,
                **given,
                "preferred_channel": preferred,
                "ip": user.ip if rng.random() < 0.8 else f"203.0.113.{rng.randint(1, 254)}",
                "started_at": now - rng.uniform(0, 1) * HISTORY,
                "duration_seconds": rng.randint(20, 1800),
                "page_count": len(pages),
                "pages": pages,
                "anonymised_at": None,
            }
        )
    return sessions
