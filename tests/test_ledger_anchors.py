"""The audit ledger's anchors, MAC'd and kept outside the database: in the local file and in
an S3 bucket with Object Lock (a real moto server). Someone with write access to the database
but not the key removes the newest entries and rewinds the head row, rewrites an anchored
entry, forges or garbles an anchor, or stops anchoring: ``ledger verify`` says so, naming
what is missing or wrong, and what to run."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import starter
from activities.anchor import AnchorActivities, AnchorInput
from dsr import ledger
from dsr.anchors import Anchor, AnchorStoreError, anchor_mac, sealed_anchor
from dsr.database import make_engine
from dsr.settings import Settings
from tests import test_blobstore

SECRET = b"ledger-anchor-test-key-6e1a9c3f7b2d8e4a5c0f"
KEY = ledger.ledger_key(SECRET)
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
# The blob store tests' real S3 API (a moto server on 127.0.0.1), its credentials and client.
moto_endpoint = test_blobstore.moto_endpoint
aws_env = test_blobstore.aws_env
admin_client = test_blobstore.admin_client


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, hmac_key=SECRET.decode())


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return make_engine(settings.app_database_url)


def append(engine: Engine, count: int, at: datetime = T0) -> None:
    with Session(engine) as session, session.begin():
        for n in range(count):
            ledger.append(session, "milestone", "orchestrator", at, f"R-{n}", {"n": n}, KEY)


def truncate(database: Path, to_seq: int) -> None:
    """What someone with database access but not the key does: delete the newest entries and
    rewind the head row to the last one kept."""
    with sqlite3.connect(database, isolation_level=None) as db:
        db.execute("DELETE FROM ledger WHERE seq > ?", (to_seq,))
        db.execute("UPDATE ledger_head SET seq = ?, mac = (SELECT mac FROM ledger WHERE seq = ?)",
                   (to_seq, to_seq))


def verify(engine: Engine, settings: Settings, now: datetime) -> ledger.VerifyResult:
    """What ``ledger verify`` runs in the officer service."""
    return ledger.verify_configured(engine, settings, now=now)


# The local file ----------------------------------------------------------------------------


def test_a_truncated_tail_with_its_head_rewound_names_the_missing_range(
        engine: Engine, settings: Settings) -> None:
    append(engine, 57)
    store = ledger.anchor_store(settings)
    ledger.anchor(engine, KEY, store, T0)
    assert verify(engine, settings, T0 + HOUR).ok
    truncate(settings.data_dir / "dsr.db", 40)
    result = verify(engine, settings, T0 + HOUR)
    assert (result.ok, result.broken_seq, result.missing_range) == (False, 41, [41, 57])
    assert result.problem == ("entries 41-57 are missing: the chain ends at 40 but an anchor "
                              "of 2026-03-01T09:00:00+00:00 records 57 (tail truncated)")
    assert result.describe().startswith("ledger broken at entry 41: entries 41-57 are missing")

    ledger.anchor(engine, KEY, store, T0 + HOUR)  # the hourly anchor goes on, at 40
    assert verify(engine, settings, T0 + 2 * HOUR).missing_range == [41, 57]
    append(engine, 20, T0 + 2 * HOUR)  # and the product too: 41-60, not the entries removed
    result = verify(engine, settings, T0 + 2 * HOUR)
    assert (result.ok, result.broken_seq, result.missing_range) == (False, 57, None)
    assert (result.problem or "").startswith(
        "does not match its anchor of 2026-03-01T09:00:00+00:00: an entry from seq 41 to 57 "
        "was rewritten")


def test_a_verifier_that_reads_other_anchors_than_the_worker_writes_says_so(
        tmp_path: Path) -> None:
    """Each pod its own data folder (as in a cluster before anchor stores): the worker anchors
    into its file, the officer service reads its own. The same truncation was "intact"."""
    database = f"sqlite:///{tmp_path / 'dsr.db'}"
    worker, service = (Settings(data_dir=tmp_path / name, database_url=database,
                                hmac_key=SECRET.decode()) for name in ("worker", "service"))
    engine = make_engine(database)
    append(engine, 57)
    AnchorActivities(engine, worker).anchor(AnchorInput(as_of=T0))
    truncate(tmp_path / "dsr.db", 40)
    assert verify(engine, service, T0 + HOUR).ok, "a young ledger needs no anchor yet"
    result = verify(engine, service, T0 + 27 * HOUR)
    assert not result.ok and result.broken_seq is None
    assert result.problem == (
        f"no anchor in {tmp_path / 'service' / 'ledger-anchors.jsonl'}, though the ledger has "
        "had entries since 2026-03-01T09:00:00+00:00: nothing anchors it, or anchors go where "
        "this service does not read (DSR_LEDGER_ANCHOR_URL must be the same for the workers "
        "and the officer service); check the Schedule dsr-ledger-anchor (python starter.py "
        "setup-cluster recreates it) and the orchestrator worker, or run python starter.py "
        "ledger anchor on the server")


def test_an_anchored_entry_whose_mac_was_changed_fails(
        engine: Engine, settings: Settings) -> None:
    append(engine, 10)
    ledger.anchor(engine, KEY, ledger.anchor_store(settings), T0)
    with sqlite3.connect(settings.data_dir / "dsr.db", isolation_level=None) as db:
        db.execute("UPDATE ledger SET mac = ? WHERE seq = 10", ("f" * 64,))  # nothing recomputed
        db.execute("UPDATE ledger_head SET mac = ?", ("f" * 64,))
    result = verify(engine, settings, T0 + HOUR)
    assert (result.ok, result.broken_seq) == (False, 10)
    assert result.problem == "its mac does not match its content (changed)"


def _forged(kind: str, genuine: Anchor) -> Anchor:
    if kind == "under another key":
        return sealed_anchor(ledger.ledger_key(b"a guess"), 100, "a" * 64, T0)
    if kind == "without a mac, as before anchors had one":
        return Anchor(seq=100, mac="a" * 64, at=T0)
    return genuine.model_copy(update={"seq": 100})  # a genuine anchor, its seq changed


@pytest.mark.parametrize("kind", ["under another key", "without a mac, as before anchors had "
                                  "one", "a genuine one changed"])
def test_a_forged_anchor_fails_naming_it(engine: Engine, settings: Settings, kind: str) -> None:
    append(engine, 8)
    genuine = ledger.anchor(engine, KEY, ledger.anchor_store(settings), T0)
    with ledger.anchors_path(settings).open("a") as file:
        file.write(_forged(kind, genuine).model_dump_json() + "\n")
    result = verify(engine, settings, T0 + HOUR)
    assert (result.ok, result.broken_seq, result.missing_range) == (False, None, None)
    assert (result.problem or "").startswith(
        "anchor ledger-anchors.jsonl line 2 has no valid MAC under the ledger key: forged, or "
        "written under another server secret")
    assert result.describe().startswith("ledger not verified: anchor ledger-anchors.jsonl "
                                        "line 2")


@pytest.mark.parametrize(("line", "why"), [
    ("not an anchor at all", "the record: Invalid JSON"),
    ('{"seq": 9, "at": "2026-03-01T09:00:00Z", "anchor_mac": ""}', "mac: Field required"),
    ('{"seq": 9, "mac": "x", "at": "2026-03-01T09:00:00Z"}', "mac: String should match"),
])
def test_a_malformed_anchor_line_fails_naming_it(
        engine: Engine, settings: Settings, line: str, why: str) -> None:
    append(engine, 8)
    ledger.anchor(engine, KEY, ledger.anchor_store(settings), T0)
    with ledger.anchors_path(settings).open("a") as file:
        file.write(line + "\n")
    result = verify(engine, settings, T0 + HOUR)
    assert not result.ok and result.broken_seq is None
    assert (result.problem or "").startswith(
        f"anchor ledger-anchors.jsonl line 2 is malformed ({why}"), result.problem
    with pytest.raises(AnchorStoreError, match="line 2 is malformed"):
        ledger.read_anchors(ledger.anchor_store(settings))


def test_anchors_older_than_the_maximum_age_fail_saying_when_and_what_to_run(
        engine: Engine, settings: Settings) -> None:
    append(engine, 8)
    ledger.anchor(engine, KEY, ledger.anchor_store(settings), T0)
    assert verify(engine, settings, T0 + 25 * HOUR).ok
    result = verify(engine, settings, T0 + 27 * HOUR)
    assert not result.ok and result.broken_seq is None
    assert result.problem == (
        "the newest anchor is of 2026-03-01T09:00:00+00:00, more than 26 hours ago: anchoring "
        "has stopped, so entries removed since would go unseen; check the Schedule "
        "dsr-ledger-anchor (python starter.py setup-cluster recreates it) and the orchestrator "
        "worker, or run python starter.py ledger anchor on the server")
    hourly = settings.model_copy(update={"ledger_anchor_max_age_hours": 2})
    assert not verify(engine, hourly, T0 + 3 * HOUR).ok


def test_an_empty_ledger_needs_no_anchor(engine: Engine, settings: Settings) -> None:
    result = verify(engine, settings, T0 + 1000 * HOUR)
    assert result.ok and result.describe() == "ledger intact: 0 entries, last anchor seq none"


# S3 with Object Lock (moto) ----------------------------------------------------------------


def _bucket(admin: Any, locked: bool = True) -> str:
    bucket = f"dsr-anchors-{uuid.uuid4().hex[:12]}"
    admin.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=locked,
                        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return bucket


def _s3_settings(data_dir: Path, bucket: str, endpoint: str, database: str) -> Settings:
    return Settings(data_dir=data_dir, hmac_key=SECRET.decode(), database_url=database,
                    ledger_anchor_url=f"s3://{bucket}/ledger-anchors?endpoint_url={endpoint}"
                                      "&region=eu-west-1")


def test_each_anchor_is_an_object_locked_in_compliance_mode(
        tmp_path: Path, moto_endpoint: str, admin_client: Any, aws_env: None) -> None:
    bucket = _bucket(admin_client)
    settings = _s3_settings(tmp_path, bucket, moto_endpoint, f"sqlite:///{tmp_path / 'dsr.db'}")
    engine = make_engine(settings.app_database_url)
    append(engine, 8, datetime.now(UTC))
    written = datetime.now(UTC)
    first = ledger.anchor(engine, KEY, ledger.anchor_store(settings))
    append(engine, 1, datetime.now(UTC))
    for _ in range(2):  # the head at 9 for two hours
        ledger.anchor(engine, KEY, ledger.anchor_store(settings))
    listed = admin_client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == ["ledger-anchors/00000000000008.json",
                                                "ledger-anchors/00000000000009.json"]
    versions = admin_client.list_object_versions(Bucket=bucket)["Versions"]
    assert len(versions) == 3
    for version in versions:
        head = admin_client.head_object(Bucket=bucket, Key=version["Key"],
                                        VersionId=version["VersionId"])
        assert head["ObjectLockMode"] == "COMPLIANCE"
        until = head["ObjectLockRetainUntilDate"]
        assert written + timedelta(days=3650) - HOUR < until < written + timedelta(days=3651)
    stored = admin_client.get_object(Bucket=bucket, Key="ledger-anchors/00000000000008.json")
    body = json.loads(stored["Body"].read())
    assert body["seq"] == 8 and body["mac"] == first.mac
    assert body["anchor_mac"] == anchor_mac(KEY, 8, first.mac, first.at)
    with pytest.raises(ClientError):  # moto models this much of the lock; S3 enforces all
        admin_client.delete_object(Bucket=bucket, Key=versions[0]["Key"],
                                   VersionId=versions[0]["VersionId"])
    assert verify(engine, settings, datetime.now(UTC)).ok


def test_truncation_is_seen_through_the_bucket_even_behind_a_delete_marker(
        tmp_path: Path, moto_endpoint: str, admin_client: Any, aws_env: None) -> None:
    """The worker anchors, the officer service verifies, each with its own data folder:
    before anchor stores the service read no anchor and said "intact"."""
    bucket, database = _bucket(admin_client), f"sqlite:///{tmp_path / 'dsr.db'}"
    worker, service = (_s3_settings(tmp_path / name, bucket, moto_endpoint, database)
                       for name in ("worker", "service"))
    engine = make_engine(database)
    append(engine, 57, datetime.now(UTC))
    head = AnchorActivities(engine, worker).anchor(AnchorInput(as_of=datetime.now(UTC)))
    truncate(tmp_path / "dsr.db", 40)
    result = verify(engine, service, datetime.now(UTC))
    assert (result.ok, result.broken_seq, result.missing_range) == (False, 41, [41, 57])
    assert result.problem == (f"entries 41-57 are missing: the chain ends at 40 but an anchor "
                              f"of {head.at.isoformat()} records 57 (tail truncated)")

    admin_client.delete_object(Bucket=bucket, Key="ledger-anchors/00000000000057.json")
    assert "Contents" not in admin_client.list_objects_v2(Bucket=bucket)  # hidden from a list
    result = verify(engine, service, datetime.now(UTC))
    assert result.missing_range == [41, 57]
    assert any(problem.startswith("anchor ledger-anchors/00000000000057.json (delete marker ")
               for problem in result.problems), result.problems


def test_a_bucket_without_object_lock_is_refused(
        tmp_path: Path, moto_endpoint: str, admin_client: Any, aws_env: None) -> None:
    bucket = _bucket(admin_client, locked=False)
    settings = _s3_settings(tmp_path, bucket, moto_endpoint, f"sqlite:///{tmp_path / 'dsr.db'}")
    engine = make_engine(settings.app_database_url)
    append(engine, 3, datetime.now(UTC))
    refusal = (f"the bucket {bucket} has no Object Lock, so its anchors could be deleted or "
               "overwritten: create a bucket with Object Lock enabled (aws s3api create-bucket "
               "--object-lock-enabled-for-bucket ...) and point DSR_LEDGER_ANCHOR_URL at it")
    with pytest.raises(AnchorStoreError) as refused:
        ledger.anchor(engine, KEY, ledger.anchor_store(settings))
    assert str(refused.value) == refusal
    env = {"DSR_DATA_DIR": str(tmp_path), "DSR_HMAC_KEY": SECRET.decode(),
           "DSR_SETTINGS_FILE": str(tmp_path / "absent.env"),
           "DSR_DATABASE_URL": settings.app_database_url,
           "DSR_LEDGER_ANCHOR_URL": settings.ledger_anchor_url or ""}
    anchored = CliRunner().invoke(starter.app, ["ledger", "anchor"], env=env)
    assert anchored.exit_code == 1  # its last line; moto's server logs in this process too
    assert anchored.output.strip().splitlines()[-1] == f"error: {refusal}"
    assert "Contents" not in admin_client.list_objects_v2(Bucket=bucket)
    result = verify(engine, settings, datetime.now(UTC))
    assert (result.ok, result.problem) == (False, refusal)


def test_a_malformed_or_misnamed_object_fails_naming_it(
        tmp_path: Path, moto_endpoint: str, admin_client: Any, aws_env: None) -> None:
    bucket = _bucket(admin_client)
    settings = _s3_settings(tmp_path, bucket, moto_endpoint, f"sqlite:///{tmp_path / 'dsr.db'}")
    engine = make_engine(settings.app_database_url)
    append(engine, 8, datetime.now(UTC))
    genuine = ledger.anchor(engine, KEY, ledger.anchor_store(settings))
    locked = {"ObjectLockMode": "COMPLIANCE",
              "ObjectLockRetainUntilDate": datetime.now(UTC) + timedelta(days=1)}
    admin_client.put_object(Bucket=bucket, Key="ledger-anchors/00000000000099.json",
                            Body=b"garbage", **locked)
    admin_client.put_object(Bucket=bucket, Key="ledger-anchors/00000000000098.json",
                            Body=genuine.model_dump_json().encode(), **locked)
    result = verify(engine, settings, datetime.now(UTC))
    assert not result.ok and len(result.problems) == 2, result.problems
    misnamed, malformed = sorted(result.problems)
    assert misnamed.startswith("anchor ledger-anchors/00000000000098.json (version ")
    assert "is malformed (it records seq 8 under the name of another)" in misnamed
    assert malformed.startswith("anchor ledger-anchors/00000000000099.json (version ")
    assert "is malformed (the record: Invalid JSON" in malformed
