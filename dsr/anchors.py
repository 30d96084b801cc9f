"""Anchors of the audit ledger's head, kept outside the database (``dsr.ledger``).

An anchor records the chain's head (sequence and MAC) at a time, with a MAC of its own under
the ledger key (a message domain of its own, so no entry's MAC is ever an anchor's), so an
anchor cannot be forged without the server secret. ``ledger verify`` reads every anchor: the
chain must reach each one and agree with it.

Two stores implement :class:`AnchorStore`:

* :class:`LocalAnchorStore`: JSON lines in ``data_dir/ledger-anchors.jsonl`` (the embedded
  stack, where the worker and the officer service share the folder).
* :class:`S3AnchorStore`: one object per anchor, ``<prefix>/<seq, 14 digits>.json``, in a
  bucket with Object Lock, each written locked in compliance mode until the retention ends,
  so nobody (not the database administrators, not the account's root) deletes or overwrites
  it before then. Every version is read, so a newer version or a delete marker hides
  nothing. A bucket without Object Lock is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from dsr.blobstore import parse_blob_url, s3_client
from dsr.settings import Settings

ANCHORS_FILE = "ledger-anchors.jsonl"
ANCHOR_DOMAIN = b"dsr ledger anchor\x00"  # an anchor's MAC is over this, then its fields
OBJECT_NAME = re.compile(r"^(\d{14})\.json$")
READ_THREADS = 8


class AnchorStoreError(Exception):
    """The anchor store cannot be used (unreachable, or a bucket without Object Lock)."""


class Anchor(BaseModel):
    """The chain's head at a time, with its own MAC (empty: not a valid anchor)."""

    seq: int = Field(ge=0)
    mac: str = Field(pattern=r"^[0-9a-f]{64}$")
    at: AwareDatetime
    anchor_mac: str = ""  # a default only so workflow histories recorded before read back


def anchor_mac(key: bytes, seq: int, mac: str, at: datetime) -> str:
    fields = {"seq": seq, "mac": mac, "at": at.astimezone(UTC).isoformat()}
    message = ANCHOR_DOMAIN + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sealed_anchor(key: bytes, seq: int, mac: str, at: datetime) -> Anchor:
    at = at.astimezone(UTC)
    return Anchor(seq=seq, mac=mac, at=at, anchor_mac=anchor_mac(key, seq, mac, at))


def genuine(key: bytes, anchor: Anchor) -> bool:
    expected = anchor_mac(key, anchor.seq, anchor.mac, anchor.at)
    return hmac.compare_digest(expected, anchor.anchor_mac)


@dataclass(frozen=True)
class StoredAnchor:
    """One record as read from a store: the anchor, or why it is not one."""

    where: str  # names it: "ledger-anchors.jsonl line 3", or an object key and version
    anchor: Anchor | None
    problem: str = ""


class AnchorStore(Protocol):
    def where(self) -> str:
        """Where the anchors are, for messages (never a credential)."""
        ...

    def write(self, anchor: Anchor) -> None: ...

    def read(self) -> list[StoredAnchor]:
        """Every record, malformed ones too; raises :class:`AnchorStoreError`."""
        ...


def parse_anchor(where: str, text: str | bytes) -> StoredAnchor:
    try:
        return StoredAnchor(where, Anchor.model_validate_json(text))
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "the record"
        return StoredAnchor(where, None, f"{field}: {first['msg']}")


class LocalAnchorStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def where(self) -> str:
        return str(self.path)

    def write(self, anchor: Anchor) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(anchor.model_dump_json() + "\n")

    def read(self) -> list[StoredAnchor]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as error:
            raise AnchorStoreError(f"cannot read the anchors in {self.path}: "
                                   f"{type(error).__name__}") from None
        return [parse_anchor(f"{self.path.name} line {number}", line)
                for number, line in enumerate(lines, start=1) if line.strip()]


class S3AnchorStore:
    """Anchors as locked objects in a bucket with Object Lock (``client``: boto3 S3)."""

    def __init__(self, bucket: str, prefix: str, client: Any, retention: timedelta) -> None:
        self.bucket, self.prefix, self.client = bucket, prefix.strip("/"), client
        self.retention = retention
        self._lock_checked = False

    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, seq: int) -> str:
        name = f"{seq:014d}.json"
        return f"{self.prefix}/{name}" if self.prefix else name

    def write(self, anchor: Anchor) -> None:
        self._check_lock()
        body = anchor.model_dump_json().encode()
        with self._errors("write the anchor to"):
            self.client.put_object(
                Bucket=self.bucket, Key=self.key(anchor.seq), Body=body,
                ContentType="application/json",
                ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode(),
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=datetime.now(UTC) + self.retention)

    def read(self) -> list[StoredAnchor]:
        self._check_lock()
        with self._errors("list the anchors in"):
            versions, markers = self._versions()
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            stored = list(pool.map(self._read_version, versions))
        return stored + [StoredAnchor(f"{key} (delete marker {version})", None,
                                      "someone tried to delete this anchor (its locked "
                                      "versions are still read); remove the marker with "
                                      "s3api delete-object --version-id once explained")
                         for key, version in markers]

    def _versions(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        versions: list[tuple[str, str]] = []
        markers: list[tuple[str, str]] = []
        prefix = f"{self.prefix}/" if self.prefix else ""
        for page in self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=prefix):
            versions += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
            markers += [(m["Key"], m["VersionId"]) for m in page.get("DeleteMarkers", [])]
        return versions, markers

    def _read_version(self, version: tuple[str, str]) -> StoredAnchor:
        key, version_id = version
        where = f"{key} (version {version_id})"
        named = OBJECT_NAME.match(key.removeprefix(f"{self.prefix}/") if self.prefix else key)
        if named is None:
            return StoredAnchor(where, None, "not an anchor's name (<14-digit seq>.json)")
        with self._errors(f"read {key} from"):
            response = self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)
            body = response["Body"].read()
        stored = parse_anchor(where, body)
        if stored.anchor is not None and stored.anchor.seq != int(named.group(1)):
            return StoredAnchor(where, None, f"it records seq {stored.anchor.seq} under the "
                                             "name of another")
        return stored

    def _check_lock(self) -> None:
        """Once: the bucket must have Object Lock, or its anchors could be deleted."""
        if self._lock_checked:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
            enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != (
                    "ObjectLockConfigurationNotFoundError"):
                raise self._failed("check Object Lock on", error) from None
            enabled = None
        except BotoCoreError as error:  # unreachable, no credentials
            raise self._failed("check Object Lock on", error) from None
        if enabled != "Enabled":
            raise AnchorStoreError(
                f"the bucket {self.bucket} has no Object Lock, so its anchors could be deleted "
                "or overwritten: create a bucket with Object Lock enabled (aws s3api "
                "create-bucket --object-lock-enabled-for-bucket ...) and point "
                "DSR_LEDGER_ANCHOR_URL at it")
        self._lock_checked = True

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Boto's errors as :class:`AnchorStoreError`, naming what was being done."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (ClientError, BotoCoreError) as error:
            raise self._failed(doing, error) from None

    def _failed(self, doing: str, error: Exception) -> AnchorStoreError:
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        return AnchorStoreError(f"cannot {doing} {self.where()}: {code or type(error).__name__}"
                                "; check DSR_LEDGER_ANCHOR_URL, the network and the AWS "
                                "credentials (or role)")


def anchor_store(settings: Settings) -> AnchorStore:
    """The store ``DSR_LEDGER_ANCHOR_URL`` names; none: ``data_dir/ledger-anchors.jsonl``."""
    if not settings.ledger_anchor_url:
        return LocalAnchorStore(settings.data_dir / ANCHORS_FILE)
    parsed = parse_blob_url(settings.ledger_anchor_url)
    return S3AnchorStore(parsed.bucket, parsed.prefix, s3_client(parsed),
                         timedelta(days=settings.ledger_anchor_retention_days))


def as_store(anchors: AnchorStore | Path) -> AnchorStore:
    """A path is the local file (as callers before the stores passed it)."""
    return LocalAnchorStore(anchors) if isinstance(anchors, Path) else anchors


def genuine_anchors(keys: Sequence[bytes], stored: list[StoredAnchor]
                    ) -> Iterator[Anchor | str]:
    """Each record: the anchor if it is genuine under one of the ledger keys held (the
    current secret's, or a previous one's), else a problem naming it."""
    for record in stored:
        if record.anchor is None:
            yield (f"anchor {record.where} is malformed ({record.problem}): this product did "
                   "not write it; find out who can write there")
        elif not any(genuine(key, record.anchor) for key in keys):
            yield (f"anchor {record.where} has no valid MAC under the ledger key: forged, or "
                   "written under another server secret (anchors written before they were "
                   "MAC'd too: see README, Trust model)")
        else:
            yield record.anchor
