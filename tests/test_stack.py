"""The embedded stack for real: dev server, SMTP server and a stand-in worker, on free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from dsr import search_attributes
from dsr.mailer import send_email
from dsr.settings import Settings
from services import stack
from services.mail_server import MailFolder
from services.stack import StackError, StackStatus

RETENTION_DAYS = 7
# A stand-in worker that shows the environment it was given, then idles.
WORKER = [
    sys.executable,
    "-c",
    "import os, time; print(os.environ['DSR_LOG_FORMAT'], flush=True); time.sleep(600)",
]


def make_settings(data_dir: Path) -> Settings:
    return stack.settings_on_free_ports(data_dir, temporal_retention_days=RETENTION_DAYS)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def first_up(settings: Settings) -> Iterator[StackStatus]:
    try:
        yield stack.up(settings, WORKER)
    finally:
        stack.down(settings)


@pytest.fixture
def running(settings: Settings, first_up: StackStatus) -> StackStatus:
    """The stack, running (started again if a test stopped it)."""
    return stack.up(settings, WORKER)


def notes(status: StackStatus) -> list[str]:
    return [service.note for service in status.services]


def test_up_starts_every_service(settings: Settings, first_up: StackStatus) -> None:
    assert notes(first_up) == ["started"] * 6
    assert first_up.all_running
    assert first_up.web_ui_url == f"http://localhost:{settings.temporal_ui_port}"
    for service in first_up.services:
        assert (settings.data_dir / "run" / f"{service.name}.pid").read_text().strip() == str(
            service.pid
        )
        assert service.log == settings.data_dir / "log" / f"{service.name}.log"
    assert stack.wait_for_port("127.0.0.1", settings.temporal_ui_port, timeout=5)
    assert stack.status(settings).all_running


async def test_dev_server_has_search_attributes_and_retention(
    settings: Settings, running: StackStatus
) -> None:
    client = await Client.connect(settings.temporal_address)
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=settings.temporal_namespace)
    )
    registered = dict(listed.custom_attributes)
    for key in search_attributes.ALL:
        assert registered.get(key.name) == int(key.indexed_value_type), key.name
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=settings.temporal_namespace)
    )
    retention = described.config.workflow_execution_retention_ttl.ToTimedelta()
    assert retention.days == RETENTION_DAYS


async def test_mail_service_stores_messages(settings: Settings, running: StackStatus) -> None:
    await send_email(
        settings, to="a@example.org", subject="确认", body="你好", message_id="<stack@dsr.local>"
    )
    message = await MailFolder(settings.mail_dir).wait_for(
        header=("Message-ID", "<stack@dsr.local>"), timeout=5
    )
    assert message.get_content() == "你好\n"


def test_worker_runs_with_json_logging(settings: Settings, running: StackStatus) -> None:
    log = running.service("worker").log
    deadline = time.monotonic() + 5
    while "json" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().strip().endswith("json")
    cmdline = json.loads((settings.data_dir / "run" / "worker.cmdline").read_text())
    assert cmdline == WORKER


async def test_the_web_ui_decodes_through_the_codec_server_for_officers_only(
    settings: Settings, running: StackStatus
) -> None:
    """The dev server's UI is pointed at the stack's codec server, which refuses anyone
    without a session and any other origin."""
    cmdline = json.loads((settings.data_dir / "run" / "temporal.cmdline").read_text())
    endpoint = cmdline[cmdline.index("--ui-codec-endpoint") + 1]
    assert endpoint == f"http://localhost:{settings.codec_port}"
    body: dict[str, list[object]] = {"payloads": []}
    async with aiohttp.ClientSession() as http:
        ui = {"Origin": f"http://localhost:{settings.temporal_ui_port}"}
        async with http.post(f"{endpoint}/decode", json=body, headers=ui) as response:
            assert response.status == 401, "the stack's own UI, but no session"
        other = {"Origin": "http://evil.example"}
        async with http.post(f"{endpoint}/decode", json=body, headers=other) as response:
            assert response.status == 403


def test_up_again_says_already_running(settings: Settings, running: StackStatus) -> None:
    again = stack.up(settings, WORKER)
    assert notes(again) == ["already running"] * 6
    assert [s.pid for s in again.services] == [s.pid for s in running.services]


def test_dead_worker_is_restarted_and_a_failing_one_reported(
    settings: Settings, running: StackStatus
) -> None:
    old_pid = running.service("worker").pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while stack.status(settings).service("worker").running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.status(settings).service("worker").note == "not running (stale pid file)"

    with pytest.raises(StackError, match=r"(?s)worker \(pid \d+\) exited.*worker\.log.*bad config"):
        stack.up(settings, [sys.executable, "-c", "raise SystemExit('bad config')"])
    assert not (settings.data_dir / "run" / "worker.pid").exists()

    again = stack.up(settings, WORKER)
    assert notes(again) == ["already running"] * 5 + ["started"]
    assert again.service("worker").pid != old_pid
    assert again.service("temporal").pid == running.service("temporal").pid


def test_down_stops_everything(settings: Settings, running: StackStatus) -> None:
    stopped = stack.down(settings)
    assert notes(stopped) == ["stopped"] * 6
    assert not any(s.running for s in stack.status(settings).services)
    assert list((settings.data_dir / "run").glob("*.pid")) == []
    for service in running.services:
        assert not Path(f"/proc/{service.pid}").exists(), service.name  # exited and reaped
    assert not stack.port_in_use("127.0.0.1", settings.smtp_port)
    assert not stack.port_in_use("127.0.0.1", settings.temporal_ui_port)

    assert notes(stack.down(settings)) == ["not running"] * 6


@pytest.mark.parametrize(
    ("port_of", "label", "setting"),
    [
        (lambda s: int(s.temporal_address.rpartition(":")[2]), "Temporal frontend",
         "DSR_TEMPORAL_ADDRESS"),
        (lambda s: s.temporal_ui_port, "Temporal Web UI", "DSR_TEMPORAL_UI_PORT"),
        (lambda s: s.smtp_port, "SMTP server", "DSR_SMTP_PORT"),
    ],
)  # fmt: skip
def test_port_held_by_another_process_starts_nothing(
    tmp_path: Path, port_of: Callable[[Settings], int], label: str, setting: str
) -> None:
    settings = make_settings(tmp_path)
    port = port_of(settings)
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", port))
        foreign.listen()
        with pytest.raises(StackError, match=rf"port {port} \({label}\).*{setting}"):
            stack.up(settings, WORKER)
    assert list((tmp_path / "run").glob("*.pid")) == []
    assert not stack.port_in_use("127.0.0.1", int(settings.temporal_address.split(":")[1]))
    assert not any(s.running for s in stack.status(settings).services)


def test_stale_pid_files_are_cleaned_and_never_signalled(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    # One pid that no process has, one recycled by a process that is not ours (this one).
    for name, pid in [("temporal", unused_pid()), ("mail", os.getpid()),
                      ("codec", unused_pid()), ("downloads", unused_pid()),
                      ("officers", unused_pid())]:
        (run / f"{name}.pid").write_text(f"{pid}\n")
        (run / f"{name}.cmdline").write_text(json.dumps(["temporal", "server", "start-dev"]))
    (run / "worker.pid").write_text("not a pid\n")

    assert notes(stack.status(settings)) == ["not running (stale pid file)"] * 6
    assert notes(stack.down(settings)) == ["stale pid file removed"] * 6
    assert sorted(p.name for p in run.iterdir()) == ["stack.lock"]


def unused_pid() -> int:
    pid = 4_000_000
    while Path(f"/proc/{pid}").exists():
        pid -= 1
    return pid
