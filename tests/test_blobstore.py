"""Blob stores: the local folder and an S3-compatible bucket (a real moto server on
127.0.0.1) pass the same contract; exports and packages work against S3; store URLs parse."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.package import PackageActivities, PackageInput
from connectors.kit.exports import export_jsonl, export_key
from dsr.blobstore import (
    BlobStore,
    LocalBlobStore,
    S3BlobStore,
    open_blob_store,
    parse_blob_url,
)
from dsr.connector_contract import AccessResult
from dsr.models import Language
from dsr.sealedblobs import SealedBlobStore, sealed_blob_store
from dsr.settings import Settings
from tests.conftest import TEST_KEYRING

BUCKET = "dsr-blobs"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A real S3 API (moto server) in this process, on 127.0.0.1 only."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials, and no real AWS config file or profile to pick up."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture(scope="module")
def admin_client(moto_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def s3_store(moto_endpoint: str, admin_client: Any, aws_env: None,
             request: pytest.FixtureRequest) -> S3BlobStore:
    """A fresh bucket per test, built from a URL the way settings build it."""
    bucket = f"{BUCKET}-{uuid.uuid4().hex[:12]}"
    admin_client.create_bucket(Bucket=bucket,
                         CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    store = open_blob_store(f"s3://{bucket}/tenant/dsr?endpoint_url={moto_endpoint}"
                            "&region=eu-west-1")
    assert isinstance(store, S3BlobStore)
    return store


@pytest.fixture(params=["local", "s3", "sealed"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    if request.param == "sealed":
        return SealedBlobStore(LocalBlobStore(tmp_path / "blobs"), TEST_KEYRING)
    s3: S3BlobStore = request.getfixturevalue("s3_store")
    return s3


def _objects(store: BlobStore) -> list[str]:
    """Every object or file the store holds, partial ones included."""
    if isinstance(store, SealedBlobStore):
        return _objects(store.inner)
    if isinstance(store, LocalBlobStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, S3BlobStore)
    listing = store.client.list_objects_v2(Bucket=store.bucket)
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket)
    return sorted([o["Key"] for o in listing.get("Contents", [])]
                  + [f"upload:{u['Key']}" for u in uploads.get("Uploads", [])])


# --- the contract ------------------------------------------------------------------------


def test_round_trip(store: BlobStore) -> None:
    with store.open_writer("exports/REQ-1/sms.jsonl") as sink:
        sink.write(b'{"a": 1}\n')
        sink.write(b'{"b": "\xc3\xa9"}\n')
    ref = store.ref("exports/REQ-1/sms.jsonl")
    assert ref == "blob:exports/REQ-1/sms.jsonl"
    with store.open_reader(ref) as source:
        assert list(source) == [b'{"a": 1}\n', b'{"b": "\xc3\xa9"}\n']
    with store.open_reader(ref) as source:
        assert source.read() == b'{"a": 1}\n{"b": "\xc3\xa9"}\n'


def test_overwrite_replaces(store: BlobStore) -> None:
    for body in (b"first\n", b"second\n"):
        with store.open_writer("k/blob") as sink:
            sink.write(body)
    with store.open_reader(store.ref("k/blob")) as source:
        assert source.read() == b"second\n"


def test_aborted_write_leaves_nothing(store: BlobStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.open_writer("exports/x.jsonl") as sink:
        sink.write(b"half a record")
        raise RuntimeError("boom")
    assert not store.exists(store.ref("exports/x.jsonl"))
    assert _objects(store) == []


def test_aborted_overwrite_keeps_previous(store: BlobStore) -> None:
    with store.open_writer("k/blob") as sink:
        sink.write(b"good\n")
    with pytest.raises(RuntimeError), store.open_writer("k/blob") as sink:
        sink.write(b"bad")
        raise RuntimeError("boom")
    with store.open_reader(store.ref("k/blob")) as source:
        assert source.read() == b"good\n"


def test_exists_and_delete(store: BlobStore) -> None:
    ref = store.ref("a/b.bin")
    assert not store.exists(ref)
    with store.open_writer("a/b.bin") as sink:
        sink.write(b"\x00\x01")
    assert store.exists(ref)
    store.delete(ref)
    assert not store.exists(ref)
    store.delete(ref)  # deleting a missing blob is fine
    assert _objects(store) == []


def test_empty_blob(store: BlobStore) -> None:
    with store.open_writer("empty"):
        pass
    assert store.exists(store.ref("empty"))
    with store.open_reader(store.ref("empty")) as source:
        assert source.read() == b""


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../b", "a//b", "a/./b", "a\\b",
                                 "a/", "nul\x00"])
def test_bad_keys_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.ref(key)
    with pytest.raises(ValueError), store.open_writer(key):
        pass
    for method in (store.exists, store.delete, store.open_reader):
        with pytest.raises(ValueError):
            method("blob:" + key)
    assert _objects(store) == []


def test_refs_must_be_blob_refs(store: BlobStore) -> None:
    with pytest.raises(ValueError, match="blob reference"):
        store.exists("exports/x.jsonl")
    with pytest.raises(ValueError, match="blob reference"):
        store.open_reader("s3://bucket/exports/x.jsonl")


def test_large_blob_streams_line_by_line(store: BlobStore) -> None:
    """100,000 records (about 11 MB: a multipart upload on S3) written and read back a line
    at a time."""
    count = 100_000
    with store.open_writer("exports/REQ-big/sms.jsonl") as sink:
        for number in range(count):
            sink.write(json.dumps({"n": number, "category": "traffic_data",
                                   "pad": "x" * 80}).encode() + b"\n")
    seen = 0
    with store.open_reader(store.ref("exports/REQ-big/sms.jsonl")) as source:
        for number, line in enumerate(source):
            assert line.endswith(b"\n")
            assert json.loads(line)["n"] == number
            seen += 1
    assert seen == count


def test_s3_objects_live_under_the_prefix(s3_store: S3BlobStore) -> None:
    with s3_store.open_writer("exports/REQ-1/sms.jsonl") as sink:
        sink.write(b"{}\n")
    assert _objects(s3_store) == ["tenant/dsr/exports/REQ-1/sms.jsonl"]


def test_s3_large_write_uses_multipart(s3_store: S3BlobStore) -> None:
    body = b"y" * (9 * 1024 * 1024)
    with s3_store.open_writer("big.bin") as sink:
        sink.write(body)
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key="tenant/dsr/big.bin")
    assert head["ContentLength"] == len(body)
    assert "-" in head["ETag"]  # a multipart ETag is "<md5>-<parts>"


# --- exports and packages against S3 --------------------------------------------------------


def _write_export(store: BlobStore, request_id: str) -> AccessResult:
    chunks = [
        [{"category": "phone_number", "phone_number": "+31600000001"}],
        [{"category": "traffic_data", "to": "+31600000002", "status": "delivered"},
         {"category": "traffic_data", "to": "+31600000003", "status": "failed"}],
    ]
    export = export_jsonl(store, export_key(request_id, "sms"), chunks)
    return AccessResult(
        connector="sms", records=export.records, blob_ref=export.blob_ref, sha256=export.sha256
    )


def test_export_jsonl_into_s3(s3_store: S3BlobStore) -> None:
    result = _write_export(s3_store, "REQ-7")
    assert result.records == {"phone_number": 1, "traffic_data": 2}
    assert result.blob_ref == "blob:exports/REQ-7/sms.jsonl"
    with s3_store.open_reader(result.blob_ref) as source:
        raw = source.read()
    assert hashlib.sha256(raw).hexdigest() == result.sha256
    lines = [json.loads(line) for line in raw.splitlines()]
    assert [line["category"] for line in lines] == ["phone_number", "traffic_data",
                                                     "traffic_data"]


def test_empty_export_leaves_no_object_in_s3(s3_store: S3BlobStore) -> None:
    export = export_jsonl(s3_store, export_key("REQ-8", "sms"), [[], []])
    assert (export.records, export.blob_ref, export.sha256) == ({}, None, None)
    assert _objects(s3_store) == []


def test_package_assembled_into_s3(s3_store: S3BlobStore, tmp_path: Path) -> None:
    export = _write_export(s3_store, "REQ-9")
    activities = PackageActivities(Settings(data_dir=tmp_path), s3_store)
    package = ActivityEnvironment().run(
        activities.assemble,
        PackageInput(request_id="REQ-9", language=Language.EN,
                     exports=[export, AccessResult(connector="voice")]),
    )
    assert package.blob_ref == "blob:packages/REQ-9.zip"
    assert package.records == 3
    with s3_store.open_reader(package.blob_ref) as source:
        data = source.read()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == [
            "manifest.json", "sms.json", "sms/phone_number.csv", "sms/traffic_data.csv"]
        records = json.loads(archive.read("sms.json"))
        manifest = json.loads(archive.read("manifest.json"))
        traffic = archive.read("sms/traffic_data.csv").decode().splitlines()
    assert len(records) == 3
    assert manifest["request_id"] == "REQ-9"
    assert [p["connector"] for p in manifest["products"]] == ["sms"]
    assert traffic[0] == "category,to,status"
    assert len(traffic) == 3
    assert manifest["products"][0]["sha256"] == export.sha256


def test_package_refuses_an_export_changed_since_it_was_written(
    store: BlobStore, tmp_path: Path
) -> None:
    export = _write_export(store, "REQ-10")
    assert export.blob_ref is not None
    with store.open_writer("exports/REQ-10/sms.jsonl") as file:
        file.write(b'{"category": "phone_number", "phone_number": "+31600000009"}\n')
    activities = PackageActivities(Settings(data_dir=tmp_path), store)
    with pytest.raises(ApplicationError, match="does not match the checksum") as raised:
        ActivityEnvironment().run(
            activities.assemble,
            PackageInput(request_id="REQ-10", language=Language.EN, exports=[export]),
        )
    assert raised.value.non_retryable
    assert "+316" not in str(raised.value)


# --- URLs and settings --------------------------------------------------------------------


def test_plain_path_and_file_url_are_local(tmp_path: Path) -> None:
    for url in (str(tmp_path / "a"), f"file://{tmp_path / 'b'}", f"file://localhost{tmp_path}/c"):
        store = open_blob_store(url)
        assert isinstance(store, LocalBlobStore)
    assert parse_blob_url("var/blobs").path == Path("var/blobs")
    assert parse_blob_url("file:///srv/dsr%20blobs").path == Path("/srv/dsr blobs")


def test_s3_url_parses(aws_env: None) -> None:
    parsed = parse_blob_url(
        "s3://my-bucket/a/b/?endpoint_url=http://127.0.0.1:9000&region=eu-west-1")
    assert (parsed.scheme, parsed.bucket, parsed.prefix) == ("s3", "my-bucket", "a/b")
    assert (parsed.endpoint_url, parsed.region) == ("http://127.0.0.1:9000", "eu-west-1")
    bare = parse_blob_url("s3://my-bucket")
    assert (bare.bucket, bare.prefix, bare.endpoint_url, bare.region) == ("my-bucket", "", None,
                                                                          None)
    store = open_blob_store("s3://my-bucket/p?region=eu-central-1")  # no network until used
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == ("my-bucket", "p")
    assert store.client.meta.region_name == "eu-central-1"
    assert store.object_key("blob:exports/x") == "p/exports/x"


@pytest.mark.parametrize(("url", "problem"), [
    ("", "empty"),
    ("ftp://host/blobs", "unknown scheme 'ftp'"),
    ("gs://bucket/prefix", "unknown scheme 'gs'"),
    ("s3:bucket", "unknown form"),
    ("s3://", "missing the bucket"),
    ("s3:///prefix", "missing the bucket"),
    ("s3://bucket/a/../b", "prefix"),
    ("s3://bucket/p?colour=blue", "unknown parameter 'colour'"),
    ("s3://bucket/p?region=", "'region' is empty"),
    ("s3://bucket/p?region=a&region=b", "repeats"),
    ("s3://bucket/p?endpoint_url=ftp://x", "endpoint_url must be an http"),
    ("s3://bucket/p?addressing_style=sideways", "addressing_style"),
    ("file://otherhost/srv/blobs", "must be local"),
    ("file:relative", "unknown form"),
])
def test_bad_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        open_blob_store(url)


@pytest.mark.parametrize("url", [
    "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/prefix",
    "s3://AKIAEXAMPLE@bucket/prefix",
    "s3://bucket/p?endpoint_url=http://key:hunter2@127.0.0.1:9000",
])
def test_credentials_in_url_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="credentials") as raised:
        open_blob_store(url)
    assert "hunter2" not in str(raised.value) and "wJalrXUtnFEMI" not in str(raised.value)


def test_settings_blob_store(tmp_path: Path, moto_endpoint: str, aws_env: None) -> None:
    local = sealed_blob_store(Settings(data_dir=tmp_path))
    assert isinstance(local, SealedBlobStore) and isinstance(local.inner, LocalBlobStore)
    assert local.inner.root == tmp_path / "blobs"
    s3 = sealed_blob_store(Settings(data_dir=tmp_path,
                                    blob_url=f"s3://b/p?endpoint_url={moto_endpoint}"))
    assert isinstance(s3, SealedBlobStore) and isinstance(s3.inner, S3BlobStore)
    with pytest.raises(ValueError, match="credentials"):
        Settings(data_dir=tmp_path, blob_url="s3://k:secret@b/p")
