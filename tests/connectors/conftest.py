"""The connector tests' fixtures: the stores seeded once per session, a fresh copy for each
test, and small sweep chunks."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.kit import cutoffs
from tests.connectors.stores import Seeded, Stores, seed_template


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """Seed once; each test gets its own copy of the store files."""
    return seed_template(tmp_path_factory.mktemp("seeded"))


@pytest.fixture
def stores(seeded: Seeded, tmp_path: Path) -> Stores:
    return Stores(seeded, tmp_path)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutoffs, "SWEEP_CHUNK_ROWS", 41)  # several chunks on the seeded stores
