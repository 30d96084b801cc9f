"""Exports and packages encrypted at rest: nothing readable on disk, tampering detected,
rotated keys still read, a blob not sealed by the product never read."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.package import PackageActivities, PackageInput
from connectors.kit.exports import export_jsonl, export_key
from dsr.blobstore import LocalBlobStore
from dsr.codec import DecryptionError
from dsr.connector_contract import AccessResult
from dsr.keyring import Keyring, UnknownKeyError, new_key_entry
from dsr.models import Language
from dsr.sealedblobs import FRAME_BYTES, MAGIC, SealedBlobStore, UnsealedBlobError
from dsr.settings import Settings
from tests.conftest import TEST_KEYRING

PHONE = "+31612345678"
KEY = "exports/REQ-1/sms.jsonl"


def _records(count: int) -> list[dict[str, object]]:
    return [{"category": "traffic_data", "to": PHONE, "n": n, "body": "x" * 100}
            for n in range(count)]


def _sealed(tmp_path: Path, keyring: Keyring = TEST_KEYRING) -> SealedBlobStore:
    return SealedBlobStore(LocalBlobStore(tmp_path / "blobs"), keyring)


def _raw(store: SealedBlobStore, key: str = KEY) -> bytes:
    assert isinstance(store.inner, LocalBlobStore)
    return store.inner.path(store.ref(key)).read_bytes()


def _write_raw(store: SealedBlobStore, data: bytes, key: str = KEY) -> None:
    assert isinstance(store.inner, LocalBlobStore)
    store.inner.path(store.ref(key)).write_bytes(data)


def _export(store: SealedBlobStore, count: int) -> AccessResult:
    export = export_jsonl(store, KEY, [_records(count)])
    return AccessResult(connector="sms", records=export.records, blob_ref=export.blob_ref,
                        sha256=export.sha256)


def test_an_export_of_many_frames_reads_back_line_by_line_and_is_unreadable_on_disk(
    tmp_path: Path,
) -> None:
    store = _sealed(tmp_path)
    export = _export(store, 3000)  # about 400 KB: several frames
    raw = _raw(store)
    assert raw.startswith(MAGIC) and len(raw) > 3 * FRAME_BYTES
    assert PHONE.encode() not in raw and b"traffic_data" not in raw
    with store.open_reader(store.ref(KEY)) as source:
        lines = [json.loads(line) for line in source]
    assert lines == json.loads(json.dumps(_records(3000)))
    assert export.records == {"traffic_data": 3000}


def test_a_package_is_sealed_and_opens_as_a_zip(tmp_path: Path) -> None:
    store = _sealed(tmp_path)
    export = _export(store, 5)
    package = ActivityEnvironment().run(
        PackageActivities(Settings(data_dir=tmp_path), store).assemble,
        PackageInput(request_id="REQ-1", language=Language.EN, exports=[export]),
    )
    assert PHONE.encode() not in _raw(store, "packages/REQ-1.zip")
    with store.open_reader(package.blob_ref) as source:
        archive = zipfile.ZipFile(io.BytesIO(source.read()))
    assert archive.testzip() is None
    assert len(json.loads(archive.read("sms.json"))) == 5


@pytest.mark.parametrize("damage", ["flip a byte", "cut the last frame", "drop a frame"])
def test_a_damaged_blob_does_not_read(tmp_path: Path, damage: str) -> None:
    store = _sealed(tmp_path)
    _export(store, 2000)
    raw = bytearray(_raw(store))
    if damage == "flip a byte":
        raw[len(raw) // 2] ^= 1
    elif damage == "cut the last frame":
        raw = raw[: len(raw) - 40]
    else:
        header = len(MAGIC) + 1 + raw[len(MAGIC)]
        frame = 1 + 4 + 12 + FRAME_BYTES + 16
        raw = raw[:header] + raw[header + frame:]
    _write_raw(store, bytes(raw))
    with pytest.raises(DecryptionError) as raised, store.open_reader(store.ref(KEY)) as source:
        source.read()
    assert PHONE not in str(raised.value)


def test_a_blob_moved_to_another_request_does_not_read(tmp_path: Path) -> None:
    store = _sealed(tmp_path)
    _export(store, 3)
    other = export_key("REQ-2", "sms")
    (tmp_path / "blobs" / other).parent.mkdir(parents=True)
    _write_raw(store, _raw(store), other)
    with pytest.raises(DecryptionError), store.open_reader(store.ref(other)) as source:
        source.read()


def test_a_blob_under_an_older_key_reads_after_rotation_and_an_unknown_key_is_named(
    tmp_path: Path,
) -> None:
    old = Keyring.from_spec(new_key_entry("k-2025"))
    _export(_sealed(tmp_path, old), 3)
    old_entry = f"k-2025:{base64.b64encode(old.key('k-2025')).decode()}"
    rotated = Keyring.from_spec(f"{old_entry},{new_key_entry('k-2026')}")
    with _sealed(tmp_path, rotated).open_reader(f"blob:{KEY}") as source:
        assert len(source.readlines()) == 3
    with pytest.raises(UnknownKeyError, match="k-2025"):
        _sealed(tmp_path, Keyring.from_spec(new_key_entry("k-2026"))).open_reader(f"blob:{KEY}")


@pytest.mark.parametrize("content", [b"", b"DSRSEAL", b'{"to": "+31612345678"}\n'])
def test_a_blob_not_sealed_by_the_product_is_refused(tmp_path: Path, content: bytes) -> None:
    plain = LocalBlobStore(tmp_path / "blobs")
    with plain.open_writer(KEY) as sink:
        sink.write(content)
    with pytest.raises(UnsealedBlobError, match="not sealed by the product") as raised:
        _sealed(tmp_path).open_reader(f"blob:{KEY}")
    assert isinstance(raised.value, DecryptionError) and PHONE not in str(raised.value)
