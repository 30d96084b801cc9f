"""Connecting to Temporal with the product's data converter, and the daily Schedules: the
purge of proof past its retention and the retention sweep of the connectors."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from dsr.codec import PURGE_RUN_ID, SWEEP_RUN_ID
from dsr.converter import data_converter
from dsr.keyring import Keyring, load_keyring
from dsr.settings import Settings

SCHEDULE_ID = "dsr-confirmation-purge"
PURGE_WORKFLOW = "ConfirmationPurge"
PURGE_EVERY = timedelta(days=1)
SWEEP_SCHEDULE_ID = "dsr-retention-sweep"
SWEEP_WORKFLOW = "RetentionSweep"
SWEEP_EVERY = timedelta(days=1)


async def connect(
    settings: Settings, keyring: Keyring | None = None, runtime: Runtime | None = None
) -> Client:
    """A client with the product's converter: pydantic payloads encrypted with the payload
    keys (``keyring``, or loaded from the settings; a bad key raises ``KeyringError``), over
    TLS, mTLS or with an API key as the settings say."""
    api_key = settings.temporal_api_key
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(keyring or load_keyring(settings)),
        tls=tls_config(settings),
        api_key=api_key.get_secret_value() if api_key else None,
        runtime=runtime,
    )


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS to the cluster: the server CA and client certificate when given; the system's CAs
    for plain TLS or an API key (Temporal Cloud); none on the embedded stack."""
    ca, cert, key = settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_key
    if ca is None and cert is None:
        return settings.temporal_tls or settings.temporal_api_key is not None
    return TLSConfig(
        server_root_ca_cert=ca.read_bytes() if ca else None,
        client_cert=cert.read_bytes() if cert else None,
        client_private_key=key.read_bytes() if key else None,
    )


def purge_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            PURGE_WORKFLOW, id=PURGE_RUN_ID,
            task_queue=settings.task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=PURGE_EVERY)]),
    )


async def ensure_purge_schedule(client: Client, settings: Settings) -> bool:
    """Create the daily purge Schedule; True if created, False if it already existed."""
    return await _ensure_schedule(client, SCHEDULE_ID, purge_schedule(settings))


def sweep_schedule(settings: Settings) -> Schedule:
    """The daily retention sweep. One run at a time, and after an outage one catch-up run,
    not one per missed day (each sweep takes everything past its cutoffs anyway)."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SWEEP_WORKFLOW, id=SWEEP_RUN_ID, task_queue=settings.task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=SWEEP_EVERY)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=SWEEP_EVERY),
    )


async def ensure_sweep_schedule(client: Client, settings: Settings) -> bool:
    """Create the daily retention sweep Schedule; True if created, False if it existed."""
    return await _ensure_schedule(client, SWEEP_SCHEDULE_ID, sweep_schedule(settings))


async def _ensure_schedule(client: Client, schedule_id: str, schedule: Schedule) -> bool:
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        return False
    return True
