"""Demo data for the Email store: recipient entries, the messages sent to them and their
events."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from connectors.email import EmailConnector
from connectors.email_store import EmailBase, Event, Recipient, Send
from connectors.seeds.population import EndUser, Population

HISTORY = timedelta(days=425)  # about 14 months
LISTS = ("transactional", "newsletter", "product-updates")
CAMPAIGNS = {
    "transactional": (
        ("Your order {ref} is on its way", "Hi {first}, your order {ref} has shipped."),
        ("Your receipt {ref}", "Hi {first}, thank you for your payment of EUR {amount}."),
        ("Reset your password", "Hi {first}, use the link in this email to reset it."),
    ),
    "newsletter": (
        ("This month's highlights", "Hi {first}, here is what is new this month."),
        ("Our spring sale starts now", "Hi {first}, up to 30% off until Sunday."),
    ),
    "product-updates": (
        ("New in the app: dark mode", "Hi {first}, dark mode is here."),
        ("We updated our terms", "Hi {first}, we made our terms easier to read."),
    ),
}
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile",
)
CITIES = {
    "NL": ("Amsterdam", "Rotterdam", "Utrecht"),
    "DE": ("Berlin", "Munich", "Hamburg"),
    "GB": ("London", "Manchester", "Edinburgh"),
    "US": ("New York", "San Francisco", "Chicago"),
    "SG": ("Singapore",),
    "FR": ("Paris", "Lyon"),
    "BR": ("Sao Paulo",),
    "AU": ("Sydney", "Melbourne"),
}
SEGMENTS = ("loyal", "new", "lapsed", "vip", "bargain-hunter")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")


def seed(
    connector: EmailConnector, population: Population, *, now: datetime, seed: int = 42
) -> int:
    """Clear the store and fill it from ``population``: for most end users, at each customer
    holding them, a transactional entry active over the last ~14 months and often a second
    list's entry, some lapsed (all of their activity nine months or more before ``now``).
    Deterministic for the same population, ``now`` and ``seed``; returns the rows written."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)
    rows = _Rows(now.astimezone(UTC))
    for user in population.end_users:
        for customer in user.customers:
            if rng.random() < 0.85:
                _seed_customer(rng, rows, user, customer)
    with connector.store.writing() as session:
        for table in reversed(EmailBase.metadata.sorted_tables):
            session.execute(table.delete())
        tables = ((Recipient, rows.recipients), (Send, rows.sends), (Event, rows.events))
        for model, model_rows in tables:
            if model_rows:
                session.execute(insert(model), model_rows)
    return len(rows.recipients) + len(rows.sends) + len(rows.events)


@dataclass
class _Rows:
    now: datetime
    recipients: list[dict[str, Any]] = field(default_factory=list)
    sends: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _seed_customer(rng: random.Random, rows: _Rows, user: EndUser, customer: str) -> None:
    start = rows.now - HISTORY
    _seed_entry(rng, rows, user, customer, "transactional", start, rows.now)
    if rng.random() < 0.5:
        list_id = rng.choice(LISTS[1:])
        lapsed = rng.random() < 0.4
        end = rows.now - timedelta(days=rng.uniform(270, 330)) if lapsed else rows.now
        _seed_entry(rng, rows, user, customer, list_id, start, end)


def _seed_entry(
    rng: random.Random,
    rows: _Rows,
    user: EndUser,
    customer: str,
    list_id: str,
    start: datetime,
    end: datetime,
) -> None:
    """One recipient entry, active from shortly after ``start`` until ``end``."""
    created_at = start + timedelta(days=rng.uniform(0, 20))
    recipient_id = len(rows.recipients) + 1
    rows.recipients.append(
        {
            "id": recipient_id,
            "customer_account": customer,
            "list_id": list_id,
            "email": user.email,
            "name": user.name if rng.random() < 0.85 else None,
            "segment_data": _segment(rng, user) if rng.random() < 0.7 else None,
            "created_at": created_at,
            "anonymised_at": None,
        }
    )
    span = (end - created_at).total_seconds()
    for sent_at in sorted(
        created_at + timedelta(seconds=rng.uniform(0, span)) for _ in range(rng.randint(3, 10))
    ):
        _seed_send(rng, rows, user, recipient_id, list_id, sent_at, end)


def _seed_send(
    rng: random.Random,
    rows: _Rows,
    user: EndUser,
    recipient_id: int,
    list_id: str,
    sent_at: datetime,
    end: datetime,
) -> None:
    send_id = len(rows.sends) + 1
    subject, body = rng.choice(CAMPAIGNS[list_id])
    words = {
        "first": user.first_name,
        "ref": f"{rng.choice('ABCDEFGHJK')}{rng.randint(100000, 999999)}",
        "amount": f"{rng.uniform(5, 500):.2f}",
    }
    rows.sends.append(
        {
            "id": send_id,
            "recipient_id": recipient_id,
            "campaign": f"{list_id}-{sent_at:%Y%m}",
            "subject": subject.format(**words),
            "body": body.format(**words) if rng.random() < 0.9 else None,
            "sent_at": sent_at,
        }
    )
    bounced = rng.random() < 0.04
    moment = min(end, sent_at + timedelta(seconds=rng.uniform(1, 30)))
    kinds = ["bounce"] if bounced else ["delivery"]
    if not bounced and rng.random() < 0.55:
        kinds += ["open", "click"] if rng.random() < 0.4 else ["open"]
    for kind in kinds:
        if kind != kinds[0]:
            moment = min(end, moment + timedelta(minutes=rng.uniform(1, 600)))
        rows.events.append(_event_row(rng, user, recipient_id, send_id, kind, moment))


def _event_row(
    rng: random.Random,
    user: EndUser,
    recipient_id: int,
    send_id: int,
    kind: str,
    moment: datetime,
) -> dict[str, Any]:
    engaged = kind in ("open", "click")
    country = user.country if rng.random() < 0.9 else rng.choice(list(CITIES))
    ip = user.ip if rng.random() < 0.7 else f"198.51.100.{rng.randint(1, 254)}"
    return {
        "recipient_id": recipient_id,
        "send_id": send_id,
        "type": kind,
        "occurred_at": moment,
        "ip": ip if engaged else None,
        "user_agent": rng.choice(USER_AGENTS) if engaged else None,
        "geo_country": country if engaged else None,
        "geo_city": rng.choice(CITIES[country]) if engaged else None,
        "target_link": f"https://shop.example.com/p/{rng.randint(1000, 9999)}"
        if kind == "click"
        else None,
        "cookie_id": f"ck_{rng.getrandbits(64):016x}" if kind == "click" else None,
        "anonymised_at": None,
    }


def _segment(rng: random.Random, user: EndUser) -> dict[str, Any]:
    return {
        "segment": rng.choice(SEGMENTS),
        "age_band": rng.choice(AGE_BANDS),
        "country": user.country,
        "language": {"NL": "nl", "DE": "de", "FR": "fr", "BR": "pt"}.get(user.country, "en"),
    }
