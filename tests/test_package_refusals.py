"""The package step packs only this request's own sealed exports: a connector result naming a
blob outside ``exports/<request id>/`` (another request's export, a package, a path that climbs
out) or a blob not sealed by the product is refused before anything is read or deleted."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.package import PackageActivities, PackageInput
from connectors.kit.exports import export_jsonl, export_key
from dsr.blobstore import LocalBlobStore
from dsr.connector_contract import AccessResult
from dsr.models import Language
from dsr.sealedblobs import SealedBlobStore
from dsr.settings import Settings
from tests.conftest import TEST_KEYRING

REQUEST = "REQ-1"
OTHER = "REQ-2"
PHONE = "+31612345678"


def _store(tmp_path: Path) -> SealedBlobStore:
    return SealedBlobStore(LocalBlobStore(tmp_path / "blobs"), TEST_KEYRING)


def _export(store: SealedBlobStore, request_id: str, connector: str = "sms") -> AccessResult:
    records = [{"category": "traffic_data", "to": PHONE, "body": "hello"}]
    export = export_jsonl(store, export_key(request_id, connector), [records])
    return AccessResult(connector=connector, records=export.records, blob_ref=export.blob_ref,
                        sha256=export.sha256)


def _assemble(store: SealedBlobStore, tmp_path: Path, *exports: AccessResult) -> None:
    ActivityEnvironment().run(
        PackageActivities(Settings(data_dir=tmp_path), store).assemble,
        PackageInput(request_id=REQUEST, language=Language.EN, exports=list(exports)),
    )


def _blobs_on_disk(tmp_path: Path) -> dict[str, bytes]:
    root = tmp_path / "blobs"
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.parametrize(("ref", "problem"), [
    (f"blob:exports/{OTHER}/sms.jsonl", f"outside this request's export area (exports/{REQUEST}/)"),
    (f"blob:packages/{OTHER}.zip", "outside this request's export area"),
    (f"blob:exports/{REQUEST}0/sms.jsonl", "outside this request's export area"),
    (f"blob:exports/{REQUEST}/../{OTHER}/sms.jsonl", "'..' segments"),
    (f"blob:exports/{REQUEST}//sms.jsonl", "empty, '.' or '..' segments"),
    (f"exports/{REQUEST}/sms.jsonl", "not a blob reference"),
    (f"s3://bucket/exports/{REQUEST}/sms.jsonl", "not a blob reference"),
])
def test_an_export_naming_a_blob_outside_the_request_is_refused_and_nothing_is_deleted(
    tmp_path: Path, ref: str, problem: str
) -> None:
    store = _store(tmp_path)
    own = _export(store, REQUEST, "voice")
    _export(store, OTHER)
    with store.open_writer(f"packages/{OTHER}.zip") as sink:
        sink.write(b"the other request's package")
    before = _blobs_on_disk(tmp_path)
    forged = own.model_copy(update={"connector": "sms", "blob_ref": ref})

    with pytest.raises(ApplicationError) as raised:
        _assemble(store, tmp_path, own, forged)

    error = raised.value
    assert (error.type, error.non_retryable) == ("ExportOutsideRequest", True)
    assert error.message.startswith("the sms export was refused: its blob reference")
    assert problem in error.message and "nothing was read or deleted" in error.message
    assert _blobs_on_disk(tmp_path) == before, "nothing deleted, no package written"


def test_an_export_not_sealed_by_the_product_is_refused_and_kept(tmp_path: Path) -> None:
    store = _store(tmp_path)
    own = _export(store, REQUEST, "voice")
    with store.inner.open_writer(export_key(REQUEST, "sms")) as sink:  # planted in clear
        sink.write(f'{{"category": "traffic_data", "to": "{PHONE}"}}\n'.encode())
    planted = AccessResult(connector="sms", records={"traffic_data": 1},
                           blob_ref=store.ref(export_key(REQUEST, "sms")))
    before = _blobs_on_disk(tmp_path)

    with pytest.raises(ApplicationError) as raised:
        _assemble(store, tmp_path, own, planted)

    error = raised.value
    assert (error.type, error.non_retryable) == ("ExportNotSealed", True)
    assert error.message == ("the sms export was refused (blob is not sealed by the product): "
                          "nothing was packed or deleted")
    assert PHONE not in error.message
    assert _blobs_on_disk(tmp_path) == before, "nothing deleted, no package written"


def test_a_result_whose_connector_name_is_not_a_name_is_not_echoed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    forged = AccessResult(connector=f"sms {PHONE}", blob_ref=f"blob:exports/{OTHER}/sms.jsonl")
    with pytest.raises(ApplicationError) as raised:
        _assemble(store, tmp_path, forged)
    message = raised.value.message
    assert message.startswith("an export whose connector name is not valid was refused")
    assert PHONE not in message


def test_this_requests_own_exports_are_packed_and_then_deleted(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _assemble(store, tmp_path, _export(store, REQUEST, "sms"), _export(store, REQUEST, "voice"),
              AccessResult(connector="numbers"))
    assert list(_blobs_on_disk(tmp_path)) == [f"packages/{REQUEST}.zip"]
