"""Local files are their owner's only: the embedded stack, the processes it starts and the
officer's CLI create ``var/`` and everything under it (databases, keys, blobs, logs, the mail
folder with its codes and links) with no group or other permission, tighten folders made
before, and write ``--out`` files 0600 even over a file that was readable by others.

Run from a process whose umask is the usual 022, so that nothing passes by inheritance."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsr.assertions import Role
from dsr.files import open_private, owner_only, private_folder
from dsr.mailer import send_email
from dsr.package_links import package_key
from dsr.sealedblobs import sealed_blob_store
from dsr.settings import Settings
from dsr.signers import officer_signer
from services import stack
from services.mail_server import MailFolder, free_port
from tests.conftest import ROOT, TEST_KEY_SPEC, officer_service_thread, write_officer_files

REQUEST = "REQ-PRIVATE-1"
EXPORT = f"exports/{REQUEST}/sms.jsonl"
# A stand-in worker: writes an export through the sealed blob store, as the real one does.
WORKER = [sys.executable, "-c", (
    "import time; from dsr.settings import load_settings\n"
    "from dsr.sealedblobs import sealed_blob_store\n"
    "with sealed_blob_store(load_settings()).open_writer('" + EXPORT + "') as sink:\n"
    "    sink.write(b'{}')\n"
    "time.sleep(600)"
)]


@pytest.fixture
def usual_umask() -> Iterator[None]:
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def _wider_than_owner(root: Path) -> list[str]:
    """Every path under ``root`` (and itself) that its group or others may use."""
    paths = [root, *root.rglob("*")]
    return [f"{path.relative_to(root.parent)} {stat.filemode(path.lstat().st_mode)}"
            for path in paths if path.lstat().st_mode & 0o077 and not path.is_symlink()]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_stack_and_what_it_starts_write_for_their_owner_only(
    tmp_path: Path, usual_umask: None
) -> None:
    settings = stack.settings_on_free_ports(tmp_path / "var")
    for folder in (settings.data_dir, settings.mail_dir):  # made before, readable by all
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
    try:
        stack.up(settings, WORKER)
        assert os.umask(0o022) == 0o022, "the caller's umask is given back"
        await send_email(settings, to="a@example.org", subject="code", body="123456",
                         message_id="<private@dsr.local>")
        await MailFolder(settings.mail_dir).wait_for(
            header=("Message-ID", "<private@dsr.local>"), timeout=10)
        blob = settings.blob_dir / EXPORT
        deadline = time.monotonic() + 10
        while not blob.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert blob.exists(), "the stand-in worker wrote its export"
    finally:
        stack.down(settings)
    written = {path.name for path in settings.data_dir.rglob("*")}
    assert {"dsr.db", "temporal.db", "sms.jsonl", "worker.log", "hmac.key"} <= written
    assert any(name.endswith(".eml") for name in written)
    assert _mode(settings.data_dir) == 0o700 and _mode(settings.mail_dir) == 0o700
    assert _wider_than_owner(settings.data_dir) == []


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Settings]:
    """The officer service (no Temporal) over ``tmp_path/var``, and an officer's own folder
    ``tmp_path/home`` holding their key and credential."""
    port = free_port()
    settings = Settings(data_dir=tmp_path / "var", payload_keys=TEST_KEY_SPEC,
                        officer_service_port=port,
                        officer_service_url=f"http://127.0.0.1:{port}")
    with owner_only(), officer_service_thread(settings):
        signer = officer_signer(settings, "officer.tan", [Role.OFFICER])
        write_officer_files(signer, tmp_path / "home")
        yield settings


def test_the_cli_writes_for_its_owner_only_and_out_files_are_0600(
    tmp_path: Path, usual_umask: None, service: Settings
) -> None:
    with owner_only(), sealed_blob_store(service).open_writer(package_key(REQUEST)) as sink:
        sink.write(b"PK the package")
    out = tmp_path / "package.zip"
    out.write_bytes(b"an older file, readable by all")
    out.chmod(0o644)

    done = _cli(tmp_path / "home", "package", REQUEST, "--out", str(out),
                service=service.officer_service_url)

    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == b"PK the package" and _mode(out) == 0o600
    assert _wider_than_owner(tmp_path / "home") == []


def test_the_cli_refuses_a_package_not_sealed_by_the_product(
        tmp_path: Path, service: Settings) -> None:
    planted = service.data_dir / "blobs" / package_key(REQUEST)
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"PK planted in clear")
    out = tmp_path / "package.zip"

    refused = _cli(tmp_path / "home", "package", REQUEST, "--out", str(out),
                   service=service.officer_service_url)

    assert refused.returncode == 1
    assert "is refused: blob is not sealed by the product" in refused.stderr
    assert not out.exists()


def test_open_private_tightens_a_file_before_writing_into_it(
    tmp_path: Path, usual_umask: None
) -> None:
    existing = tmp_path / "proof.eml"
    existing.write_text("old and longer than what replaces it")
    existing.chmod(0o666)
    with open_private(existing) as target:
        assert _mode(existing) == 0o600 and existing.read_bytes() == b""
        target.write(b"new")
    assert existing.read_bytes() == b"new"
    fresh = tmp_path / "fresh.zip"
    with open_private(fresh) as target:
        target.write(b"x")
    assert _mode(fresh) == 0o600


def test_private_folder_makes_or_tightens_a_folder(tmp_path: Path, usual_umask: None) -> None:
    made = private_folder(tmp_path / "a" / "var")
    assert _mode(made) == 0o700
    old = tmp_path / "old"
    old.mkdir(mode=0o775)
    old.chmod(0o775)
    assert _mode(private_folder(old)) == 0o700


def _cli(data: Path, *args: str, service: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    """The CLI on ``data``; with ``service``, as an officer with no secret of the product."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DSR_")}
    env |= {"DSR_SETTINGS_FILE": str(data / "absent.env"), "DSR_DATA_DIR": str(data),
            "NO_COLOR": "1", "COLUMNS": "400"}
    env |= {"DSR_OFFICER_SERVICE_URL": service} if service else {
        "DSR_PAYLOAD_KEYS": TEST_KEY_SPEC}
    return subprocess.run([sys.executable, "starter.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
