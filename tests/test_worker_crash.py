"""A connector worker killed in the middle of a call: the heartbeat timeout hands the call to
the restarted worker, the request completes, and the export holds every record once."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
import zipfile
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from connectors.builtin import BUILTIN
from connectors.kit.store import create_store_engine
from connectors.sms import Message
from dsr.sealedblobs import sealed_blob_store
from dsr.status import Status
from services.mail_server import MailFolder
from tests.conftest import ROOT, Harness, start_harness

EXTRA_MESSAGES = 60_000


def add_messages(h: Harness, count: int) -> None:
    """Enough of the subject's messages that exporting them takes a while."""
    engine = create_store_engine(h.settings.connector_database_url("sms"))
    start = h.facts.now - timedelta(days=30)
    rows = [{"customer_account": h.facts.controller_account_id,
             "end_user_phone": h.facts.end_user_phone, "direction": "outbound",
             "sender_id": "NORTHWIND", "content": f"Parcel {n} is on its way",
             "sent_at": start + timedelta(seconds=n), "status": "delivered", "segments": 1,
             "country_ended": "NL"} for n in range(count)]
    with engine.begin() as connection:
        connection.execute(insert(Message), rows)


async def start_sms_worker(h: Harness, env: WorkflowEnvironment) -> asyncio.subprocess.Process:
    settings = h.settings
    assert settings.hmac_key is not None and settings.payload_keys is not None
    variables = {
        "DSR_PAYLOAD_KEYS": settings.payload_keys.get_secret_value(),
        "DSR_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "DSR_DATA_DIR": str(settings.data_dir),
        "DSR_TASK_QUEUE": settings.task_queue,
        "DSR_CONNECTOR_REGISTRY": str(settings.connector_registry),
        "DSR_HMAC_KEY": settings.hmac_key.get_secret_value(),
        "DSR_SETTINGS_FILE": str(settings.data_dir / "none.env"),
        "DSR_LOG_FORMAT": "json",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "worker.py"), "--connector", "sms", cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("DSR_")}, **variables},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def wait_for_running_activity(client: Client, workflow_id: str, activity: str) -> None:
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(600):
        pending = (await handle.describe()).raw_description.pending_activities
        if any(p.activity_type.name == activity
               and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
               for p in pending):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{activity} never started")


async def test_a_connector_worker_killed_mid_export_is_replaced(
        dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    async with AsyncExitStack() as stack:
        h = await start_harness(dev_env, tmp_path, mail[0], mail[1], stack,
                                in_process=[name for name in BUILTIN if name != "sms"],
                                connector_heartbeat_seconds=2)
        add_messages(h, EXTRA_MESSAGES)
        first = await start_sms_worker(h, dev_env)
        request = h.request(
            rights=["access"], channel="api", last_login_at=None,
            identities=[{"type": "phone", "value": h.facts.end_user_phone}],
            requester={"kind": "controller", "email": h.facts.controller_registered_email,
                       "customer_account": h.facts.controller_account_id})
        handle = await h.submit(request)
        await wait_for_running_activity(h.client, handle.id, "sms.access")
        first.send_signal(signal.SIGKILL)
        await first.wait()
        second = await start_sms_worker(h, dev_env)
        try:
            outcome = await asyncio.wait_for(handle.result(), timeout=120)
        finally:
            second.terminate()
            await second.wait()

    assert outcome.status is Status.ANSWERED
    attempts = [event.activity_task_started_event_attributes.attempt
                async for event in handle.fetch_history_events()
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
    assert max(attempts) >= 2, "the killed call was retried"
    blobs = sealed_blob_store(h.settings)
    with blobs.open_reader(blobs.ref(f"packages/{request.request_id}.zip")) as package:
        exported = json.loads(zipfile.ZipFile(io.BytesIO(package.read())).read("sms.json"))
    expected = EXTRA_MESSAGES + h.facts.end_user_messages_older + h.facts.end_user_messages_newer
    messages = [r["message_id"] for r in exported if r["category"] == "phone_number"]
    assert len(messages) == len(set(messages)) == expected, "every message exported once"
