"""The stack's services as detached processes: started in sessions of their own, known by
``var/run/<name>.pid`` and ``<name>.cmdline``, logging to ``var/log/<name>.log``. A pid counts
as ours only while that process runs the recorded command, so a recycled pid is never
mistaken for (or killed as) one of ours."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsr.files import OWNER_ONLY_UMASK
from dsr.settings import Settings

STOP_SECONDS = 10.0
KILL_SECONDS = 5.0
POLL_SECONDS = 0.05


class StackError(Exception):
    """The stack cannot be started or stopped as asked; the message says what to do."""


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


# Ports -------------------------------------------------------------------------------------


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts connections on, or holds, ``host:port``."""
    if accepts_connections(host, port):
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
    while not accepts_connections(host, port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def accepts_connections(host: str, port: int) -> bool:
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


# Processes ---------------------------------------------------------------------------------

_children: dict[int, subprocess.Popen[bytes]] = {}


def start(settings: Settings, service: Service) -> int:
    log = log_path(settings, service.name)
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


def terminate(pid: int) -> None:
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


def is_ours(pid: int, argv: list[str]) -> bool:
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


# Pid files and logs ------------------------------------------------------------------------


def run_dir(settings: Settings) -> Path:
    return settings.data_dir / "run"


def _pid_path(settings: Settings, name: str) -> Path:
    return run_dir(settings) / f"{name}.pid"


def _cmdline_path(settings: Settings, name: str) -> Path:
    return run_dir(settings) / f"{name}.cmdline"


def log_path(settings: Settings, name: str) -> Path:
    return settings.data_dir / "log" / f"{name}.log"


def _record(settings: Settings, name: str, pid: int, argv: list[str]) -> None:
    _write_atomically(_cmdline_path(settings, name), json.dumps(argv) + "\n")
    _write_atomically(_pid_path(settings, name), f"{pid}\n")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def read_pid_files(settings: Settings, name: str) -> tuple[int, list[str]] | None:
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


def forget(settings: Settings, name: str) -> None:
    _pid_path(settings, name).unlink(missing_ok=True)
    _cmdline_path(settings, name).unlink(missing_ok=True)


def live_pid_or_clean(settings: Settings, name: str) -> int | None:
    """The running service's pid; a pid file of a process that is gone is removed."""
    recorded = read_pid_files(settings, name)
    if recorded is None:
        return None
    pid, argv = recorded
    if pid > 0 and is_ours(pid, argv):
        return pid
    forget(settings, name)
    return None


def log_tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines(keepends=True)[-lines:]
    except OSError:
        return []
