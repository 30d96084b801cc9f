"""The embedded stack under ``var/``: Temporal dev server, local SMTP server, codec and
download servers, the officer service and the worker, started, stopped and listed. Each runs
as a detached process (``services.processes``); what each runs is in ``services.stack_services``.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dsr.files import owner_only, private_folder
from dsr.settings import Settings
from services.mail_server import free_port
from services.processes import (
    Service,
    StackError,
    forget,
    is_ours,
    live_pid_or_clean,
    log_path,
    port_in_use,
    read_pid_files,
    run_dir,
    start,
    terminate,
    wait_for_port,
)
from services.stack_services import define_services, service_port

__all__ = [
    "ServiceStatus",
    "StackError",
    "StackStatus",
    "down",
    "port_in_use",
    "settings_on_free_ports",
    "status",
    "stop",
    "up",
    "wait_for_port",
]

SERVICE_NAMES = ("temporal", "mail", "codec", "downloads", "officers", "worker")


class ServiceStatus(BaseModel):
    name: str
    running: bool
    pid: int | None = None
    port: int | None = None
    log: Path
    note: str = ""


class StackStatus(BaseModel):
    services: list[ServiceStatus]
    web_ui_url: str

    def service(self, name: str) -> ServiceStatus:
        return next(s for s in self.services if s.name == name)

    @property
    def all_running(self) -> bool:
        return all(s.running for s in self.services)

    def describe(self) -> str:
        lines = [
            f"{s.name:<9} {s.note or ('running' if s.running else 'stopped'):<24}"
            f" pid {s.pid or '-':<8} port {s.port or '-':<6} log {s.log}"
            for s in self.services
        ]
        return "\n".join([*lines, f"Temporal Web UI: {self.web_ui_url}"])



def settings_on_free_ports(data_dir: Path, **overrides: Any) -> Settings:
    """A stack of its own under ``data_dir``, beside any other on this machine, every port
    picked free: the stacks the tests and benchmarks start."""
    return Settings(
        data_dir=data_dir,
        temporal_address=f"127.0.0.1:{free_port()}",
        temporal_ui_port=free_port(),
        smtp_port=free_port(),
        codec_port=free_port(),
        download_port=free_port(),
        **_officer_service_on(free_port()),
        **overrides,
    )


def _officer_service_on(port: int) -> dict[str, Any]:
    return {"officer_service_port": port, "officer_service_url": f"http://127.0.0.1:{port}"}


def up(settings: Settings, worker_command: list[str]) -> StackStatus:
    """Start whatever is not running yet; an empty ``worker_command`` starts no worker.

    What the stack and its services write is readable by its owner only (``dsr.files``):
    ``var/`` and the mail folder, made before, are tightened too."""
    services = define_services(settings, worker_command)
    with owner_only(), _lock(settings):
        private_folder(settings.data_dir)
        private_folder(settings.mail_dir)
        pids = {service.name: live_pid_or_clean(settings, service.name) for service in services}
        _check_ports_free([service for service in services if pids[service.name] is None])
        statuses = [_ensure_running(settings, service, pids[service.name]) for service in services]
    started = {status.name for status in statuses}
    statuses += [_status(settings, name) for name in SERVICE_NAMES if name not in started]
    return _stack_status(settings, sorted(statuses, key=lambda s: SERVICE_NAMES.index(s.name)))


def down(settings: Settings) -> StackStatus:
    """Stop every service, the worker first: SIGTERM, then SIGKILL after ``STOP_SECONDS``."""
    with _lock(settings):
        statuses = [_stop(settings, name) for name in reversed(SERVICE_NAMES)]
    return _stack_status(settings, list(reversed(statuses)))


def stop(settings: Settings, name: str) -> ServiceStatus:
    """Stop one service (``up`` starts it again), as an outage or a maintenance would."""
    if name not in SERVICE_NAMES:
        raise StackError(f"no service {name!r}: the services are {', '.join(SERVICE_NAMES)}")
    with _lock(settings):
        return _stop(settings, name)


def status(settings: Settings) -> StackStatus:
    """What runs now; changes nothing."""
    return _stack_status(settings, [_status(settings, name) for name in SERVICE_NAMES])


def _stack_status(settings: Settings, services: list[ServiceStatus]) -> StackStatus:
    return StackStatus(
        services=services, web_ui_url=f"http://localhost:{settings.temporal_ui_port}"
    )


def _ensure_running(settings: Settings, service: Service, pid: int | None) -> ServiceStatus:
    note = "already running"
    if pid is None:
        pid = start(settings, service)
        note = "started"
        _await_ready(settings, service, pid)
    if service.configure is not None:
        service.configure(settings)
    return _service_status(settings, service.name, pid, note)


def _check_ports_free(services: list[Service]) -> None:
    for service in services:
        for port in service.ports:
            if port_in_use(port.host, port.number):
                raise StackError(
                    f"port {port.number} ({port.label}) is already in use by another process; "
                    f"stop it or set {port.setting}"
                )


@contextlib.contextmanager
def _lock(settings: Settings) -> Iterator[None]:
    """One ``up`` or ``down`` at a time on a data folder."""
    path = run_dir(settings) / "stack.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _await_ready(settings: Settings, service: Service, pid: int) -> None:
    try:
        service.ready(settings, service, pid)
    except StackError:
        _stop(settings, service.name)
        raise


def _stop(settings: Settings, name: str) -> ServiceStatus:
    recorded = read_pid_files(settings, name)
    if recorded is None:
        return _service_status(settings, name, None, "not running")
    pid, argv = recorded
    if not is_ours(pid, argv):
        forget(settings, name)
        return _service_status(settings, name, None, "stale pid file removed")
    terminate(pid)
    forget(settings, name)
    return _service_status(settings, name, None, "stopped")


def _status(settings: Settings, name: str) -> ServiceStatus:
    recorded = read_pid_files(settings, name)
    if recorded is None:
        return _service_status(settings, name, None, "not running")
    pid, argv = recorded
    if pid > 0 and is_ours(pid, argv):
        return _service_status(settings, name, pid, "running")
    return _service_status(settings, name, None, "not running (stale pid file)")


def _service_status(settings: Settings, name: str, pid: int | None, note: str) -> ServiceStatus:
    return ServiceStatus(
        name=name,
        running=pid is not None,
        pid=pid,
        port=service_port(settings, name),
        log=log_path(settings, name),
        note=note,
    )
