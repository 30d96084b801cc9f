"""Demo data for the Voice store: the calls of the fictional people and some recordings."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from connectors.seeds.numbers import local_number
from connectors.seeds.population import EndUser, Population
from connectors.voice import VoiceConnector
from connectors.voice_store import LOCATION_COLUMNS, Call, Recording, VoiceBase

HISTORY = timedelta(days=425)  # about 14 months
CALL_STATUS = {"completed": 80, "no-answer": 10, "busy": 6, "failed": 4}
COUNTRIES = ("NL", "DE", "GB", "US", "SG", "FR", "BR", "AU")
CITIES = {
    "NL": (52.370, 4.895), "DE": (52.520, 13.405), "GB": (51.507, -0.128),
    "US": (40.713, -74.006), "SG": (1.352, 103.820), "FR": (48.857, 2.352),
    "BR": (-23.551, -46.633), "AU": (-33.869, 151.209),
}  # fmt: skip
MOBILE_COUNTRY_CODE = {
    "NL": 204, "DE": 262, "GB": 234, "US": 310, "SG": 525, "FR": 208, "BR": 724, "AU": 505,
}  # fmt: skip
TRANSCRIPTS = (
    "Agent: Thanks for calling, how can I help? Caller: I'd like to move my appointment.",
    "Agent: Your parcel is on its way. Caller: Great, can you leave it with a neighbour?",
    "Caller: Hi {first} here, I was charged twice this month. Agent: Let me check that.",
    "Agent: This call is recorded for quality. Caller: Fine. I want to cancel my order.",
)


def seed(
    connector: VoiceConnector, population: Population, *, now: datetime, seed: int = 42
) -> int:
    """Clear the store and fill it with the calls of ``population`` over the ~14 months before
    ``now`` (each end user with each customer holding them); returns the rows written."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)
    now = now.astimezone(UTC)
    calls: list[dict[str, Any]] = []
    recordings: list[dict[str, Any]] = []
    for user in population.end_users:
        for customer in user.customers:
            index = population.customers.index(customer)
            for _ in range(rng.randint(3, 14)):
                started_at = now - timedelta(seconds=rng.uniform(0, HISTORY.total_seconds()))
                call = _call(rng, user, customer, index, started_at)
                if call["status"] == "completed" and rng.random() < 0.3:
                    recording = _recording(rng, user, call, len(recordings) + 1)
                    call["recording_ref"] = recording["ref"]
                    recordings.append(recording)
                calls.append(call)
    calls.sort(key=lambda row: row["started_at"])
    with connector.store.writing() as session:
        for table in reversed(VoiceBase.metadata.sorted_tables):
            session.execute(table.delete())
        if recordings:
            session.execute(insert(Recording), recordings)
        if calls:
            session.execute(insert(Call), calls)
    return len(calls) + len(recordings)


def _call(
    rng: random.Random, user: EndUser, customer: str, index: int, started_at: datetime
) -> dict[str, Any]:
    status = rng.choices(list(CALL_STATUS), weights=list(CALL_STATUS.values()))[0]
    country = user.country if rng.random() < 0.9 else rng.choice(COUNTRIES)
    return {
        "customer_account": customer,
        "end_user_phone": user.phone,
        "direction": rng.choice(("inbound", "outbound")),
        "caller_id": local_number(index, rng.randrange(3)),
        "started_at": started_at,
        "duration_s": rng.randint(15, 1200) if status == "completed" else 0,
        "status": status,
        "route": f"{country.lower()}-voice-{rng.choice(('direct', 'sip'))}-{rng.randint(1, 4):02d}",
        "country_ended": country,
        **_location(rng, country),
        "recording_ref": None,
        "anonymised_at": None,
    }


def _recording(
    rng: random.Random, user: EndUser, call: dict[str, Any], number: int
) -> dict[str, Any]:
    ref = f"REC-{number:06d}"
    transcript = rng.choice(TRANSCRIPTS).format(first=user.first_name)
    return {
        "ref": ref,
        "customer_account": call["customer_account"],
        "audio_path": f"recordings/{call['customer_account']}/{ref}.wav",
        "size_bytes": call["duration_s"] * 16_000,
        "transcript": transcript if rng.random() < 0.6 else None,
        "recorded_at": call["started_at"],
    }


def _location(rng: random.Random, country: str) -> dict[str, Any]:
    if rng.random() >= 0.4:
        return dict.fromkeys(LOCATION_COLUMNS)
    latitude, longitude = CITIES[country]
    return {
        "cell_id": f"{MOBILE_COUNTRY_CODE[country]}-{rng.randint(1, 20):02d}-"
        f"{rng.randint(1000, 9999)}-{rng.randint(10000, 99999)}",
        "latitude": round(latitude + rng.uniform(-0.05, 0.05), 5),
        "longitude": round(longitude + rng.uniform(-0.05, 0.05), 5),
    }
