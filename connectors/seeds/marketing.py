"""Demo data for the Marketing store: prospects, subscriptions and consent proof."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from connectors.marketing import MarketingConnector
from connectors.marketing_store import ConsentRecord, MarketingBase, ProspectRow, Subscription
from connectors.seeds.population import EndUser, Population

HISTORY = timedelta(days=3 * 365)  # about three years of prospects and subscriptions
LISTS = ("newsletter", "product_updates", "events")
FORMS = ("contact-sales", "whitepaper-download", "webinar-signup", "newsletter-signup")
PROVIDERS = ("Example Enrichment Co.", "Sample Leads Ltd")
COMPANIES = (
    "Acme Widgets B.V.", "Globex Logistics GmbH", "Initech Ltd", "Umbrella Retail Inc.",
    "Stark Mobility Pte. Ltd.", "Wayne Hospitality B.V.", "Hooli Health Ltd",
)  # fmt: skip
JOB_TITLES = (
    "Head of Marketing", "CRM Manager", "CTO", "Product Owner", "Customer Service Lead",
    "Developer", "Operations Director",
)  # fmt: skip


@dataclass(frozen=True)
class Seeded:
    prospects: list[ProspectRow]
    subscriptions: list[dict[str, Any]]
    consents: list[dict[str, Any]]


def seed(
    connector: MarketingConnector, population: Population, *, now: datetime, seed: int = 42
) -> int:
    """Clear the store (suppression list included) and fill it with prospects, subscriptions
    and consent proof for about half of ``population`` over the ~3 years before ``now``, with
    long-standing subscribers whose consent proof is older than five years; the first person
    always has proof on both sides of five years. Prospects go through ``import_prospects``.
    Returns the number of records. The same population, ``now`` and ``seed`` give the same
    rows."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)
    now = now.astimezone(UTC)
    seeded = Seeded([], [], [])
    for index, user in enumerate(population.end_users):
        if index == 0:
            _first_person(connector, seeded, user, now)
        elif rng.random() < 0.5:
            _contact(rng, connector, seeded, user, now)
    with connector.store.writing() as session:
        for table in reversed(MarketingBase.metadata.sorted_tables):
            session.execute(table.delete())
        session.execute(insert(Subscription), seeded.subscriptions)
        session.execute(insert(ConsentRecord), seeded.consents)
    imported = connector.import_prospects(seeded.prospects)
    return imported + len(seeded.subscriptions) + len(seeded.consents)


def _contact(
    rng: random.Random, connector: MarketingConnector, seeded: Seeded, user: EndUser, now: datetime
) -> None:
    created_at = now - timedelta(seconds=rng.uniform(0, HISTORY.total_seconds()))
    enriched = rng.random() < 0.4
    seeded.prospects.append(
        ProspectRow(
            email=user.email.title() if enriched and rng.random() < 0.3 else user.email,
            name=user.name,
            company=rng.choice(COMPANIES),
            job_title=rng.choice(JOB_TITLES) if rng.random() < 0.8 else None,
            source="enrichment" if enriched else "web_form",
            source_detail=rng.choice(PROVIDERS if enriched else FORMS),
            created_at=created_at,
            last_contacted_at=_between(rng, created_at, now) if rng.random() < 0.6 else None,
        )
    )
    if enriched:
        return
    for list_name in rng.sample(LISTS, k=rng.randint(1, len(LISTS))):
        long_standing = rng.random() < 0.2
        years = rng.uniform(5.2, 7) if long_standing else rng.uniform(0, 3)
        subscribed_at = now - timedelta(days=years * 365)
        ended = rng.random() < 0.3
        ended_at = _between(rng, subscribed_at, now) if ended else None
        _subscribe(connector, seeded, user, list_name, subscribed_at, ended_at)


def _first_person(
    connector: MarketingConnector, seeded: Seeded, user: EndUser, now: datetime
) -> None:
    """A long-standing contact: proof older than five years (a newsletter consent withdrawn
    5.5 years ago) and newer proof for two lists still subscribed."""
    days = timedelta(days=1)
    seeded.prospects.append(
        ProspectRow(
            email=user.email,
            name=user.name,
            company=COMPANIES[0],
            job_title=JOB_TITLES[0],
            source="web_form",
            source_detail="contact-sales",
            created_at=now - 700 * days,
            last_contacted_at=now - 40 * days,
        )
    )
    _subscribe(connector, seeded, user, "newsletter", now - 2370 * days, now - 2000 * days)
    _subscribe(connector, seeded, user, "product_updates", now - 365 * days, None)
    _subscribe(connector, seeded, user, "events", now - 800 * days, None)


def _subscribe(
    connector: MarketingConnector,
    seeded: Seeded,
    user: EndUser,
    list_name: str,
    subscribed_at: datetime,
    ended_at: datetime | None,
) -> None:
    seeded.subscriptions.append(
        {
            "email": user.email,
            "list_name": list_name,
            "subscribed_at": subscribed_at,
            "unsubscribed_at": ended_at,
        }
    )
    seeded.consents.append(
        {
            "email_hash": connector.identity_hash(user.email),
            "purpose": list_name,
            "given_at": subscribed_at,
            "evidence": f"web form newsletter-signup; checkbox '{list_name}' ticked; IP {user.ip}",
            "withdrawn_at": ended_at,
            "withdrawal_evidence": "unsubscribe link in a marketing email" if ended_at else None,
        }
    )


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
