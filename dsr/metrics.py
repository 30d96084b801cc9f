"""Prometheus metrics: the Temporal SDK's own (task slots, latencies, failures) and the
product's, on ``DSR_METRICS_PORT`` of each worker process.

The product's gauges come from the request register and Temporal's visibility every
``DSR_METRICS_REFRESH_SECONDS``, in the orchestrator worker:

* ``dsr_requests_open``, ``dsr_requests_overdue``, ``dsr_requests_due_this_week``, by
  ``jurisdiction``;
* ``dsr_connectors_missing``, by ``connector``: running requests waiting on a connector that
  keeps failing or whose worker is down (``DsrConnectorsAttention``).

The workflows count ``dsr_connector_failures`` (by ``connector``) as they happen. Labels are
jurisdictions and connector names: never personal data.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from dsr import search_attributes as sa
from dsr.logging import get_logger
from dsr.models import Jurisdiction
from dsr.register import RequestRecord
from dsr.settings import Settings

log = get_logger()


def runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting Prometheus metrics, or None when metrics are off."""
    if settings.metrics_port is None:
        return None
    address = bind_address(settings.metrics_bind_host, settings.metrics_port)
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


def bind_address(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets: in Kubernetes the host is the pod's IP
    (``status.podIP``), which is an IPv6 address on an IPv6 cluster."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def request_counts(engine: Engine, now: datetime) -> dict[str, dict[str, int]]:
    """Open, overdue and due-this-week requests per jurisdiction, from the register."""
    week = now + timedelta(days=7)
    open_ = RequestRecord.closed_at.is_(None)
    queries = {
        "open": select(RequestRecord.jurisdiction, func.count()).where(open_),
        "overdue": select(RequestRecord.jurisdiction, func.count()).where(
            open_, RequestRecord.overdue.is_(True)),
        "due_this_week": select(RequestRecord.jurisdiction, func.count()).where(
            open_, RequestRecord.due_at >= now, RequestRecord.due_at < week),
    }
    with Session(engine) as session:
        return {name: {j.value: 0 for j in Jurisdiction}
                | dict(session.execute(query.group_by(RequestRecord.jurisdiction)).tuples().all())
                for name, query in queries.items()}


async def missing_connectors(client: Client, connectors: list[str]) -> dict[str, int]:
    """Running requests waiting on each connector."""
    counts = {}
    for name in connectors:
        query = (f"{sa.CONNECTORS_ATTENTION.name} = '{name}' "
                 "AND ExecutionStatus = 'Running'")
        counts[name] = (await client.count_workflows(query)).count
    return counts


async def publish(runtime_: Runtime, engine: Engine, client: Client, connectors: list[str],
                  every: float, stop: asyncio.Event) -> None:
    """Refresh the product's gauges until ``stop`` is set."""
    meter = runtime_.metric_meter
    gauges = {name: meter.create_gauge(f"dsr_requests_{name}", f"requests {name}")
              for name in ("open", "overdue", "due_this_week")}
    missing = meter.create_gauge("dsr_connectors_missing", "requests waiting on a connector")
    while not stop.is_set():
        try:
            counts = await asyncio.to_thread(request_counts, engine, datetime.now(UTC))
            for name, per_jurisdiction in counts.items():
                for jurisdiction, count in per_jurisdiction.items():
                    gauges[name].set(count, {"jurisdiction": jurisdiction})
            for connector, count in (await missing_connectors(client, connectors)).items():
                missing.set(count, {"connector": connector})
        except Exception as error:  # metrics never stop a worker
            log.warning("metrics refresh failed", error=type(error).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
