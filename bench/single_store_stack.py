"""The embedded stack for the single-store benchmark (bench/single_store.py): the demo's stack
on free ports in a temporary folder (same server, encryption, ledger, emails and sandbox, the
product's Schedules), whose connector registry holds only the shop (a dataset connector on a
PostgreSQL database) and the customer-account connector (the customers' registered
addresses, where answers go). The orchestrator worker and each connector worker run as
processes of their own, so that each one's CPU is measured apart."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from orch_stack import ROOT, service_pid
from sqlalchemy import Engine
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from cli.demo import seed_stores
from connectors.seeds.demo import DemoFacts
from dsr import rules, schedules
from dsr.assertions import Principal, Role
from dsr.connector_registry import load_registry
from dsr.database import make_engine
from dsr.policies import check_policies
from dsr.provenance import RuleStatus
from dsr.retention import POLICY_DIR
from dsr.settings import Settings
from dsr.temporal import connect
from services import stack
from services.embedded import WORKER
from services.processes import forget, is_ours, start, terminate
from services.rule_actions import RuleConfirmation, record_confirmation
from services.stack_services import define_services

BENCH = Path(__file__).resolve().parent
DATASET = BENCH / "datasets" / "shop.yaml"
CATALOGUE = BENCH / "datasets" / "shop_catalogue.yaml"
CONNECTOR_WORKERS = ("customer_account", "shop")
CONFIRMED = {("authorities.yaml", "judicial_remedy")}  # and the shop's catalogue block
PEOPLE, CUSTOMERS = 300, 6  # the customer-account store as the demo seeds it (6 customers)
SHOP_ENTRY = {
    "name": "shop", "affiliate": "parent", "products": ["Shop"],
    "task_queue": "dsr-connector-shop", "role": "end_user", "identity_types": ["email", "phone"],
    "operations": ["discover", "access", "erase", "rectify", "restrict", "marketing_opt_out",
                   "locate"],
    "categories": ["customer_profile", "orders"], "dataset": str(DATASET),
}


@dataclass(frozen=True)
class ShopStack:
    settings: Settings
    facts: DemoFacts
    pids: dict[str, int]  # the processes measured, by name
    confirmed: list[str]  # the policy drafts confirmed for the run (file, address)


@contextlib.asynccontextmanager
async def single_store_stack(shop_url: str, keep: bool = False,
                             bytecode_cache: bool = True) -> AsyncIterator[ShopStack]:
    """The stack, seeded and serving; the shop's database at ``shop_url`` must hold its
    tables already (a connector worker checks them when it starts). ``bytecode_cache``
    False: the environment's own choice (PYTHONDONTWRITEBYTECODE) stands."""
    folder = Path(tempfile.mkdtemp(prefix="bench-single-store-"))
    registry, policy = write_configuration(folder)
    # Every process of the stack inherits these (services.processes.start). Python caches
    # compiled modules as an installed stack does (in the run's folder, not the sources'),
    # even where PYTHONDONTWRITEBYTECODE is set: without it the sandbox compiles the workflow
    # modules from source for every new workflow.
    env: dict[str, str | None] = {"DSR_CONNECTOR_REGISTRY": str(registry),
                                  "DSR_POLICY_DIR": str(policy), "DSR_CONNECTOR_SHOP_URL": shop_url}
    if bytecode_cache:
        env |= {"PYTHONDONTWRITEBYTECODE": None, "PYTHONPYCACHEPREFIX": str(folder / "pycache")}
    saved = _set_environment(env)
    settings = stack.settings_on_free_ports(folder, connector_registry=registry,
                                            policy_dir=policy)
    workers: dict[str, int] = {}
    try:
        check_policies(settings)
        confirmed = confirm_texts(settings, make_engine(settings.app_database_url))
        stack.up(settings, [sys.executable, str(WORKER)])  # the orchestrator alone
        await schedules.ensure(await connect(settings), settings)  # as the demo's start does
        facts = seed_stores(settings, people=PEOPLE, customers=CUSTOMERS, everything=False)
        for name in CONNECTOR_WORKERS:
            workers[name] = await start_connector_worker(settings, name)
        pids = {"temporal": service_pid(settings, "temporal"),
                "orchestrator worker": service_pid(settings, "worker"),
                "shop worker": workers["shop"],
                "customer-account worker": workers["customer_account"],
                "smtp": service_pid(settings, "mail")}
        pids |= {name: service_pid(settings, name) for name in ("codec", "downloads", "officers")}
        yield ShopStack(settings, facts, pids, confirmed)
    finally:
        for name, pid in workers.items():
            terminate(pid)
            forget(settings, f"{name}-worker")
        stack.down(settings)
        _set_environment(saved)
        if keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _set_environment(changes: dict[str, str | None]) -> dict[str, str | None]:
    """Set (or, for None, remove) variables of this process's environment; returns what
    they were."""
    saved = {name: os.environ.get(name) for name in changes}
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return saved


def write_configuration(folder: Path) -> tuple[Path, Path]:
    """The run's registry (the shop and the customer-account connector) and a copy of the
    shipped policy with the shop's catalogue block added (a draft)."""
    shipped = yaml.safe_load((ROOT / "connectors" / "registry.yaml").read_text())
    accounts = [e for e in shipped["connectors"] if e["name"] == "customer_account"]
    registry = folder / "registry.yaml"
    registry.write_text(yaml.safe_dump({"connectors": [*accounts, SHOP_ENTRY]}))
    load_registry(registry)  # checked now rather than by each worker
    policy = folder / "policy"
    shutil.copytree(POLICY_DIR, policy)
    catalogue = yaml.safe_load((policy / "catalogue.yaml").read_text(encoding="utf-8"))
    catalogue["connectors"] |= yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    (policy / "catalogue.yaml").write_text(
        yaml.safe_dump(catalogue, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return registry, policy


def confirm_texts(settings: Settings, engine: Engine) -> list[str]:
    """Confirm, as Legal would (``starter.py rules confirm``: the ledger first, then the
    file), the drafts the benchmark's answers state: the shop's catalogue texts, and the
    judicial remedy every EU answer names (else each answer waits for an approver's review,
    which the demo gives by hand). Before any worker checks the confirmations."""
    legal = Principal(principal_id="legal.bench", role=Role.LEGAL, nonce="single-store",
                      expires_at=datetime.now(UTC) + timedelta(minutes=5))
    confirmed = []
    for entry in rules.entries(settings.policy_dir):
        wanted = ((entry.file, entry.address) in CONFIRMED
                  or entry.address.startswith("connectors.shop."))
        if wanted and entry.status is RuleStatus.DRAFT:
            record_confirmation(settings, engine, legal,
                     RuleConfirmation(file=entry.file, address=entry.address))
            confirmed.append(f"{entry.file} {entry.address}")
    engine.dispose()
    return confirmed


async def start_connector_worker(settings: Settings, name: str) -> int:
    """``worker.py --connector NAME`` as the stack starts its worker (same environment, pid
    file and log under the data folder), once it polls its task queue."""
    service = next(s for s in define_services(settings, [sys.executable, str(WORKER),
                                                         "--connector", name])
                   if s.name == "worker")
    service = dataclasses.replace(service, name=f"{name}-worker")
    pid = start(settings, service)
    service.ready(settings, service, pid)
    queue = load_registry(settings.connector_registry).get(name).task_queue
    assert queue is not None
    deadline = time.monotonic() + 60
    while not await polled(settings, queue):
        if not is_ours(pid, service.argv) or time.monotonic() > deadline:
            log = settings.data_dir / "log" / f"{service.name}.log"
            raise RuntimeError(f"the {name} worker did not start: see {log}:\n"
                               + log.read_text()[-2000:])
        await asyncio.sleep(0.5)
    return pid


async def polled(settings: Settings, queue: str) -> bool:
    """Whether a worker polls ``queue``'s activity tasks."""
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=settings.temporal_namespace, task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
    return bool(described.pollers)
