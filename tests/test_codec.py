"""Payload encryption: the codec on its own, the keyring's parsing and key file, and on the dev
server a request whose raw history holds no identity in clear, and a key rotation mid-request."""

from __future__ import annotations

import asyncio
import base64
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import History, HistoryEvent
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

import worker
from connectors.builtin import BUILTIN
from dsr.codec import (
    ENCODING,
    KEY_ID_METADATA,
    REFUSAL_METADATA,
    REFUSED_ENCODING,
    EncryptionCodec,
    Refusal,
)
from dsr.converter import data_converter
from dsr.keyring import Keyring, KeyringError, load_keyring, new_key_entry
from dsr.settings import Settings
from dsr.status import Status
from services import workflow_client as officer
from services.mail_server import MailFolder
from tests import outage_connector
from tests.conftest import Harness, start_harness, walk
from tests.test_requests_e2e import emailed_code, send_code, wait_for_connector
from workflows.deferred import workflow_id as deferred_id
from workflows.models import (
    ConnectorDecision,
    ConnectorResolution,
    ConnectorStatus,
    RequestOutcome,
    UpdateResult,
)

A, B = new_key_entry("key-a"), new_key_entry("key-b")


def plain(data: bytes = b'{"email": "ada@example.com"}') -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


# The codec ---------------------------------------------------------------------------------


async def test_round_trip_restores_the_whole_payload() -> None:
    codec = EncryptionCodec(Keyring.from_spec(A))
    original = plain()
    [sealed] = await codec.encode([original])
    assert b"ada@example.com" not in sealed.SerializeToString()
    assert [await codec.decode([sealed])] == [[original]]


async def test_new_payloads_use_the_newest_key_and_old_ones_still_decrypt() -> None:
    [old] = await EncryptionCodec(Keyring.from_spec(A)).encode([plain()])
    rotated = EncryptionCodec(Keyring.from_spec(f"{A},{B}"))
    [new] = await rotated.encode([plain()])
    assert old.metadata[KEY_ID_METADATA] == b"key-a"
    assert new.metadata[KEY_ID_METADATA] == b"key-b"
    assert new.metadata["encoding"] == ENCODING
    assert await rotated.decode([old, new]) == [plain(), plain()]


async def test_each_payload_has_its_own_nonce() -> None:
    codec = EncryptionCodec(Keyring.from_spec(A))
    first, second = await codec.encode([plain(), plain()])
    assert first.data != second.data


def refused(payload: Payload) -> str:
    """The reason a decoded payload was refused; fails if it was not."""
    assert payload.metadata["encoding"] == REFUSED_ENCODING, payload.metadata
    assert not payload.data
    return payload.metadata[REFUSAL_METADATA].decode()


async def test_an_unencrypted_payload_decodes_to_a_refusal_not_an_error() -> None:
    codec = EncryptionCodec(Keyring.from_spec(A))
    [marker] = await codec.decode([plain()])
    assert refused(marker) == "unencrypted"
    assert marker.metadata["refused-encoding"] == b"json/plain"


async def test_a_payload_under_a_removed_key_is_refused_naming_the_key() -> None:
    [sealed] = await EncryptionCodec(Keyring.from_spec(f"{A},{B}")).encode([plain()])
    removed = EncryptionCodec(Keyring.from_spec(A))
    assert refused((await removed.decode([sealed]))[0]) == "unknown-key"
    with pytest.raises(Refusal, match="key-b") as caught:
        removed.decrypt(sealed)
    assert "DSR_PAYLOAD_KEYS" in str(caught.value)


async def test_a_tampered_payload_is_refused() -> None:
    codec = EncryptionCodec(Keyring.from_spec(A))
    [sealed] = await codec.encode([plain()])
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 1
    tampered = Payload(metadata=dict(sealed.metadata), data=bytes(flipped))
    assert refused((await codec.decode([tampered]))[0]) == "unauthenticated"
    with pytest.raises(Refusal, match="tampered"):
        codec.decrypt(tampered)
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID_METADATA: b"key-b"}, data=sealed.data)
    rotated = EncryptionCodec(Keyring.from_spec(f"{A},{B}"))  # the key id is authenticated too
    assert refused((await rotated.decode([relabelled]))[0]) == "unauthenticated"


async def test_failures_leave_only_an_encoded_message_for_the_server() -> None:
    converter = data_converter(Keyring.from_spec(A))
    failure = Failure()
    await converter.encode_failure(ValueError("code 123456 for ada@example.com"), failure)
    assert failure.message == "Encoded failure" and failure.stack_trace == ""
    assert b"ada@example.com" not in failure.SerializeToString()
    error = await converter.decode_failure(failure)
    assert "ada@example.com" in str(error)


# The keyring -------------------------------------------------------------------------------

SECRET = base64.b64encode(b"s" * 32).decode()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no payload keys"),
        (SECRET, "entry 1 is not id:base64key"),
        (f"a:{SECRET},{SECRET}", "entry 2 is not id:base64key"),
        (f"a b:{SECRET}", "entry 1: the id"),
        (f"a:{SECRET[:-4]}!!!!", "entry 1 ('a') is not valid base64"),
        (f"a:{base64.b64encode(b's' * 16).decode()}", "entry 1 ('a') is 16 bytes"),
        (f"a:{SECRET},a:{SECRET}", "'a' appears twice"),
    ],
)
def test_malformed_specs_are_refused_without_the_key(spec: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        Keyring.from_spec(spec)
    assert SECRET not in str(e.value) and SECRET[:-4] not in str(e.value)


def test_newest_key_is_the_last_and_repr_hides_keys() -> None:
    keyring = Keyring.from_spec(f"{A}\n{B}\n")
    assert keyring.newest_id == "key-b" and keyring.ids == ["key-a", "key-b"]
    assert B.split(":")[1] not in repr(keyring)


def test_environment_keys_come_first(tmp_path: Path) -> None:
    keyring = load_keyring(Settings(data_dir=tmp_path, payload_keys=f"{A},{B}"))
    assert keyring.newest_id == "key-b"
    assert not (tmp_path / "secrets").exists()
    with pytest.raises(KeyringError, match="DSR_PAYLOAD_KEYS: payload key entry 1"):
        load_keyring(Settings(data_dir=tmp_path, payload_keys="oops"))


def test_the_embedded_key_file_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, payload_keys=None, payload_key_file=None)
    first = load_keyring(settings)
    path = tmp_path / "secrets" / "payload-keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = load_keyring(settings)
    assert first.newest_id == second.newest_id
    assert first.key(first.newest_id) == second.key(second.newest_id)
    assert [p.name for p in path.parent.iterdir()] == ["payload-keys"]


def test_an_explicit_key_file_must_exist_and_be_well_formed(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "keys"
    with pytest.raises(KeyringError, match=r"payload key file .*nowhere"):
        load_keyring(Settings(data_dir=tmp_path, payload_keys=None, payload_key_file=missing))
    assert not missing.exists()
    broken = tmp_path / "keys"
    broken.write_text(f"# rotated yearly\n{A}\nkey-c:{SECRET[:10]}\n")
    with pytest.raises(KeyringError, match="entry 2 \\('key-c'\\)") as e:
        load_keyring(Settings(data_dir=tmp_path, payload_keys=None, payload_key_file=broken))
    assert SECRET[:10] not in str(e.value)


def test_worker_refuses_to_start_with_a_bad_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DSR_SETTINGS_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DSR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DSR_PAYLOAD_KEYS", f"k:{SECRET[:20]}")
    assert worker.main([]) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err and "DSR_PAYLOAD_KEYS" in err and SECRET[:20] not in err


# On the dev server -------------------------------------------------------------------------


# Search attributes, memos and headers are not payloads of the product's data: Temporal never
# encodes them, and the product puts no personal data there.
UNENCODED = frozenset({"search_attributes", "header", "memo"})
# The SDK writes its markers' own bookkeeping in clear: a workflow.patched marker's patch id
# (a code name), and a local activity's sequence number, attempt, type and times (its "data").
# A local activity's result is the product's data, encoded like any other payload.
PATCH_MARKER = "core_patch"
LOCAL_ACTIVITY_MARKER = "core_local_activity"


def payloads_of(history: History) -> list[Payload]:
    events = []
    for event in history.events:
        marker = event.marker_recorded_event_attributes.marker_name
        if marker == PATCH_MARKER:
            continue
        if marker == LOCAL_ACTIVITY_MARKER:
            event = HistoryEvent.FromString(event.SerializeToString())
            del event.marker_recorded_event_attributes.details["data"]
        events.append(event)
    return [m for m in walk(History(events=events), UNENCODED) if isinstance(m, Payload)]


def failures_of(history: History) -> list[Failure]:
    return [m for m in walk(history) if isinstance(m, Failure)]


async def raw_client(env: WorkflowEnvironment) -> Client:
    """A client without the codec: what the server stores, as anyone reading it sees it."""
    return await Client.connect(
        env.client.service_client.config.target_host, namespace=env.client.namespace
    )


async def test_the_raw_history_holds_no_identity_in_clear(
    dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]
) -> None:
    async with AsyncExitStack() as stack:
        entry = outage_connector.registry_entry(tmp_path.name[-8:])
        h = await start_harness(
            dev_env,
            tmp_path,
            mail[0],
            mail[1],
            stack,
            extra_connectors=[entry],
            connector_max_attempts=2,
            extra_workers=[outage_connector.outage_worker(entry["task_queue"])],
        )
        request = h.controller_erasure()
        handle = await h.submit(request)
        await send_code(h, request.request_id, await emailed_code(h, request.request_id))
        await wait_for_connector(h, request.request_id, ConnectorStatus.FAILED)

        raw = await raw_client(dev_env)
        not_failing = ConnectorDecision(
            officer="Ada",
            connector="sms",
            resolution=ConnectorResolution.SKIPPED,
            reason="not failing",
        )
        raw_handle = raw.get_workflow_handle(handle.id)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await raw_handle.execute_update("resolve_connector", not_failing.model_dump())
        assert getattr(refused.value.cause, "message", None) == "Encoded failure"
        with pytest.raises(officer.OfficerError, match="failing connectors: outage"):
            await h.update(request.request_id, "resolve_connector", not_failing)
        await officer.update(
            h.client,
            request.request_id,
            "resolve_connector",
            ConnectorDecision(
                officer="Ada",
                connector="outage",
                resolution=ConnectorResolution.DONE_BY_HAND,
                reason="by hand",
            ),
            UpdateResult, signer=h.officer()
        )
        outcome: RequestOutcome = await handle.result()
        assert outcome.status is Status.ANSWERED

        history = (await raw_handle.fetch_history()).events
        whole = History(events=history)
        identities = identity_values(h)
        stored = whole.SerializeToString()
        for value in identities:
            assert value.encode() not in stored, f"{value} in clear in the history"
        payloads = payloads_of(whole)
        clear = [p for p in payloads if p.metadata["encoding"] != ENCODING]
        assert payloads and not clear, clear[:3]
        failures = failures_of(whole)
        assert failures, "the failing connector left an activity failure in the history"
        assert {f.message for f in failures} == {"Encoded failure"}
        assert all(f.stack_trace == "" for f in failures)
        with pytest.raises(Exception, match=r"encrypted|decode|binary"):
            await raw_handle.result()  # the raw client cannot read the outcome


def identity_values(h: Harness) -> list[str]:
    facts = h.facts
    return [
        facts.account_holder_email,
        facts.controller_registered_email,
        facts.end_user_phone,
        facts.end_user_phone.lstrip("+"),
    ]


async def test_a_request_survives_a_key_rotation(
    dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]
) -> None:
    target, namespace = dev_env.client.service_client.config.target_host, dev_env.client.namespace

    async def client_with(spec: str) -> Client:
        return await Client.connect(
            target, namespace=namespace, data_converter=data_converter(Keyring.from_spec(spec))
        )

    before = await client_with(A)
    async with AsyncExitStack() as stack:
        h = await start_harness(
            WorkflowEnvironment.from_client(before),
            tmp_path,
            mail[0],
            mail[1],
            stack,
            payload_keys=A,
        )
        request = h.controller_erasure()
        handle = await h.submit(request)
        code = await emailed_code(h, request.request_id)
        for _ in range(100):  # the code is mailed just before the workflow starts waiting
            if (await h.status(request.request_id)).status is Status.AWAITING_VERIFICATION:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the request never waited for its code")
    # The workers are gone; the request waits for its code.
    raw = (await raw_client(dev_env)).get_workflow_handle(handle.id)
    written_before = len((await raw.fetch_history()).events)

    after = await client_with(f"{A},{B}")
    settings = h.settings.model_copy(update={"payload_keys": SecretStr(f"{A},{B}")})
    async with AsyncExitStack() as stack:
        executor = stack.enter_context(ThreadPoolExecutor(max_workers=16))
        workers: list[Any] = [worker.orchestrator_worker(after, settings, executor)]
        workers += [worker.connector_worker(after, settings, name, executor) for name in BUILTIN]
        for running in workers:
            await stack.enter_async_context(running)
        h.client = after
        result = await send_code(h, request.request_id, code)
        assert result.accepted
        outcome = await after.get_workflow_handle(handle.id, result_type=RequestOutcome).result()
        assert outcome.status is Status.ANSWERED

    events = (await raw.fetch_history()).events
    assert len(events) > written_before

    def key_ids(selected: Sequence[HistoryEvent]) -> set[bytes]:
        return {p.metadata[KEY_ID_METADATA] for p in payloads_of(History(events=selected))}

    assert key_ids(events[:written_before]) == {b"key-a"}
    assert key_ids(events[written_before:]) == {b"key-b"}


async def test_a_deferred_erasure_moves_onto_the_newest_key_when_asked_to_look_again(
    dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]
) -> None:
    """A deferred erasure may wait for years: after a key is added, `hold recheck` makes each
    one continue as new, so its open run holds only the new key's payloads (the old run's
    history keeps the old key until the namespace's retention drops it)."""
    target, namespace = dev_env.client.service_client.config.target_host, dev_env.client.namespace
    before = await Client.connect(target, namespace=namespace,
                                  data_converter=data_converter(Keyring.from_spec(A)))
    async with AsyncExitStack() as stack:
        h = await start_harness(WorkflowEnvironment.from_client(before), tmp_path, mail[0],
                                mail[1], stack, payload_keys=A)
        request = h.controller_erasure()
        handle = await h.submit(request)
        await send_code(h, request.request_id, await emailed_code(h, request.request_id))
        assert (await handle.result()).status is Status.ANSWERED
        h.submitted.clear()  # its deferred erasure must outlive these workers
    raw = (await raw_client(dev_env)).get_workflow_handle(deferred_id(request.request_id))
    first_run = (await raw.describe()).run_id

    after = await Client.connect(target, namespace=namespace,
                                 data_converter=data_converter(Keyring.from_spec(f"{A},{B}")))
    settings = h.settings.model_copy(update={"payload_keys": SecretStr(f"{A},{B}")})
    async with AsyncExitStack() as stack:
        executor = stack.enter_context(ThreadPoolExecutor(max_workers=16))
        for running in [worker.orchestrator_worker(after, settings, executor),
                        worker.connector_worker(after, settings, "sms", executor)]:
            await stack.enter_async_context(running)
        for _ in range(100):  # the list (visibility) shows a new workflow after a moment
            if await officer.recheck_deferred(after):
                break
            await asyncio.sleep(0.1)
        for _ in range(200):
            if (await raw.describe()).run_id != first_run:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the deferred erasure never continued as new")
    old_run = (await raw_client(dev_env)).get_workflow_handle(raw.id, run_id=first_run)
    old, new = [{p.metadata[KEY_ID_METADATA]
                 for p in payloads_of(History(events=(await run.fetch_history()).events))}
                for run in (old_run, raw)]
    assert b"key-a" in old, "the old run, kept until the namespace's retention drops it"
    assert new == {b"key-b"}
    await after.get_workflow_handle(raw.id).terminate("test over")
