"""The README's example, a loyalty-points system connected by a dataset file
(``connectors/datasets/loyalty.yaml``), run as an affiliate would: its own database (its table
created here, as its application would), its own worker on its own task queue, built from the
registry entry naming the file, and reached by the orchestrator through the registry alone.
On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, create_engine, text
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import worker
from connectors.builtin import build_connector
from dsr.models import Identity, IdentityType, RightsRequest
from dsr.sealedblobs import sealed_blob_store
from dsr.settings import Settings
from dsr.status import Status
from services.mail_server import MailFolder
from tests.conftest import Harness, legal_confirmed_policy, start_harness
from tests.test_requests_e2e import answer_of, download, emailed_code, send_code
from workflows.models import ConnectorStatus

EMAIL = "maya.okafor@example.net"
LOYALTY_FILE = "connectors/datasets/loyalty.yaml"  # relative to the project root
CONFIRMED = {"status": "confirmed", "confirmed_by": "legal.test", "confirmed_on": "2026-12-07",
             "source": "the loyalty programme's terms"}
# Every operation the dataset connector can do for it (the file's comment lists them).
OPERATIONS = ["discover", "access", "erase", "rectify", "restrict", "locate", "sweep"]
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
            "operations": OPERATIONS, "categories": ["loyalty_points"],
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


def policy_describing_loyalty(folder: Path) -> Path:
    """The policy folder, its catalogue describing the loyalty points as Legal would: what an
    access answer tells about them (a worker refuses a category the catalogue lacks)."""
    policy = folder / "policy"
    shutil.copytree(legal_confirmed_policy(), policy)
    catalogue = yaml.safe_load((policy / "catalogue.yaml").read_text(encoding="utf-8"))
    catalogue["connectors"]["loyalty"] = {"categories": {"loyalty_points": {
        "name": {"en": "Loyalty points (the points you earned with the customer, and when)"},
        "purposes": [{"en": "Running the customer's loyalty programme, under the Terms."}],
        "legal_basis": {"en": "We process this data as a processor on behalf of the customer "
                              "running the programme (the controller)."},
        "recipients": ["hosting_providers"],
        "retention": {"en": "For the duration of our contract with the customer."},
        "source": {"en": "Provided by the customer running the programme."},
        "automated_decisions": {"kind": "none", "provenance": CONFIRMED},
        "provenance": CONFIRMED}}}
    (policy / "catalogue.yaml").write_text(yaml.safe_dump(catalogue, allow_unicode=True),
                                           encoding="utf-8")
    return policy


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
                                    policy_dir=policy_describing_loyalty(tmp_path),
                                    extra_workers=[loyalty_worker])
            controller = h.facts.controller_account_id
            other = h.facts.end_user_other_customers[0]
            seed(loyalty_database, controller, other)

            identities = [{"type": "phone", "value": h.facts.end_user_phone},
                          {"type": "email", "value": EMAIL}]
            exported = await access(h, identities)
            restricted = await run(h, h.controller_erasure(
                identities=identities, rights=["restriction"]))
            erased = await run(h, h.controller_erasure(identities=identities))
    for connector in built:
        connector.store.engine.dispose()

    assert type(built[0]).__name__ == "LoyaltyDatasetConnector"
    assert built[0].activities == tuple(OPERATIONS)  # as its registry entry lists them
    assert [record["record"]["points"] for record in exported] == [10, 10, 10]
    assert {record["category"] for record in exported} == {"loyalty_points"}
    assert restricted["loyalty"].status is ConnectorStatus.DONE
    assert built[0].is_restricted(Identity(type=IdentityType.EMAIL, value=EMAIL), controller)
    assert not built[0].is_restricted(Identity(type=IdentityType.EMAIL, value=EMAIL), other)
    assert erased["loyalty"].status is ConnectorStatus.DONE
    assert erased["loyalty"].records == {"erased loyalty_points": 3, "retained loyalty_points": 0}
    with loyalty_database.connect() as connection:
        left = connection.execute(text("SELECT customer_account FROM points")).scalars().all()
    assert left == [other], "only the instructing customer's records are erased"


async def run(h: Harness, request: RightsRequest) -> dict[str, Any]:
    """A controller's request, verified by the code emailed to it, answered: its connectors'
    states by name."""
    handle = await h.submit(request)
    await send_code(h, request.request_id, await emailed_code(h, request.request_id))
    outcome = await handle.result()
    assert outcome.status is Status.ANSWERED
    return {state.connector: state for state in outcome.connectors}


async def access(h: Harness, identities: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The loyalty records of the controller's access request, as its package holds them."""
    request = h.controller_erasure(identities=identities, rights=["access"])
    states = await run(h, request)
    assert states["loyalty"].status is ConnectorStatus.DONE
    answer = answer_of(h, request.request_id)
    link = re.search(r"^\s+(http://\S+/packages/\S+)$", answer, re.MULTILINE)
    assert link, "the answer links to the package"
    with zipfile.ZipFile(io.BytesIO(await download(h, link[1]))) as archive:
        return list(json.loads(archive.read("loyalty.json")))
