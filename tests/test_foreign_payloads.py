"""Only the product's own payloads are trusted, and a foreign one never breaks a request.

An attacker with nothing but network access to the Temporal frontend (no payload keys) uses
the SDK's default converter against the real dev server and the product's real workers: a
start, an Update, a Signal and a connector task answered in plaintext, and a payload copied
from one workflow into another. Each is refused where it lands; a genuine request beside it
completes; the product writes nothing of what was refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.converter import WorkflowSerializationContext
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import worker
from cli.keys import KeyInUse, key_holders, retire
from connectors.builtin import BUILTIN
from dsr.codec import Binding, EncryptionCodec
from dsr.connector_contract import AccessResult, CategoryHolding, Discovery
from dsr.connector_registry import load_registry
from dsr.converter import data_converter
from dsr.keyring import Keyring, new_key
from dsr.models import RightsRequest
from dsr.sealedblobs import sealed_blob_store
from dsr.status import Status
from services.mail_server import MailFolder
from tests.conftest import TEST_KEYRING, Harness, start_harness
from tests.test_codec import raw_client
from tests.test_payload_binding import LEGACY
from tests.test_requests_e2e import emailed_code, send_code, wait_for_connector, wait_for_status
from workflows.deferred import DeferredErasureWorkflow, DeferredInput, Recheck
from workflows.deferred import workflow_id as deferred_id
from workflows.models import ConnectorStatus, OfficerNote, RequestInput, RequestOutcome

ATTACKER = "attacker@evil.example"


def events_of(history: Any, kind: int) -> list[Any]:
    return [event for event in history.events if event.event_type == kind]


def app_tables(h: Harness) -> str:
    with sqlite3.connect(h.settings.data_dir / "dsr.db") as database:
        tables = [row[0] for row in database.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(database.execute(f'SELECT * FROM "{t}"').fetchall())
                         for t in tables)


def forged_request(h: Harness) -> RightsRequest:
    """A real account holder's email as the identity, the attacker's as the requester's."""
    return h.request(rights=["access"], channel="email", last_login_at=None,
                     identities=[{"type": "email", "value": h.facts.account_holder_email}],
                     requester={"kind": "subject", "email": ATTACKER})


def api_erasure(h: Harness) -> RightsRequest:
    """A customer's erasure instruction through the API: no code or officer step."""
    return h.controller_erasure(channel="api")


async def test_a_keyless_start_fails_at_its_first_task_sending_nothing(
        harness: Harness, dev_env: WorkflowEnvironment) -> None:
    h = harness
    genuine = await h.submit(api_erasure(h))
    forged = forged_request(h)
    raw = await raw_client(dev_env)
    started = await raw.start_workflow(
        "RightsRequest", RequestInput(request=forged).model_dump(mode="json"),
        id=f"dsr-{forged.request_id}", task_queue=h.settings.task_queue)
    with pytest.raises(WorkflowFailureError) as failed:
        await h.client.get_workflow_handle(started.id).result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ForeignPayload"
    assert "unencrypted" in cause.message and "json/plain" in cause.message
    history = await started.fetch_history()
    assert not events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    assert not events_of(history, EventType.EVENT_TYPE_MARKER_RECORDED)  # no local activity
    assert (await genuine.result()).status is Status.ANSWERED
    assert not h.mail.find(header=("To", ATTACKER))
    assert not [m for m in h.mail.messages() if forged.request_id in str(m["Message-ID"])]
    written = app_tables(h)
    assert forged.request_id not in written and ATTACKER not in written
    assert h.facts.account_holder_email not in written


async def test_a_keyless_or_copied_update_is_rejected_and_the_request_goes_on(
        harness: Harness, dev_env: WorkflowEnvironment) -> None:
    h = harness
    request = h.controller_erasure()
    handle = await h.submit(request)
    code = await emailed_code(h, request.request_id)
    await wait_for_status(h, request.request_id, Status.AWAITING_VERIFICATION)
    forged = {"officer": "officer.tan", "note": "checked on the phone"}
    raw = (await raw_client(dev_env)).get_workflow_handle(handle.id)
    with pytest.raises(WorkflowUpdateFailedError):
        await raw.execute_update("mark_verified", forged)
    # The product's own payload, made for another request (as a sniffed Update would be).
    elsewhere = EncryptionCodec(TEST_KEYRING).with_context(
        WorkflowSerializationContext(namespace=h.client.namespace, workflow_id="dsr-other"))
    [copied] = await elsewhere.encode(
        h.client.data_converter.payload_converter.to_payloads([OfficerNote(**forged)]))
    with pytest.raises(WorkflowUpdateFailedError):
        await raw.execute_update("mark_verified", RawValue(copied))
    status = await h.status(request.request_id)
    assert status.status is Status.AWAITING_VERIFICATION
    assert set(status.verification.values()) == {"pending"}
    history = await raw.fetch_history()
    assert not events_of(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    assert "officer.tan" not in app_tables(h)
    assert (await send_code(h, request.request_id, code)).accepted
    assert (await handle.result()).status is Status.ANSWERED


async def test_a_start_copied_from_another_workflow_fails(
        harness: Harness, dev_env: WorkflowEnvironment) -> None:
    h = harness
    genuine = await h.submit(api_erasure(h))
    [started] = events_of(await genuine.fetch_history(),
                          EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    [payload] = started.workflow_execution_started_event_attributes.input.payloads
    raw = await raw_client(dev_env)
    copy = await raw.start_workflow("RightsRequest", RawValue(payload),
                                    id=f"{genuine.id}-copy", task_queue=h.settings.task_queue)
    with pytest.raises(WorkflowFailureError) as failed:
        await h.client.get_workflow_handle(copy.id).result()
    assert "other-workflow" in str(failed.value.cause)
    assert (await genuine.result()).status is Status.ANSWERED


async def test_a_keyless_signal_is_dropped_and_logged(
        harness: Harness, dev_env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture) -> None:
    h = harness
    request = api_erasure(h)
    h.submitted.append(request.request_id)
    deferred = await h.client.start_workflow(
        DeferredErasureWorkflow.run,
        DeferredInput(request=request, parts=[], erase_before=request.received_at),
        id=deferred_id(request.request_id), task_queue=h.settings.task_queue)
    raw = (await raw_client(dev_env)).get_workflow_handle(deferred.id)
    with caplog.at_level(logging.WARNING):
        await raw.signal("recheck", {"reason": "now"})
        await raw.signal("recheck")  # no payload at all
        await _until_logged(caplog, "recheck without a payload dropped")
    dropped = [r for r in caplog.records if "dropping the signal" in r.getMessage()]
    assert dropped and deferred.id in dropped[0].getMessage()
    error = dropped[0].exc_info[1] if dropped[0].exc_info else None
    assert isinstance(error, ApplicationError) and "json/plain" in error.message
    history = await raw.fetch_history()
    assert len(events_of(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)) == 2
    assert not events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    await deferred.signal("recheck", Recheck(reason="test"))  # the product's own: it looks again
    for _ in range(100):
        if events_of(await raw.fetch_history(), EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the product's own recheck was not acted on")


async def _until_logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    for _ in range(100):
        if any(text in record.getMessage() for record in caplog.records):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never logged: {text}")


async def without_sms(env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder],
                      stack: AsyncExitStack, **overrides: Any) -> tuple[Harness, str]:
    """The product's workers but the SMS connector's, and the queue its tasks wait on."""
    h = await start_harness(env, tmp_path, mail[0], mail[1], stack,
                            in_process=[n for n in BUILTIN if n != "sms"], **overrides)
    sms_queue = load_registry(h.settings.connector_registry).get("sms").task_queue
    assert sms_queue is not None
    return h, sms_queue


def forging_worker(raw: Client, task_queue: str, answered: asyncio.Event) -> Worker:
    """A keyless poller on a connector's queue, answering every task in plaintext."""

    @activity.defn(dynamic=True)
    async def forged(args: Sequence[RawValue]) -> dict[str, Any]:
        answered.set()
        return {"connector": "sms", "records": 999, "categories": {"messages": 999}}

    return Worker(raw, task_queue=task_queue, activities=[forged], max_concurrent_activities=1)


def scheduled_calls(history: Any) -> list[str]:
    return [e.activity_task_scheduled_event_attributes.activity_type.name
            for e in events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)]


async def test_a_connector_task_answered_in_plaintext_is_called_again(
        dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    async with AsyncExitStack() as stack:
        h, sms_queue = await without_sms(dev_env, tmp_path, mail, stack)
        answered = asyncio.Event()
        async with forging_worker(await raw_client(dev_env), sms_queue, answered):
            handle = await h.submit(api_erasure(h))
            await asyncio.wait_for(answered.wait(), 30)
        executor = stack.enter_context(ThreadPoolExecutor(max_workers=4))
        await stack.enter_async_context(
            worker.connector_worker(h.client, h.settings, "sms", executor))
        outcome: RequestOutcome = await handle.result()
        assert outcome.status is Status.ANSWERED
        [sms] = [c for c in outcome.connectors if c.connector == "sms"]
        assert sms.status.value == "done" and 999 not in sms.records.values()
        assert scheduled_calls(await handle.fetch_history()).count("sms.discover") == 2


async def test_a_connector_answered_only_in_plaintext_is_shown_to_the_officer(
        dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    async with AsyncExitStack() as stack:
        h, sms_queue = await without_sms(dev_env, tmp_path, mail, stack, connector_max_attempts=2)
        async with forging_worker(await raw_client(dev_env), sms_queue, asyncio.Event()):
            request = api_erasure(h)
            handle = await h.submit(request)
            await wait_for_connector(h, request.request_id, ConnectorStatus.FAILED, "sms")
        [sms] = [c for c in (await h.status(request.request_id)).connectors
                 if c.connector == "sms"]
        assert sms.error == "discover failed: its result was not the product's"
        assert scheduled_calls(await handle.fetch_history()).count("sms.discover") == 2
        await h.mail.wait_for(header=("Message-ID",
                                      f"<officer_connector_failed.sms.{request.request_id}@dsr>"))
        await h.update(request.request_id, "cancel",
                             OfficerNote(officer="Ada", note="test over"))


async def test_an_export_naming_another_requests_blob_is_refused_and_nothing_deleted(
        dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    """An affiliate's connector (holding keys) answers an access call with another request's
    export: the workflow refuses the result and shows the connector to the officer."""
    async with AsyncExitStack() as stack:
        h, sms_queue = await without_sms(dev_env, tmp_path, mail, stack, connector_max_attempts=2)
        victim = sealed_blob_store(h.settings)
        with victim.open_writer("exports/T-victim/sms.jsonl") as sink:
            sink.write(b'{"body": "the victim\'s message"}\n')

        @activity.defn(name="sms.discover")
        async def discover(scope: Any) -> Discovery:
            return Discovery(connector="sms",
                             holdings=[CategoryHolding(category="messages", records=1)])

        @activity.defn(name="sms.access")
        async def access(call: Any) -> AccessResult:
            return AccessResult(connector="sms", records={"messages": 1},
                                blob_ref="blob:exports/T-victim/sms.jsonl")

        async with Worker(h.client, task_queue=sms_queue, activities=[discover, access]):
            request = h.controller_erasure(channel="api", rights=["access"])
            await h.submit(request)
            await wait_for_connector(h, request.request_id, ConnectorStatus.FAILED, "sms")
        [sms] = [c for c in (await h.status(request.request_id)).connectors
                 if c.connector == "sms"]
        assert sms.error == "access failed: its export lies outside this request's area"
        assert victim.exists("blob:exports/T-victim/sms.jsonl")
        await h.update(request.request_id, "cancel",
                             OfficerNote(officer="Ada", note="test over"))


async def test_an_old_unbound_payload_is_read_until_its_key_is_retired(
        dev_env: WorkflowEnvironment, tmp_path: Path, mail: tuple[int, MailFolder]) -> None:
    key_file = tmp_path / "payload-keys"
    key_file.write_text(f"{LEGACY}\n" + TEST_KEYRING.spec())
    both = await Client.connect(
        dev_env.client.service_client.config.target_host, namespace=dev_env.client.namespace,
        data_converter=data_converter(Keyring.from_spec(key_file.read_text())))
    async with AsyncExitStack() as stack:
        h = await start_harness(WorkflowEnvironment.from_client(both), tmp_path, mail[0],
                                mail[1], stack, payload_keys=None, payload_key_file=key_file)
        request = h.controller_erasure()
        before_binding = await _client_before_binding(dev_env)
        handle = await before_binding.start_workflow(
            "RightsRequest", RequestInput(request=request), id=f"dsr-{request.request_id}",
            task_queue=h.settings.task_queue)
        h.submitted.append(request.request_id)
        code = await emailed_code(h, request.request_id)  # its unbound input was read
        assert handle.id in await key_holders(h.client, "legacy-key")
        with pytest.raises(KeyInUse, match=handle.id):
            await retire(h.settings, h.client, "legacy-key")
        assert "legacy-key" in key_file.read_text()
        assert (await send_code(h, request.request_id, code)).accepted
        await h.client.get_workflow_handle(handle.id).result()
        message = await retire(h.settings, h.client, "legacy-key")
        assert "retired" in message and "legacy-key" not in key_file.read_text()


class ForeignCodec(EncryptionCodec):
    """Sends payloads that are not the product's, of one kind (a refusal reason), and reads
    what comes back as the product does: what a sender without the right keys would send,
    with the product's reason for refusing it made readable for the test."""

    def __init__(self, kind: str, context: Any = None) -> None:
        super().__init__(TEST_KEYRING)
        self.kind, self.where = kind, context

    def with_context(self, context: Any) -> Any:
        return type(self)(self.kind, context)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self.kind == "unencrypted":
            return list(payloads)
        if self.kind == "unbound":
            return await EncryptionCodec(TEST_KEYRING).encode(payloads)
        if self.kind == "unknown-key":
            return await EncryptionCodec(Keyring([new_key("stolen")]), Binding.of(
                self.where)).encode(payloads)
        other = WorkflowSerializationContext(namespace=self.where.namespace,
                                             workflow_id="dsr-other")
        bound = EncryptionCodec(TEST_KEYRING).with_context(
            other if self.kind == "other-workflow" else self.where)
        sealed = await bound.encode(payloads)
        if self.kind == "unauthenticated":
            sealed = [Payload(metadata=dict(p.metadata), data=p.data[:-1] + bytes([p.data[-1] ^ 1]))
                      for p in sealed]
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await EncryptionCodec(TEST_KEYRING).with_context(self.where).decode(payloads)


def foreign_client(client: Client, kind: str) -> Client:
    config = client.config()
    config["data_converter"] = dataclasses.replace(client.data_converter,
                                                   payload_codec=ForeignCodec(kind))
    return Client(**config)


class _UnboundCodec(EncryptionCodec):
    """The codec as it was before binding: no context, no binding."""

    def with_context(self, context: Any) -> Any:
        return self


async def _client_before_binding(env: WorkflowEnvironment) -> Client:
    converter = data_converter(Keyring.from_spec(LEGACY))
    converter = converter.__class__(
        payload_converter_class=converter.payload_converter_class,
        payload_codec=_UnboundCodec(Keyring.from_spec(LEGACY)),
        failure_converter_class=converter.failure_converter_class)
    return await Client.connect(env.client.service_client.config.target_host,
                                namespace=env.client.namespace, data_converter=converter)
