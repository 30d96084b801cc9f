"""The README's example, a loyalty-points system connected by a dataset file
(``connectors/datasets/loyalty.yaml``), run as an affiliate would: its own database (its table
created here, as its application would), its own worker on its own task queue, built from the
registry entry naming the file, and reached by the orchestrator through the registry alone.
On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import worker
from connectors.builtin import build_connector
from dsr.sealedblobs import sealed_blob_store
from dsr.settings import Settings
from dsr.status import Status
from services.mail_server import MailFolder
from tests.conftest import start_harness
from tests.test_requests_e2e import emailed_code, send_code
from workflows.models import ConnectorStatus

EMAIL = "maya.okafor@example.net"
LOYALTY_FILE = "connectors/datasets/loyalty.yaml"  # relative to the project root
SCHEMA = [
    """CREATE TABLE points (
        id INTEGER PRIMARY KEY,
        customer_account VARCHAR(64) NOT NULL,
        email VARCHAR(254) NOT NULL,
        points INTEGER NOT NULL,
        earned_at TIMESTAMP NOT NULL)""",
    # The email as the lookup matches it (lower case, no surrounding spaces): the dataset
    # check asks for an index on that expression.
    "CREATE INDEX ix_points_subject ON points (customer_account, lower(trim(email)))",
    "CREATE INDEX ix_points_earned ON points (earned_at)",
]


def loyalty_entry(queue: str, **fields: Any) -> dict[str, Any]:
    """The example's registry entry (``connectors/datasets/loyalty.yaml`` shows it)."""
    return {"name": "loyalty", "affiliate": "parent", "products": ["Loyalty"],
            "task_queue": queue, "role": "end_user", "identity_types": ["email"],
            "operations": ["discover", "erase"], "categories": ["loyalty_points"],
            "dataset": LOYALTY_FILE, **fields}


@pytest.fixture
def loyalty_database(app_database_url: str,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The loyalty system's database with its table (no rows yet), named to the worker by
    ``DSR_CONNECTOR_LOYALTY_URL``."""
    engine = create_engine(app_database_url)
    with engine.begin() as connection:
        for statement in SCHEMA:
            connection.exec_driver_sql(statement)
    monkeypatch.setenv("DSR_CONNECTOR_LOYALTY_URL", app_database_url)
    yield engine
    engine.dispose()


def seed(engine: Engine, controller: str, other: str) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, as the TIMESTAMP column keeps it
    rows = [(controller, 10, now - timedelta(days=days)) for days in (5, 90, 400)]
    rows.append((other, 7, now))
    with engine.begin() as connection:
        for number, (customer, points, earned_at) in enumerate(rows, 1):
            connection.execute(text(
                "INSERT INTO points VALUES (:id, :customer, :email, :points, :earned_at)"),
                {"id": number, "customer": customer, "email": EMAIL, "points": points,
                 "earned_at": earned_at})


async def test_an_affiliate_connector_is_reached_through_the_registry(
        dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder],
        loyalty_database: Engine) -> None:
    queue = f"dsr-connector-loyalty-{tmp_path.name[-8:]}"
    built: list[Any] = []

    def loyalty_worker(client: Client, settings: Settings) -> Worker:
        """Served as ``python worker.py --connector loyalty`` serves it."""
        connector = build_connector("loyalty", settings, sealed_blob_store(settings))
        built.append(connector)
        return worker.connector_worker(client, settings, "loyalty", executor, connector)

    with ThreadPoolExecutor(max_workers=4) as executor:
        async with AsyncExitStack() as stack:
            h = await start_harness(dev_env, tmp_path, mail[0], mail[1], stack,
                                    extra_connectors=[loyalty_entry(queue)],
                                    extra_workers=[loyalty_worker])
            controller = h.facts.controller_account_id
            other = h.facts.end_user_other_customers[0]
            seed(loyalty_database, controller, other)

            request = h.controller_erasure(identities=[
                {"type": "phone", "value": h.facts.end_user_phone},
                {"type": "email", "value": EMAIL}])
            handle = await h.submit(request)
            await send_code(h, request.request_id, await emailed_code(h, request.request_id))
            outcome = await handle.result()
    for connector in built:
        connector.store.engine.dispose()

    assert type(built[0]).__name__ == "LoyaltyDatasetConnector"
    assert built[0].activities == ("discover", "erase")  # as its registry entry lists them
    assert outcome.status is Status.ANSWERED
    states = {c.connector: c for c in outcome.connectors}
    assert states["loyalty"].status is ConnectorStatus.DONE
    assert states["loyalty"].records == {"erased loyalty_points": 3, "retained loyalty_points": 0}
    with loyalty_database.connect() as connection:
        left = connection.execute(text("SELECT customer_account FROM points")).scalars().all()
    assert left == [other], "only the instructing customer's records are erased"
