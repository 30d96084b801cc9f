"""The access and portability package: every connector's export, zipped into the blob store
(encrypted at rest, like every blob: ``dsr.sealedblobs``).

A JSON document per product, a CSV per category and a manifest with counts, sources and the
catalogue facts of each category. Exports are read line by line, never held whole.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.interfaces.package import ASSEMBLE_PACKAGE, Package, PackageInput
from dsr.access_facts import load_access_policies
from dsr.blobstore import BlobStore, key_of
from dsr.codec import DecryptionError
from dsr.connector_contract import AccessResult, export_area
from dsr.models import Language
from dsr.settings import Settings

HEARTBEAT_EVERY = 2000  # records
CONNECTOR_NAME = re.compile(r"[a-z][a-z0-9_]{1,40}")  # as in the registry


class PackageActivities:
    def __init__(self, settings: Settings, blobs: BlobStore) -> None:
        self._settings = settings
        self._blobs = blobs

    @activity.defn(name=ASSEMBLE_PACKAGE.name)
    def assemble(self, package: PackageInput) -> Package:
        """Zip the exports into the package, then delete them: the package is the one copy
        kept, until its download link expires. A retry after the exports are gone returns the
        package already written. An export outside this request's own area, or not sealed by
        the product, is refused before anything is read or deleted."""
        refuse_foreign_exports(package)
        key = f"packages/{package.request_id}.zip"
        exports = [export for export in package.exports if export.blob_ref is not None]
        if self._blobs.exists(self._blobs.ref(key)) and not all(
            self._blobs.exists(export.blob_ref) for export in exports if export.blob_ref
        ):
            return Package(blob_ref=self._blobs.ref(key),
                           records=sum(sum(e.records.values()) for e in exports))
        written = self._write(key, package)
        for export in exports:
            assert export.blob_ref is not None
            self._blobs.delete(export.blob_ref)
        return written

    def _write(self, key: str, package: PackageInput) -> Package:
        manifest: dict[str, object] = {"request_id": package.request_id, "products": []}
        total = 0
        with (
            self._blobs.open_writer(key) as sink,
            zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive,
        ):
            for export in package.exports:
                if export.blob_ref is None:
                    continue
                total += self._add_export(archive, export)
                manifest["products"].append(self._manifest_entry(export, package.language))  # type: ignore[attr-defined]
                activity.heartbeat(export.connector)
            archive.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        return Package(blob_ref=self._blobs.ref(key), records=total)

    def _records(self, export: AccessResult) -> Iterator[dict[str, object]]:
        """The export's records, checked against the SHA-256 its connector reported."""
        assert export.blob_ref is not None
        digest = hashlib.sha256()
        try:
            with self._blobs.open_reader(export.blob_ref) as source:
                for line in source:
                    digest.update(line)
                    yield json.loads(line)
        except DecryptionError as error:  # its messages name the fault, never the content
            raise ApplicationError(
                f"{_described(export)} was refused ({error}): nothing was packed or deleted",
                type="ExportNotSealed",
                non_retryable=True,
            ) from None
        if export.sha256 is not None and digest.hexdigest() != export.sha256:
            raise ApplicationError(
                f"{_described(export)} does not match the checksum its connector "
                "reported: export it again",
                type="ExportChecksumMismatch",
                non_retryable=True,
            )

    def _add_export(self, archive: zipfile.ZipFile, export: AccessResult) -> int:
        count = 0
        csv_files: dict[str, tuple[IO[str], csv.DictWriter[str]]] = {}
        with archive.open(f"{export.connector}.json", "w") as document:
            document.write(b"[\n")
            for record in self._records(export):
                document.write((",\n" if count else "").encode())
                document.write(json.dumps(record, ensure_ascii=False, default=str).encode())
                self._csv_row(csv_files, record)
                count += 1
                if count % HEARTBEAT_EVERY == 0:
                    activity.heartbeat(export.connector, count)
            document.write(b"\n]\n")
        for category, (spool, _) in csv_files.items():
            spool.seek(0)
            with archive.open(f"{export.connector}/{category}.csv", "w") as target:
                shutil.copyfileobj(spool.buffer, target)  # type: ignore[attr-defined]
            spool.close()
        return count

    @staticmethod
    def _csv_row(files: dict[str, tuple[IO[str], csv.DictWriter[str]]],
                 record: dict[str, object]) -> None:
        """One spooled CSV file per category, so a large export is never held in memory."""
        category = str(record.get("category", "records"))
        if category not in files:
            spool = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")  # noqa: SIM115
            writer = csv.DictWriter(spool, fieldnames=list(record), extrasaction="ignore")
            writer.writeheader()
            files[category] = (spool, writer)
        files[category][1].writerow(record)

    def _manifest_entry(self, export: AccessResult, language: Language) -> dict[str, object]:
        policies = load_access_policies(self._settings.policy_dir)
        return {
            "connector": export.connector,
            "records": export.records,
            "sha256": export.sha256,
            "categories": {
                category: policies.catalogue.facts(
                    export.connector, category, language, policies.recipients).model_dump()
                for category in export.records
            },
        }


def refuse_foreign_exports(package: PackageInput) -> None:
    """Each export's blob must lie in this request's own export area: a connector result naming
    another request's export, or a package, is refused before anything is read or deleted."""
    for export in package.exports:
        problem = _outside_area(export.blob_ref, package.request_id)
        if problem is not None:
            raise ApplicationError(
                f"{_described(export)} was refused: its blob reference {problem}; "
                "nothing was read or deleted",
                type="ExportOutsideRequest",
                non_retryable=True,
            )


def _outside_area(ref: str | None, request_id: str) -> str | None:
    """What is wrong with an export's blob reference, or None when it is this request's."""
    if ref is None:
        return None
    try:
        key = key_of(ref)  # a blob reference, with no empty, '.' or '..' segment
    except ValueError as error:
        return f"is not valid ({error})"
    area = export_area(request_id)
    if not key.startswith(area):
        return f"lies outside this request's export area ({area})"
    return None


def _described(export: AccessResult) -> str:
    """The export by its connector's name, if the result names one at all."""
    if CONNECTOR_NAME.fullmatch(export.connector):
        return f"the {export.connector} export"
    return "an export whose connector name is not valid"
