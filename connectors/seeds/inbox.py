"""Demo data for the Inbox store: the agents' conversations with the fictional people."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from connectors.inbox import InboxConnector
from connectors.inbox_store import Conversation, InboxBase, Message
from connectors.seeds.population import EndUser, Population

HISTORY = timedelta(days=425)  # about 14 months
CHANNELS = {"whatsapp": 30, "messenger": 15, "line": 10, "sms": 15, "email": 20, "livechat": 10}
END_USER_LINES = (
    "Hi, where is my order?",
    "Can I change my delivery address?",
    "I was charged twice, can you help?",
    "Thanks, that solved it!",
    "Is the store open on Sunday?",
    "My code doesn't work.",
)
AGENT_LINES = (
    "Hi {first}, thanks for reaching out. Let me check that for you.",
    "I've updated your booking. Anything else I can help with?",
    "Sorry for the trouble, {first}. A refund is on its way.",
    "Could you send me your order number?",
)
NOTES = (
    "Customer upset about double charge, refund approved by team lead.",
    "Asked to be called back after 5pm.",
    "Repeat contact about the same delivery; escalate if it happens again.",
)


def seed(
    connector: InboxConnector, population: Population, *, now: datetime, seed: int = 42
) -> int:
    """Clear the store and fill it with the conversations of ``population`` over the ~14 months
    before ``now`` (each end user with each customer holding them); returns the rows written."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)
    now = now.astimezone(UTC)
    conversations: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for user in population.end_users:
        for customer in user.customers:
            for _ in range(rng.randint(2, 6)):
                opened_at = now - timedelta(seconds=rng.uniform(0, HISTORY.total_seconds()))
                conversation = _conversation(rng, user, customer, len(conversations) + 1, now)
                conversation["opened_at"] = opened_at
                conversation["closed_at"] = _closed(rng, opened_at, now)
                conversations.append(conversation)
                messages.extend(_messages(rng, user, conversation))
    with connector.store.writing() as session:
        for table in reversed(InboxBase.metadata.sorted_tables):
            session.execute(table.delete())
        if conversations:
            session.execute(insert(Conversation), conversations)
        if messages:
            session.execute(insert(Message), messages)
    return len(conversations) + len(messages)


def _conversation(
    rng: random.Random, user: EndUser, customer: str, number: int, now: datetime
) -> dict[str, Any]:
    channel = rng.choices(list(CHANNELS), weights=list(CHANNELS.values()))[0]
    phone = user.phone if channel in ("whatsapp", "sms") else None
    email = user.email.lower() if channel in ("email", "livechat") else None
    channel_id = user.channel_ids.get(channel)
    named = channel != "sms" and rng.random() < 0.8
    return {
        "id": number,
        "customer_account": customer,
        "channel": channel,
        "contact_phone": phone,
        "contact_email": email,
        "contact_channel_id": channel_id,
        "contact_name": (user.name if channel == "email" else user.first_name) if named else None,
        "agent_id": f"{customer}-agent-{rng.randint(1, 6):02d}",
        "anonymised_at": None,
    }


def _closed(rng: random.Random, opened_at: datetime, now: datetime) -> datetime | None:
    closed_at = opened_at + timedelta(hours=rng.uniform(0.1, 72))
    return closed_at if closed_at < now and rng.random() < 0.9 else None


def _messages(
    rng: random.Random, user: EndUser, conversation: dict[str, Any]
) -> list[dict[str, Any]]:
    sent_at = conversation["opened_at"]
    rows = []
    for turn in range(rng.randint(2, 7)):
        author = "end_user" if turn % 2 == 0 else "agent"
        line = rng.choice(END_USER_LINES if author == "end_user" else AGENT_LINES)
        rows.append(
            _message(conversation["id"], sent_at, author, line.format(first=user.first_name))
        )
        sent_at += timedelta(minutes=rng.uniform(0.5, 30))
    if rng.random() < 0.3:
        rows.append(
            _message(conversation["id"], sent_at, "agent", rng.choice(NOTES), internal=True)
        )
    return rows


def _message(
    conversation_id: int, sent_at: datetime, author: str, body: str, *, internal: bool = False
) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "sent_at": sent_at,
        "author": author,
        "internal": internal,
        "body": body,
    }
