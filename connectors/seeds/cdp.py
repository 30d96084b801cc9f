"""Demo data for the CDP store: a profile per end user and customer holding them, with
their events."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from connectors.cdp_store import CdpBase, Profile, ProfileEvent
from connectors.dataset.connector import DatasetConnector
from connectors.seeds.population import EndUser, Population

HISTORY = timedelta(days=425)  # about 14 months
JOB_TITLES = (
    "Operations Manager", "Software Engineer", "Teacher", "Nurse", "Designer",
    "Sales Representative", "Student", "Accountant",
)  # fmt: skip
PLANS = ("free", "plus", "premium")
PREFERRED_CHANNELS = ("email", "sms", "whatsapp", "push")
EVENT_NAMES = ("Page Viewed", "Product Viewed", "Order Completed", "Email Opened", "App Opened")
PAGES = ("/", "/pricing", "/account", "/orders", "/help", "/products/lamp", "/products/chair")


def seed(
    connector: DatasetConnector, population: Population, *, now: datetime, seed: int = 42
) -> int:
    """Clear the store and fill it with one profile per end user and customer holding them,
    with their events over the ~14 months before ``now``. Returns the number of events. The
    same population, ``now`` and ``seed`` give the same rows."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)
    now = now.astimezone(UTC)
    profiles: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for user in population.end_users:
        for customer in user.customers:
            profile = _profile(rng, user, customer, len(profiles) + 1, now)
            profiles.append(profile)
            events.extend(_events(rng, profile, now))
    with connector.store.writing() as session:
        for table in reversed(CdpBase.metadata.sorted_tables):
            session.execute(table.delete())
        session.execute(insert(Profile), profiles)
        session.execute(insert(ProfileEvent), sorted(events, key=lambda e: e["occurred_at"]))
    return len(events)


def _profile(
    rng: random.Random, user: EndUser, customer: str, profile_id: int, now: datetime
) -> dict[str, Any]:
    created_at = now - timedelta(seconds=rng.uniform(30 * 86400, HISTORY.total_seconds()))
    return {
        "id": profile_id,
        "customer_account": customer,
        "external_id": f"usr_{rng.getrandbits(40):010x}",
        "name": user.name,
        # some customers keep the address as the person typed it
        "email": user.email if rng.random() < 0.8 else user.email.title(),
        "job_title": rng.choice(JOB_TITLES) if rng.random() < 0.6 else None,
        "ip": user.ip,
        "traits": {
            "plan": rng.choice(PLANS),
            "lifetime_orders": rng.randint(0, 40),
            "preferred_channel": rng.choice(PREFERRED_CHANNELS),
            "country": user.country,
        },
        "created_at": created_at,
        "updated_at": _between(rng, created_at, now),
        "processing_restricted": False,
        "objected_at": None,
        "anonymised_at": None,
    }


def _events(rng: random.Random, profile: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "profile_id": profile["id"],
            "customer_account": profile["customer_account"],
            "name": (name := rng.choice(EVENT_NAMES)),
            "occurred_at": _between(rng, profile["created_at"], now),
            "ip": profile["ip"],
            "properties": _properties(rng, name),
        }
        for _ in range(rng.randint(3, 25))
    ]


def _properties(rng: random.Random, name: str) -> dict[str, Any]:
    if name == "Order Completed":
        return {"order_id": f"ORD-{rng.randint(100000, 999999)}", "total": rng.randint(5, 400)}
    if name == "Email Opened":
        return {"campaign": rng.choice(("spring-sale", "welcome", "newsletter"))}
    return {"page": rng.choice(PAGES)}


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
