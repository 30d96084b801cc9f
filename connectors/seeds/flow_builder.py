"""Demo data for the Flow Builder store: the flow invocations of the fictional people."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from connectors.flow_builder import FlowBuilderConnector
from connectors.flow_builder_store import FlowBuilderBase, Invocation
from connectors.seeds.population import EndUser, Population

HISTORY = timedelta(days=425)  # about 14 months
FLOWS = ("welcome", "order-updates", "support-triage", "appointment-reminder", "feedback")
TRIGGERS = {"whatsapp": 30, "sms": 20, "email": 20, "messenger": 10, "line": 5, "webhook": 15}
INBOUND_TEXTS = ("Hi", "Where is my order?", "BOOK", "STOP", "Can I talk to someone?", "2")
LOCALES = ("nl-NL", "de-DE", "en-GB", "en-US", "en-SG", "fr-FR", "pt-BR", "en-AU")


def seed(
    connector: FlowBuilderConnector, population: Population, *, now: datetime, seed: int = 42
) -> int:
    """Clear the store and fill it with the flow invocations of ``population`` over the ~14
    months before ``now`` (each end user with each customer holding them); returns the rows
    written."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)
    now = now.astimezone(UTC)
    rows = [
        _invocation(rng, user, customer, now)
        for user in population.end_users
        for customer in user.customers
        for _ in range(rng.randint(2, 10))
    ]
    rows.sort(key=lambda row: row["invoked_at"])
    with connector.store.writing() as session:
        for table in reversed(FlowBuilderBase.metadata.sorted_tables):
            session.execute(table.delete())
        if rows:
            session.execute(insert(Invocation), rows)
    return len(rows)


def _invocation(rng: random.Random, user: EndUser, customer: str, now: datetime) -> dict[str, Any]:
    trigger = rng.choices(list(TRIGGERS), weights=list(TRIGGERS.values()))[0]
    by_email = trigger == "email" or (trigger == "webhook" and rng.random() < 0.7)
    by_phone = trigger in ("whatsapp", "sms") or (trigger == "webhook" and not by_email)
    return {
        "customer_account": customer,
        "flow_id": f"{customer.lower()}-{rng.choice(FLOWS)}",
        "invoked_at": now - timedelta(seconds=rng.uniform(0, HISTORY.total_seconds())),
        "trigger_channel": trigger,
        "contact_email": user.email.lower() if by_email else None,
        "contact_phone": user.phone if by_phone else None,
        "contact_channel_id": user.channel_ids.get(trigger),
        "payload": _payload(rng, user, trigger),
        **_steps(rng, user),
        "anonymised_at": None,
    }


def _payload(rng: random.Random, user: EndUser, trigger: str) -> dict[str, Any]:
    if trigger == "webhook":
        return {"event": "order.shipped", "order_ref": f"A{rng.randint(100000, 999999)}",
                "first_name": user.first_name}  # fmt: skip
    if trigger == "email":
        return {"subject": "Question about my booking", "text": rng.choice(INBOUND_TEXTS)}
    payload: dict[str, Any] = {"text": rng.choice(INBOUND_TEXTS), "locale": rng.choice(LOCALES)}
    if trigger != "sms":
        payload["profile_name"] = user.first_name
    return payload


def _steps(rng: random.Random, user: EndUser) -> dict[str, Any]:
    """The steps a flow ran and their outcomes, and apart what each produced."""
    sent = rng.random() < 0.95
    return {
        "step_results": [
            {"step": "trigger", "status": "ok"},
            {"step": "lookup_contact", "status": "ok"},
            {"step": "send_message", "status": "ok" if sent else "failed"},
        ],
        "step_outputs": [
            None,
            {"first_name": user.first_name},
            {"text": f"Hi {user.first_name}, thanks for your message!"},
        ],
    }
