"""Payloads bound to where they belong: the namespace and workflow id travel in the metadata,
authenticated, and a decoder with a context refuses a payload from elsewhere. Keys from before
binding still open their unbound payloads; keys made since do not."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError

from dsr.codec import (
    NAMESPACE_METADATA,
    PREFIX_METADATA,
    SWEEP_RUN_ID,
    WORKFLOW_METADATA,
    Binding,
    EncryptionCodec,
)
from dsr.converter import ProductPayloadConverter, Refused
from dsr.keyring import Keyring, KeyringError, load_keyring, new_key_entry
from dsr.settings import Settings
from tests.test_codec import plain, refused

BOUND = new_key_entry("bound-key")
LEGACY = f"legacy-key:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def in_workflow(workflow_id: str, namespace: str = "default") -> WorkflowSerializationContext:
    return WorkflowSerializationContext(namespace=namespace, workflow_id=workflow_id)


def in_activity(workflow_id: str) -> ActivitySerializationContext:
    return ActivitySerializationContext(
        namespace="default", activity_id="1", activity_type="sms.erase",
        activity_task_queue="sms", workflow_id=workflow_id, workflow_type="RightsRequest",
        is_local=False)


def codec(spec: str = BOUND) -> EncryptionCodec:
    return EncryptionCodec(Keyring.from_spec(spec))


async def test_a_payload_names_and_binds_its_namespace_and_workflow() -> None:
    [sealed] = await codec().with_context(in_workflow("dsr-R-1")).encode([plain()])
    assert sealed.metadata[NAMESPACE_METADATA] == b"default"
    assert sealed.metadata[WORKFLOW_METADATA] == b"dsr-R-1"
    assert Binding.read(sealed) == Binding("default", "dsr-R-1")
    # Read back in the same workflow, by its activities too, and where there is no context.
    for reader in (codec().with_context(in_workflow("dsr-R-1")),
                   codec().with_context(in_activity("dsr-R-1")), codec()):
        assert await reader.decode([sealed]) == [plain()]


async def test_a_payload_copied_into_another_workflow_or_namespace_is_refused() -> None:
    [sealed] = await codec().with_context(in_workflow("dsr-R-1")).encode([plain()])
    for elsewhere in (in_workflow("dsr-R-2"), in_activity("dsr-R-2"),
                      in_workflow("dsr-R-1", namespace="affiliate")):
        [marker] = await codec().with_context(elsewhere).decode([sealed])
        assert refused(marker) == "other-workflow"


async def test_a_relabelled_binding_fails_authentication() -> None:
    [sealed] = await codec().with_context(in_workflow("dsr-R-1")).encode([plain()])
    moved = Payload(metadata={**sealed.metadata, WORKFLOW_METADATA: b"dsr-R-2"}, data=sealed.data)
    [marker] = await codec().with_context(in_workflow("dsr-R-2")).decode([moved])
    assert refused(marker) == "unauthenticated"
    stripped = Payload(metadata={k: v for k, v in sealed.metadata.items()
                                 if k not in (NAMESPACE_METADATA, WORKFLOW_METADATA)},
                       data=sealed.data)
    [marker] = await codec().with_context(in_workflow("dsr-R-1")).decode([stripped])
    assert refused(marker) == "unauthenticated"


async def test_a_scheduled_workflow_reads_its_schedules_payload_by_prefix() -> None:
    [sealed] = await codec().with_context(in_workflow(SWEEP_RUN_ID)).encode([plain()])
    assert sealed.metadata[PREFIX_METADATA] == SWEEP_RUN_ID.encode()
    run = codec().with_context(in_workflow(f"{SWEEP_RUN_ID}-2026-12-07T00:00:00Z"))
    assert await run.decode([sealed]) == [plain()]
    [marker] = await codec().with_context(in_workflow("dsr-R-1")).decode([sealed])
    assert refused(marker) == "other-workflow"


async def test_unbound_payloads_open_only_under_a_key_from_before_binding() -> None:
    both = f"{LEGACY},{BOUND}"
    [old] = await codec(LEGACY).encode([plain()])  # as written before binding: no context
    assert NAMESPACE_METADATA not in old.metadata
    assert await codec(both).with_context(in_workflow("dsr-R-1")).decode([old]) == [plain()]
    [new_unbound] = await codec(both).encode([plain()])  # under the bound key
    [marker] = await codec(both).with_context(in_workflow("dsr-R-1")).decode([new_unbound])
    assert refused(marker) == "unbound"


def test_key_entries_say_whether_they_are_bound() -> None:
    keyring = Keyring.from_spec(f"{LEGACY}\n{BOUND}")
    assert keyring.accepts_unbound("legacy-key") and not keyring.accepts_unbound("bound-key")
    assert BOUND.endswith(":bound")
    assert Keyring.from_spec(keyring.spec()).ids == keyring.ids
    with pytest.raises(KeyringError, match="only ':bound' may follow") as error:
        Keyring.from_spec(f"{LEGACY}:unbound")
    assert LEGACY.split(":")[1] not in str(error.value)


def test_the_embedded_key_file_gains_a_bound_key_when_its_newest_is_older(
        tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "payload-keys"
    path.parent.mkdir(mode=0o700)
    path.write_text(LEGACY + "\n")
    settings = Settings(data_dir=tmp_path, payload_keys=None, payload_key_file=None)
    keyring = load_keyring(settings)
    assert keyring.ids[0] == "legacy-key" and keyring.accepts_unbound("legacy-key")
    assert not keyring.accepts_unbound(keyring.newest_id)
    assert load_keyring(settings).ids == keyring.ids  # once only
    assert Keyring.from_spec(path.read_text()).ids == keyring.ids


def test_the_converter_refuses_a_marker_by_where_it_is() -> None:
    marker = (Payload(metadata={"encoding": b"binary/dsr-refused", "dsr-refusal": b"unencrypted",
                                "refused-encoding": b"json/plain"}))
    as_result = ProductPayloadConverter().with_context(in_activity("dsr-R-1"))
    [result] = as_result.from_payloads([marker])
    assert isinstance(result, Refused) and result.reason == "unencrypted"
    as_argument = ProductPayloadConverter().with_context(in_workflow("dsr-R-1"))
    with pytest.raises(ApplicationError, match="json/plain") as error:
        as_argument.from_payloads([marker])
    assert error.value.type == "ForeignPayload" and error.value.non_retryable
