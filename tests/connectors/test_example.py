"""The README's example connector, run as an affiliate would: its own store, its own worker
on its own task queue, reached by the orchestrator through the registry alone."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from connectors.example import LoyaltyConnector, PointsEntry
from connectors.kit.activities import connector_activities
from dsr.blobstore import LocalBlobStore
from dsr.status import Status
from services.mail_server import MailFolder
from tests.conftest import start_harness
from tests.test_requests_e2e import emailed_code, send_code
from workflows.models import ConnectorStatus

EMAIL = "maya.okafor@example.net"


def seed(connector: LoyaltyConnector, controller: str, other: str) -> None:
    now = datetime.now(UTC)
    with connector.store.writing() as session:
        session.add_all([
            PointsEntry(customer_account=controller, email=EMAIL, points=10,
                        earned_at=now - timedelta(days=days))
            for days in (5, 90, 400)
        ] + [PointsEntry(customer_account=other, email=EMAIL, points=7, earned_at=now)])


async def test_an_affiliate_connector_is_reached_through_the_registry(
        dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    queue = f"dsr-connector-loyalty-{tmp_path.name[-8:]}"
    entry = {"name": "loyalty", "affiliate": "parent", "products": ["Loyalty"],
             "task_queue": queue, "role": "end_user", "identity_types": ["email"],
             "operations": ["discover", "erase"]}
    loyalty = LoyaltyConnector(f"sqlite:///{tmp_path / 'loyalty.db'}",
                               LocalBlobStore(tmp_path / "blobs"), b"affiliate-secret")
    async with AsyncExitStack() as stack:
        h = await start_harness(dev_env, tmp_path, mail[0], mail[1], stack,
                                extra_connectors=[entry])
        controller, other = h.facts.controller_account_id, h.facts.end_user_other_customers[0]
        seed(loyalty, controller, other)
        await stack.enter_async_context(Worker(
            h.client, task_queue=queue, activities=connector_activities(loyalty)))

        request = h.controller_erasure(identities=[
            {"type": "phone", "value": h.facts.end_user_phone},
            {"type": "email", "value": EMAIL}])
        handle = await h.submit(request)
        await send_code(h, request.request_id, await emailed_code(h, request.request_id))
        outcome = await handle.result()

    assert outcome.status is Status.ANSWERED
    states = {c.connector: c for c in outcome.connectors}
    assert states["loyalty"].status is ConnectorStatus.DONE
    assert states["loyalty"].records == {"erased loyalty_points": 3, "retained loyalty_points": 0}
    with Session(loyalty.store.engine) as session:
        left = session.scalars(select(PointsEntry.customer_account)).all()
    assert left == [other], "only the instructing customer's records are erased"
