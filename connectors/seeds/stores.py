"""Every store seeded from the shared population filled at once (the SMS and customer-account
stores: ``connectors.seeds.demo``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from connectors.builtin import build_connector
from connectors.seeds import (
    cdp,
    conversations,
    email,
    flow_builder,
    inbox,
    marketing,
    numbers,
    push,
    video,
    voice,
    widget,
)
from connectors.seeds.population import Population
from dsr.sealedblobs import sealed_blob_store
from dsr.settings import Settings

# Stores seeded from the shared population (SMS and customer accounts: connectors.seeds.demo).
POPULATION_SEEDS: dict[str, Callable[..., int]] = {
    "voice": voice.seed,
    "numbers": numbers.seed,
    "inbox": inbox.seed,
    "flow_builder": flow_builder.seed,
    "email": email.seed,
    "video": video.seed,
    "widget": widget.seed,
    "push": push.seed,
    "conversations": conversations.seed,
    "cdp": cdp.seed,
    "marketing": marketing.seed,
}


def seed_population_stores(
    settings: Settings, population: Population, now: datetime, seed: int = 42
) -> dict[str, int]:
    """Fill every population-seeded store; rows written per connector."""
    blobs = sealed_blob_store(settings)
    written: dict[str, Any] = {}
    for name, fill in POPULATION_SEEDS.items():
        written[name] = fill(build_connector(name, settings, blobs), population, now=now,
                             seed=seed)
    return written
