"""Demo data for the Conversations store: chat threads of the fictional people on WhatsApp,
Viber, Messenger and LINE."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from connectors.conversations import ConversationsConnector
from connectors.conversations_store import (
    PHONE_CHANNELS,
    ChatMessage,
    ConversationsBase,
    Thread,
    phone_channel_user,
)
from connectors.seeds.population import EndUser, Population

HISTORY = timedelta(days=425)  # about 14 months
# channel -> how a thread names the end user, from the population's identities
SEEDED_CHANNELS = ("whatsapp", "viber", "messenger", "line")
OUTBOUND = (
    "Hi {first}, thanks for getting in touch! How can we help?",
    "Your order {ref} has shipped and arrives tomorrow.",
    "Your appointment is confirmed for {day} at {hour}:00.",
    "We have refunded order {ref}. It can take 3-5 days to show.",
    "Your boarding pass for flight BF{flight} is attached.",
)
INBOUND = (
    "Hi, where is my order {ref}?",
    "Can I change my delivery address?",
    "Thanks!",
    "Can I move my appointment to {day}?",
    "Is the store open on {day}?",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def seed(
    connector: ConversationsConnector, population: Population, *, now: datetime, seed: int = 42
) -> int:
    """Clear the store and fill it with the chats of ``population`` over the ~14 months before
    ``now``: one thread per end user, customer and channel, each active for a while. Returns
    the number of messages. The same population, ``now`` and ``seed`` give the same rows."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)
    now = now.astimezone(UTC)
    threads: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for user in population.end_users:
        for customer in user.customers:
            for channel in rng.sample(SEEDED_CHANNELS, k=rng.choice((1, 1, 2, 3))):
                thread_id = len(threads) + 1
                chat = _chat(rng, user, customer, channel, thread_id, now)
                threads.append(_thread(user, customer, channel, thread_id, chat))
                messages.extend(chat)
    with connector.store.writing() as session:
        for table in reversed(ConversationsBase.metadata.sorted_tables):
            session.execute(table.delete())
        session.execute(insert(Thread), threads)
        session.execute(insert(ChatMessage), sorted(messages, key=lambda m: m["sent_at"]))
    return len(messages)


def _thread(
    user: EndUser, customer: str, channel: str, thread_id: int, chat: list[dict[str, Any]]
) -> dict[str, Any]:
    by_phone = channel in PHONE_CHANNELS
    channel_user = (
        phone_channel_user(channel, user.phone) if by_phone else user.channel_ids[channel]
    )
    return {
        "id": thread_id,
        "customer_account": customer,
        "channel": channel,
        "channel_user": channel_user,
        "phone": user.phone if by_phone else None,
        "profile_name": user.first_name if channel != "line" else None,
        "started_at": min(m["sent_at"] for m in chat),
        "last_message_at": max(m["sent_at"] for m in chat),
        "anonymised_at": None,
    }


def _chat(
    rng: random.Random,
    user: EndUser,
    customer: str,
    channel: str,
    thread_id: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """The thread's messages, inside a window of activity somewhere in the history."""
    start = now - timedelta(seconds=rng.uniform(7 * 86400, HISTORY.total_seconds()))
    window = min((now - start).total_seconds(), rng.uniform(20, 360) * 86400)
    return [
        _message(rng, user, customer, channel, thread_id, start + timedelta(seconds=offset))
        for offset in sorted(rng.uniform(0, window) for _ in range(rng.randint(2, 18)))
    ]


def _message(
    rng: random.Random,
    user: EndUser,
    customer: str,
    channel: str,
    thread_id: int,
    sent_at: datetime,
) -> dict[str, Any]:
    inbound = rng.random() < 0.4
    status = "received" if inbound else rng.choices(("read", "delivered", "failed"), (70, 25, 5))[0]
    delivered_at = sent_at + timedelta(seconds=rng.randint(1, 30))
    image = rng.random() < 0.1
    return {
        "thread_id": thread_id,
        "customer_account": customer,
        "channel": channel,
        "direction": "inbound" if inbound else "outbound",
        "content_type": "image" if image else "text",
        "content": None if rng.random() < 0.1 else _text(rng, user, inbound, image),
        "sent_at": sent_at,
        "status": status,
        "delivered_at": delivered_at if status in ("read", "delivered", "received") else None,
        "read_at": delivered_at + timedelta(minutes=rng.randint(1, 600))
        if status == "read"
        else None,
        "platform_message_id": f"{channel}.{rng.getrandbits(96):024x}",
        "anonymised_at": None,
    }


def _text(rng: random.Random, user: EndUser, inbound: bool, image: bool) -> str:
    if image:
        return f"media/{rng.getrandbits(64):016x}.jpg"
    return rng.choice(INBOUND if inbound else OUTBOUND).format(
        first=user.first_name,
        ref=f"{rng.choice('ABCDEFGHJK')}{rng.randint(100000, 999999)}",
        day=rng.choice(WEEKDAYS),
        hour=rng.randint(8, 18),
        flight=rng.randint(100, 999),
    )
