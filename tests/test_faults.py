"""Requests survive crashes, a server restart and a mail outage, without loss or double effects.

Real processes on the embedded stack (dev server with its SQLite file, SMTP server), with the
orchestrator worker and one worker for every reference connector as separate processes:

* 200 requests in flight across all reference connectors (customers' erasures of their end
  users' data through the API, account holders' access through the privacy panel). Worker
  processes are killed with SIGKILL four times, at moments drawn from a seed that is printed
  (``DSR_FAULT_SEED`` replays a run) and each shown, from the audit ledger, to land while
  requests are executing; the dev server is stopped and started again once. Every request
  completes; each connector acted once per request (its operation log and the workflows'
  outcomes agree); each answer has the Message-ID derived from its request, and no request
  has two different answers.
* The SMTP server down for a while, then back: no request fails, every email goes out.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest
from temporalio.client import Client

from cli.demo import seed_stores
from connectors.builtin import BUILTIN
from connectors.seeds.population import Population, make_population
from dsr.models import RightsRequest, parse_request
from dsr.settings import Settings
from dsr.signers import door_signer
from dsr.status import Status
from dsr.temporal import connect
from services import stack
from services import workflow_client as officer
from tests.conftest import ROOT, legal_confirmations
from tests.connectors.helpers import store_table
from workflows.models import ConnectorStatus, RequestOutcome

REQUESTS = 200
ACCESS_SHARE = 0.15  # the rest are customers' erasures
KILLS = ("orchestrator", "connectors", "orchestrator", "connectors")
RESTART_SERVER_AFTER_KILL = 2
PEOPLE, CUSTOMERS = 300, 6
RESULT_TIMEOUT = 900


@dataclass
class Workers:
    """The orchestrator worker and the connector worker, as processes we may kill."""

    settings: Settings
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    policy: dict[str, str] = field(default_factory=dict)  # Legal's, recorded at first start

    def start(self, kind: str, **env: str) -> subprocess.Popen[bytes]:
        """``connectors`` serves every built-in connector; any other kind, the orchestrator."""
        args = ["--connector" if i % 2 == 0 else name
                for name in BUILTIN for i in range(2)] if kind == "connectors" else []
        log = (self.settings.data_dir / "log" / f"{kind}.log").open("ab")
        self.processes[kind] = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py"), *args], cwd=ROOT,
            env=self._env() | env, stdout=log, stderr=subprocess.STDOUT)
        return self.processes[kind]

    def restart_exited(self) -> None:
        """A worker started while the server was down exits (as under a supervisor, which
        would start it again): start it again."""
        for kind, process in list(self.processes.items()):
            if process.poll() is not None:
                self.start(kind)

    def kill(self, kind: str) -> None:
        process = self.processes.pop(kind)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait(timeout=20)
        self.processes.clear()

    def _env(self) -> dict[str, str]:
        s = self.settings
        self.policy = self.policy or legal_confirmations(s)
        return {**{k: v for k, v in os.environ.items() if not k.startswith("DSR_")},
                "DSR_DATA_DIR": str(s.data_dir.resolve()), "DSR_LOG_FORMAT": "json",
                "DSR_TEMPORAL_ADDRESS": s.temporal_address, "DSR_SMTP_PORT": str(s.smtp_port),
                "DSR_CONNECTOR_HEARTBEAT_SECONDS": "5", "DSR_CONNECTOR_RETRY_SECONDS": "0.5",
                "DSR_SETTINGS_FILE": str(s.data_dir / "none.env")} | self.policy


@dataclass
class Stack:
    settings: Settings
    workers: Workers
    population: Population


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = stack.settings_on_free_ports(tmp_path_factory.mktemp("faults"))
    workers = Workers(settings)
    try:
        stack.up(settings, [])
        seed_stores(settings, people=PEOPLE, customers=CUSTOMERS)
        workers.start("orchestrator")
        workers.start("connectors")
        yield Stack(settings, workers, make_population(PEOPLE, CUSTOMERS))
    finally:
        workers.stop_all()
        stack.down(settings)


# The requests ----------------------------------------------------------------------------------


def _requests(population: Population, rng: random.Random, count: int) -> list[RightsRequest]:
    now = datetime.now(UTC).isoformat()
    pairs = [(user, customer) for user in population.end_users for customer in user.customers]
    chosen = rng.sample(pairs, count - int(count * ACCESS_SHARE))
    requests = [parse_request({
        "request_id": f"F-ERASE-{n:03d}", "rights": ["erasure"], "channel": "api",
        "identities": [{"type": "phone", "value": user.phone},
                       {"type": "email", "value": user.email}],
        "jurisdiction": "EU", "received_at": now,
        "requester": {"kind": "controller", "email": f"privacy@{customer.lower()}.example",
                      "customer_account": customer},
    }) for n, (user, customer) in enumerate(chosen)]
    requests += [parse_request({
        "request_id": f"F-ACCESS-{n:03d}", "rights": ["access"], "channel": "privacy_panel",
        "identities": [{"type": "account_id", "value": population.customers[n % CUSTOMERS]}],
        "jurisdiction": "EU", "received_at": now, "last_login_at": now,
        "requester": {"kind": "subject", "email": f"holder{n}@example.org"},
    }) for n in range(count - len(requests))]
    return requests


async def _submit_all(client: Client, settings: Settings, requests: list[RightsRequest]) -> None:
    for start in range(0, len(requests), 25):
        await asyncio.gather(*(officer.submit(client, settings, r,
                                              door=door_signer(settings, r.channel))
                               for r in requests[start:start + 25]))


# The ledger: where the requests stand ----------------------------------------------------------


def _steps(settings: Settings) -> dict[str, set[str]]:
    """Each request's milestone steps so far, from the audit ledger."""
    found: dict[str, set[str]] = {}
    with sqlite3.connect(settings.data_dir / "dsr.db", timeout=10) as db:
        rows = db.execute("SELECT request_id, json_extract(detail, '$.step') FROM ledger "
                          "WHERE kind = 'milestone'").fetchall()
    for request_id, step in rows:
        found.setdefault(request_id, set()).add(step)
    return found


def _progress(settings: Settings) -> tuple[int, int]:
    """(requests executed, requests executing: discovered but not yet executed)."""
    steps = _steps(settings).values()
    executed = sum("execute" in s for s in steps)
    return executed, sum("discover" in s and "execute" not in s for s in steps)


@dataclass(frozen=True)
class Kill:
    kind: str
    executed: int
    executing: int


async def _kill_at(stack_: Stack, kind: str, threshold: int, rng: random.Random) -> Kill:
    """Kill ``kind`` once ``threshold`` requests are executed and others are executing."""
    for _ in range(6000):
        executed, executing = _progress(stack_.settings)
        if executed >= threshold and executing > 0:
            stack_.workers.kill(kind)
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            stack_.workers.start(kind)
            return Kill(kind, executed, executing)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no moment to kill the {kind} worker at {threshold} executed")


def _restart_server(settings: Settings) -> None:
    stack.stop(settings, "temporal")
    stack.up(settings, [])


# The checks --------------------------------------------------------------------------------


def _operations(settings: Settings, request_ids: set[str]) -> dict[tuple[str, str], int]:
    """(request, connector) -> how many erase or access operations its store recorded."""
    counts: dict[tuple[str, str], int] = {}
    for name in BUILTIN:
        path = settings.data_dir / "connectors" / f"{name}.db"
        if not path.exists():
            continue
        with sqlite3.connect(path) as db:
            log = store_table(name, "operation_log")
            rows = db.execute(f"SELECT request_id, operation FROM {log} "
                              "WHERE operation IN ('erase', 'access')").fetchall()
        for request_id, _ in rows:
            if request_id in request_ids:
                counts[(request_id, name)] = counts.get((request_id, name), 0) + 1
    return counts


def _acted(outcomes: list[RequestOutcome]) -> set[tuple[str, str]]:
    return {(o.request_id, c.connector) for o in outcomes for c in o.connectors
            if c.status is ConnectorStatus.DONE and any(c.records.values())}


def _answers(settings: Settings) -> dict[str, set[str]]:
    """Message-ID -> the distinct bodies of the answers carrying it."""
    found: dict[str, set[str]] = {}
    for path in settings.mail_dir.rglob("*.eml"):
        with path.open("rb") as file:
            message = BytesParser(policy=policy.default).parse(file)
        message_id = str(message["Message-ID"])
        if message_id.startswith("<answer."):
            body = message.get_body(("plain",))
            found.setdefault(message_id, set()).add(body.get_content() if body else "")
    return found


def _fault_seed() -> int:
    seed = int(os.environ.get("DSR_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"fault seed: DSR_FAULT_SEED={seed}")
    return seed


async def test_requests_survive_killed_workers_and_a_server_restart(running: Stack) -> None:
    seed = _fault_seed()
    rng = random.Random(seed)
    requests = _requests(running.population, rng, REQUESTS)
    client = await connect(running.settings)
    await _submit_all(client, running.settings, requests)

    thresholds = sorted(int(rng.uniform(0.05, 0.6) * REQUESTS) for _ in KILLS)
    kills = []
    for number, (kind, threshold) in enumerate(zip(KILLS, thresholds, strict=True), start=1):
        kills.append(await _kill_at(running, kind, threshold, rng))
        if number == RESTART_SERVER_AFTER_KILL:
            _restart_server(running.settings)
            running.workers.restart_exited()
            client = await connect(running.settings)

    outcomes = await asyncio.wait_for(asyncio.gather(*(
        client.get_workflow_handle(officer.workflow_id(r.request_id),
                                   result_type=RequestOutcome).result()
        for r in requests)), RESULT_TIMEOUT)

    context = f"seed {seed}, kills {kills}"
    print(f"kills (worker, requests executed, executing): {kills}")
    assert all(k.executing > 0 for k in kills), f"each kill landed mid-execution: {context}"
    assert [o.status for o in outcomes] == [Status.ANSWERED] * REQUESTS, context
    operations = _operations(running.settings, {r.request_id for r in requests})
    assert set(operations) == _acted(outcomes), f"stores and outcomes agree: {context}"
    assert set(operations.values()) == {1}, f"each connector acted once per request: {context}"
    assert {c for _, c in operations} >= {"sms", "customer_account"}, "across the connectors"
    answers = _answers(running.settings)
    assert set(answers) == {f"<answer.{r.request_id}@dsr>" for r in requests}
    assert all(len(bodies) == 1 for bodies in answers.values()), "no two different answers"


async def test_emails_wait_for_the_smtp_server_and_no_request_fails(running: Stack) -> None:
    settings = running.settings
    stack.stop(settings, "mail")
    now = datetime.now(UTC).isoformat()
    requests = [parse_request({
        "request_id": f"F-SMTP-{n}", "rights": ["access"], "channel": "privacy_panel",
        "identities": [{"type": "account_id", "value": running.population.customers[n]}],
        "jurisdiction": "EU", "received_at": now, "last_login_at": now,
        "requester": {"kind": "subject", "email": f"outage{n}@example.org"},
    }) for n in range(CUSTOMERS)]
    client = await connect(settings)
    handles = [await officer.submit(client, settings, r, door=door_signer(settings, r.channel))
               for r in requests]
    await asyncio.sleep(8)  # the acknowledgements are being retried
    assert not any(p.read_bytes().count(b"F-SMTP-") for p in settings.mail_dir.rglob("*.eml"))
    stack.up(settings, [])

    outcomes = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 300)
    assert [o.status for o in outcomes] == [Status.ANSWERED] * len(requests)
    sent = _message_ids(settings)
    for request in requests:
        rid = request.request_id
        assert {f"<acknowledgement.{rid}@dsr>", f"<answer.{rid}@dsr>"} <= sent, rid


def _message_ids(settings: Settings) -> set[str]:
    ids: set[str] = set()
    for path in settings.mail_dir.rglob("*.eml"):
        with path.open("rb") as file:
            ids.add(str(BytesParser(policy=policy.default).parse(file)["Message-ID"]))
    return ids
