"""Demo data for the SMS store: the messages customers exchanged with the fictional people,
the demo end user's on both sides of the six-month hold."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.seeds.customer_account import Company

SMS_HISTORY = timedelta(days=425)  # about 14 months
# The demo end user's messages for the controller customer, in days before now: five newer
# and five older than six months, none near the boundary.
DEMO_MESSAGE_DAYS = (12, 40, 75, 110, 150, 215, 260, 300, 350, 400)

OUTBOUND = {
    "delivery": (
        "Your parcel {ref} arrives today between {hour}:00 and {hour2}:00.",
        "We missed you! Parcel {ref} is at your pickup point until {day}.",
        "Parcel {ref} has been delivered. Rate your delivery: 1-5",
    ),
    "bank": (
        "Your Kestrel verification code is {code}. Never share this code.",
        "A card payment of EUR {amount} was declined. Call us if this wasn't you.",
        "Your new card ending {last4} is on its way.",
    ),
    "clinic": (
        "Reminder: your check-up is on {day} at {hour}:30. Reply C to confirm.",
        "Hi {first}, your hygienist appointment has moved to {day} at {hour}:00.",
    ),
    "travel": (
        "Flight BF{flight} to {city} is on time. Boarding from gate {gate} at {hour}:{minute}.",
        "Check-in is open for BF{flight}. Your booking reference is {ref}.",
        "BF{flight} is delayed by 45 minutes. We're sorry for the wait.",
    ),
    "food": (
        "Your order {ref} is being prepared and will arrive in about 25 minutes.",
        "Hi {first}, your rider is nearby with order {ref}.",
        "Weekend deal: 20% off with code LOTUS{code}. Reply STOP to opt out.",
    ),
    "retail": (
        "Thanks for your order {ref}! We'll text you when it ships.",
        "Sale starts {day}: up to 40% off. Reply STOP to unsubscribe.",
    ),
    "rides": (
        "Your driver is arriving in 3 minutes in a grey hatchback ({ref}).",
        "Your code to start the ride is {code}.",
    ),
    "utility": (
        "Your meter reading is due by {day}. Reply with the reading.",
        "Your monthly statement of GBP {amount} is ready in the app.",
    ),
}
INBOUND = ("C", "YES", "STOP", "Thanks!", "Can I move it to Friday?", "OK", "Where is my order?")

COUNTRY_WEIGHTS = {"NL": 30, "DE": 22, "GB": 18, "US": 14, "SG": 8, "FR": 4, "BR": 2, "AU": 2}
OPERATORS = {
    "NL": ("KPN", "Odido", "VodafoneZiggo"),
    "DE": ("Telekom", "Vodafone DE", "O2 DE"),
    "GB": ("EE", "Vodafone UK", "O2 UK", "Three"),
    "US": ("Verizon", "AT&T", "T-Mobile US"),
    "SG": ("Singtel", "StarHub", "M1"),
    "FR": ("Orange", "SFR", "Bouygues"),
    "BR": ("Vivo", "Claro"),
    "AU": ("Telstra", "Optus"),
}
MOBILE_COUNTRY_CODE = {
    "NL": 204, "DE": 262, "GB": 234, "US": 310, "SG": 525, "FR": 208, "BR": 724, "AU": 505,
}  # fmt: skip
CITIES = {
    "NL": ((52.370, 4.895), (51.924, 4.478), (52.091, 5.122)),
    "DE": ((52.520, 13.405), (48.137, 11.576), (53.551, 9.994)),
    "GB": ((51.507, -0.128), (53.481, -2.242), (55.953, -3.188)),
    "US": ((40.713, -74.006), (37.775, -122.419), (41.878, -87.630)),
    "SG": ((1.352, 103.820),),
    "FR": ((48.857, 2.352), (45.764, 4.836)),
    "BR": ((-23.551, -46.633),),
    "AU": ((-33.869, 151.209), (-37.814, 144.963)),
}
DESTINATIONS = ("Amsterdam", "Berlin", "London", "Singapore", "New York", "Lisbon")


@dataclass(frozen=True)
class EndUser:
    """An end user of the shared population, as the SMS traffic needs them."""

    phone: str
    country: str
    first_name: str


def end_user_messages(
    rng: random.Random,
    end_users: list[EndUser],
    companies: tuple[Company, ...],
    account_ids: list[str],
    now: datetime,
) -> list[dict[str, Any]]:
    rows = []
    for end_user in end_users[1:]:  # the first is the demo end user
        held_by = rng.sample(range(len(companies)), k=rng.choices((1, 2, 3), (55, 30, 15))[0])
        for index in held_by:
            for _ in range(rng.randint(2, 30)):
                sent_at = now - timedelta(seconds=rng.uniform(0, SMS_HISTORY.total_seconds()))
                rows.append(_message(rng, end_user, companies[index], account_ids[index], sent_at))
    return rows


def demo_end_user_messages(
    rng: random.Random,
    end_user: EndUser,
    companies: tuple[Company, ...],
    account_ids: list[str],
    now: datetime,
) -> list[dict[str, Any]]:
    """The demo end user: messages for the controller (customer 1) on both sides of the
    six-month hold, and messages for customers 3 and 5 that must stay untouched."""
    rows = []
    for days in DEMO_MESSAGE_DAYS:
        sent_at = now - timedelta(days=days, hours=rng.uniform(0, 12))
        rows.append(_message(rng, end_user, companies[0], account_ids[0], sent_at))
    for index in (2, min(4, len(companies) - 1)):
        for _ in range(6):
            sent_at = now - timedelta(seconds=rng.uniform(0, SMS_HISTORY.total_seconds()))
            rows.append(_message(rng, end_user, companies[index], account_ids[index], sent_at))
    return rows


def _message(
    rng: random.Random, end_user: EndUser, company: Company, account_id: str, sent_at: datetime
) -> dict[str, Any]:
    inbound = rng.random() < 0.15
    country = end_user.country if rng.random() < 0.9 else rng.choice(list(COUNTRY_WEIGHTS))
    content = rng.choice(INBOUND) if inbound else _outbound_text(rng, company, end_user)
    stored_content = content if rng.random() < 0.9 else None
    return {
        "customer_account": account_id,
        "end_user_phone": end_user.phone,
        "direction": "inbound" if inbound else "outbound",
        "sender_id": company.sender_id,
        "content": stored_content,
        "sent_at": sent_at,
        "status": "received" if inbound else _status(rng),
        "operator": rng.choice(OPERATORS[country]),
        "route": f"{country.lower()}-{rng.choice(('direct', 'hub'))}-{rng.randint(1, 4):02d}",
        "segments": max(1, math.ceil(len(content) / 153)),
        "country_ended": country,
        **_location(rng, country),
        "anonymised_at": None,
    }


def _outbound_text(rng: random.Random, company: Company, end_user: EndUser) -> str:
    template = rng.choice(OUTBOUND[company.kind])
    hour = rng.randint(8, 18)
    return template.format(
        ref=f"{rng.choice('ABCDEFGHJK')}{rng.randint(100000, 999999)}",
        code=f"{rng.randint(0, 999999):06d}",
        hour=hour,
        hour2=hour + 2,
        minute=f"{rng.choice((0, 15, 30, 45)):02d}",
        day=rng.choice(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")),
        amount=f"{rng.uniform(5, 900):.2f}",
        last4=f"{rng.randint(0, 9999):04d}",
        first=end_user.first_name,
        flight=rng.randint(100, 999),
        city=rng.choice(DESTINATIONS),
        gate=f"{rng.choice('ABCDE')}{rng.randint(1, 40)}",
    )


def _status(rng: random.Random) -> str:
    return rng.choices(("delivered", "failed", "expired", "rejected"), (90, 5, 4, 1))[0]


def _location(rng: random.Random, country: str) -> dict[str, Any]:
    located = rng.random() < 0.35
    if not located:
        return {"cell_id": None, "latitude": None, "longitude": None}
    latitude, longitude = rng.choice(CITIES[country])
    return {
        "cell_id": f"{MOBILE_COUNTRY_CODE[country]}-{rng.randint(1, 20):02d}-"
        f"{rng.randint(1000, 9999)}-{rng.randint(10000, 99999)}",
        "latitude": round(latitude + rng.uniform(-0.05, 0.05), 5),
        "longitude": round(longitude + rng.uniform(-0.05, 0.05), 5),
    }
