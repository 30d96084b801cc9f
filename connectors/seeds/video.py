"""Demo data for the Video store: meetings with the fictional people and their visitors."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from connectors.dataset.connector import DatasetConnector
from connectors.seeds.population import EndUser, Population
from connectors.video_store import Meeting, VideoBase, Visitor

HISTORY = timedelta(days=425)  # about 14 months
TOPICS = (
    "Mortgage consultation",
    "Insurance review",
    "Onboarding call for the new account",
    "Product demo",
    "Claim follow-up",
    "Financial planning session",
)
REVIEWS = ("5/5 - very helpful", "4/5 - clear advice", "3/5 - started late", "5/5 - thank you")
SUMMARIES = (
    "Discussed the options; visitor will send the documents by email.",
    "Agreed next steps and a follow-up meeting in two weeks.",
    "Visitor asked for a written offer; advisor to prepare it.",
)


@dataclass
class _Rows:
    meetings: list[dict[str, Any]] = field(default_factory=list)
    visitors: list[dict[str, Any]] = field(default_factory=list)


def seed(
    connector: DatasetConnector, population: Population, *, now: datetime, seed: int = 42
) -> int:
    """Clear the store and fill it from ``population``: about half the end users had one to
    six meetings at each customer holding them over the last ~14 months before ``now``.
    Deterministic for the same population, ``now`` and ``seed``; returns the rows written."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)
    rows = _Rows()
    for user in population.end_users:
        for customer in user.customers:
            if rng.random() < 0.55:
                for _ in range(rng.randint(1, 6)):
                    when = now.astimezone(UTC) - rng.uniform(0, 1) * HISTORY
                    _seed_meeting(rng, rows, user, customer, when)
    with connector.store.writing() as session:
        for table in reversed(VideoBase.metadata.sorted_tables):
            session.execute(table.delete())
        for model, model_rows in ((Meeting, rows.meetings), (Visitor, rows.visitors)):
            if model_rows:
                session.execute(insert(model), model_rows)
    return len(rows.meetings) + len(rows.visitors)


def _seed_meeting(
    rng: random.Random, rows: _Rows, user: EndUser, customer: str, when: datetime
) -> None:
    meeting_id = len(rows.meetings) + 1
    rows.meetings.append(
        {
            "id": meeting_id,
            "customer_account": customer,
            "scheduled_at": when.replace(
                minute=rng.choice((0, 15, 30, 45)), second=0, microsecond=0
            ),
            "description": f"{rng.choice(TOPICS)} with {user.first_name}",
            "review": rng.choice(REVIEWS) if rng.random() < 0.4 else None,
            "summary": rng.choice(SUMMARIES) if rng.random() < 0.5 else None,
            "recording_ref": f"recordings/{customer}/{rng.getrandbits(64):016x}.mp4"
            if rng.random() < 0.35
            else None,
        }
    )
    rows.visitors.append(
        {
            "meeting_id": meeting_id,
            "customer_account": customer,
            "name": user.name,
            "email": user.email,
            "phone": user.phone if rng.random() < 0.6 else None,
            "ip": user.ip if rng.random() < 0.8 else f"203.0.113.{rng.randint(1, 254)}",
            "anonymised_at": None,
        }
    )
