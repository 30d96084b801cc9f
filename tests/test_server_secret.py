"""The server secret: a guessable ``DSR_HMAC_KEY`` is refused at start, naming the setting and
never the value; on the embedded stack it is generated once, whole, however many processes
start at once on a fresh data folder."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from dsr.server_secret import embedded_secret
from dsr.settings import Settings, SettingsError, load_settings
from tests.conftest import ROOT

REFUSED = {
    "": "is empty",
    "short-but-random-9f3c": "is 21 characters",
    "change-me-please-before-production-use": "looks like a placeholder",
    "my-hmac-secret-for-the-dsr-orchestrator-2026": "looks like a placeholder",
    "ab" * 32: "repeats too few characters (2 distinct)",
}


@pytest.mark.parametrize("value", list(REFUSED), ids=list(REFUSED.values()))
def test_a_guessable_secret_is_refused_naming_the_setting_not_the_value(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str) -> None:
    monkeypatch.setenv("DSR_SETTINGS_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DSR_HMAC_KEY", value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    assert f"DSR_HMAC_KEY: {REFUSED[value]}" in message
    assert "secrets.token_hex(32)" in message
    assert not value or value not in message


def test_a_random_secret_is_taken() -> None:
    value = secrets.token_hex(32)
    assert Settings(hmac_key=value).secret == value.encode()
    with pytest.raises(ValidationError):
        Settings(hmac_key="change-me")


def test_a_worker_refuses_to_start_with_the_placeholder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSR_")} | {
        "DSR_HMAC_KEY": "change-me", "DSR_DATA_DIR": str(tmp_path),
        "DSR_SETTINGS_FILE": str(tmp_path / "absent.env")}
    done = subprocess.run([sys.executable, "worker.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "DSR_HMAC_KEY: is 9 characters" in done.stderr


def test_processes_starting_at_once_generate_one_whole_secret(tmp_path: Path) -> None:
    """Eight threads, released together by a barrier, each asking a fresh folder's secret;
    200 folders. Each thread opens the lock on its own, as separate processes do."""
    threads, trials = 8, 200
    for trial in range(trials):
        path = tmp_path / f"trial-{trial}" / "secrets" / "hmac.key"
        barrier = threading.Barrier(threads)
        seen: list[bytes] = []

        def ask(path: Path = path, barrier: threading.Barrier = barrier,
                seen: list[bytes] = seen) -> None:
            barrier.wait()
            seen.append(embedded_secret(path))

        workers = [threading.Thread(target=ask) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert len(seen) == threads and len(set(seen)) == 1, trial
        assert len(seen[0]) == 64
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file())[:1] == ["hmac.key"]


def test_three_real_processes_on_a_fresh_folder_agree(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from dsr.settings import Settings; "
            "print(Settings(data_dir=Path(sys.argv[1])).secret.decode())")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSR_")}
    for trial in range(3):
        folder = tmp_path / f"fresh-{trial}"
        env["DSR_SETTINGS_FILE"] = str(folder / "absent.env")
        started = [subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=ROOT,
                                    env=env, stdout=subprocess.PIPE, text=True)
                   for _ in range(3)]
        printed = {process.communicate(timeout=60)[0].strip() for process in started}
        assert len(printed) == 1 and len(printed.pop()) == 64, trial


def test_an_empty_secret_file_left_by_an_earlier_race_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "hmac.key"
    path.parent.mkdir()
    path.write_text("")
    with pytest.raises(ValueError, match=r"the server secret in .*hmac\.key is empty"):
        embedded_secret(path)
