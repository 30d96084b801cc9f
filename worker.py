"""Workers. ``python worker.py`` serves the orchestrator (workflows and its own activities on
``dsr-orchestrator``); ``--connector NAME`` serves one affiliate connector on its own task
queue, a built-in one or one the registry makes from a dataset file (refusing to start, the
problems listed, when the file does not fit its entry or the live database); ``--all`` serves
the orchestrator and every such connector in one process (the embedded stack)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.orchestrator import orchestrator_activities
from connectors.builtin import build_connector, served_connectors
from connectors.dataset import DatasetError
from connectors.kit.activities import connector_activities
from dsr import metrics, schedules, search_attributes
from dsr.activity_log import RequestLogInterceptor
from dsr.connector_contract import Connector
from dsr.connector_registry import RegistryError, load_registry
from dsr.converter import RefuseForeignInput
from dsr.database import make_engine
from dsr.files import private_umask
from dsr.keyring import Keyring, KeyringError, load_keyring
from dsr.logging import configure, get_logger
from dsr.policies import PolicyFault, check_catalogue_covers_registry, check_policies
from dsr.sealedblobs import sealed_blob_store
from dsr.settings import Settings, SettingsError, load_settings
from dsr.temporal import connect
from dsr.temporal_token import TokenError
from services.rule_actions import UnrecordedConfirmation, check_confirmations
from workflows.anchor import LedgerAnchorWorkflow
from workflows.deferred import DeferredErasureWorkflow
from workflows.purge import ConfirmationPurgeWorkflow
from workflows.request import RightsRequestWorkflow
from workflows.sweep import RetentionSweepWorkflow

log = get_logger()
WORKFLOWS = [RightsRequestWorkflow, DeferredErasureWorkflow, ConfirmationPurgeWorkflow,
             RetentionSweepWorkflow, LedgerAnchorWorkflow]


def orchestrator_worker(client: Client, settings: Settings, executor: ThreadPoolExecutor) -> Worker:
    engine = make_engine(settings.app_database_url)
    blobs = sealed_blob_store(settings)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        # ignore until activities/orchestrator.py annotates BlobStore (PackageActivities takes any)
        activities=orchestrator_activities(settings, engine, blobs),
        activity_executor=executor,
        interceptors=[RefuseForeignInput(), RequestLogInterceptor()],
        graceful_shutdown_timeout=_grace(settings),
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_runner=_workflow_runner(settings),
    )


def _workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox; with ``worker_passthrough_workflow_modules`` the workflow code is imported
    once instead of for each workflow instance (see dsr/settings.py)."""
    if not settings.worker_passthrough_workflow_modules:
        return SandboxedWorkflowRunner()
    restrictions = SandboxRestrictions.default.with_passthrough_modules("workflows")
    return SandboxedWorkflowRunner(restrictions=restrictions)


def connector_worker(client: Client, settings: Settings, name: str,
                     executor: ThreadPoolExecutor, connector: Connector | None = None) -> Worker:
    """The worker of one connector (built here unless ``connector`` is given)."""
    entry = load_registry(settings.connector_registry).get(name)
    if entry.task_queue is None:
        raise ValueError(f"connector {name} is instructed by email: it has no worker to run")
    if connector is None:
        connector = build_connector(name, settings, sealed_blob_store(settings))
    return Worker(client, task_queue=entry.task_queue,
                  activities=connector_activities(connector), activity_executor=executor,
                  interceptors=[RefuseForeignInput(), RequestLogInterceptor()],
                  graceful_shutdown_timeout=_grace(settings))


def _grace(settings: Settings) -> timedelta:
    """On SIGTERM running activities get this long to finish; what does not is cancelled and
    retried by another worker (rolling updates lose nothing)."""
    return timedelta(seconds=settings.worker_shutdown_grace_seconds)


class MissingSearchAttributes(Exception):
    """The namespace lacks the product's search attributes."""


async def serve(settings: Settings, orchestrator: bool, connectors: list[str],
                keyring: Keyring | None = None, built: dict[str, Connector] | None = None) -> None:
    """Serve until SIGINT or SIGTERM; ``built``: connectors already built (and checked)."""
    runtime = metrics.runtime(settings)
    client = await connect(settings, keyring, runtime)
    absent = await search_attributes.missing(client, settings.temporal_namespace)
    if absent:
        raise MissingSearchAttributes(
            f"namespace {settings.temporal_namespace} lacks the search attributes "
            f"{', '.join(absent)}: run `python starter.py setup-cluster`")
    if orchestrator:
        for problem in await schedules.problems(client, settings):
            log.warning("schedule missing or different", problem=problem,
                        fix="python starter.py setup-cluster")
    executor = ThreadPoolExecutor(max_workers=32)
    built = built or {}
    workers = [connector_worker(client, settings, name, executor, built.get(name))
               for name in connectors]
    if orchestrator:
        workers.append(orchestrator_worker(client, settings, executor))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("workers started", orchestrator=orchestrator, connectors=connectors)
    async with _all(workers), _published(settings, runtime, client, orchestrator, stop):
        await stop.wait()
        log.info("stopping: running activities may finish",
                 grace_seconds=settings.worker_shutdown_grace_seconds)
    log.info("workers stopped")


@contextlib.asynccontextmanager
async def _published(settings: Settings, runtime: Runtime | None, client: Client,
                     orchestrator: bool, stop: asyncio.Event) -> AsyncIterator[None]:
    """The product's gauges, refreshed by the orchestrator worker while metrics are on."""
    if runtime is None or not orchestrator:
        yield
        return
    connectors = [e.name for e in load_registry(settings.connector_registry).connectors]
    task = asyncio.create_task(metrics.publish(
        runtime, make_engine(settings.app_database_url), client, connectors,
        settings.metrics_refresh_seconds, stop))
    try:
        yield
    finally:
        stop.set()
        await task


class _all:
    """Run several workers together and shut them all down on exit."""

    def __init__(self, workers: list[Worker]) -> None:
        self._workers = workers

    async def __aenter__(self) -> None:
        for worker in self._workers:
            await worker.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(w.__aexit__(None, None, None) for w in self._workers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connector", action="append", default=[], metavar="NAME",
                        help="serve this connector (built in, or made from a dataset file by "
                             "its registry entry); repeatable")
    parser.add_argument("--all", action="store_true",
                        help="serve the orchestrator and every connector of those kinds")
    args = parser.parse_args(argv)
    private_umask()
    configure()
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        check_policies(settings)
    except PolicyFault as error:
        print(f"refusing to start: {error}", file=sys.stderr)
        return 2
    try:
        keyring = load_keyring(settings)
    except KeyringError as error:
        print(f"refusing to start: {error}", file=sys.stderr)
        return 2
    try:
        known = served_connectors(load_registry(settings.connector_registry))
    except RegistryError as error:
        print(f"refusing to start: {error}", file=sys.stderr)
        return 2
    unknown = [name for name in args.connector if name not in known]
    if unknown:
        print(f"unknown connector(s): {', '.join(unknown)}; known: {', '.join(known)}",
              file=sys.stderr)
        return 2
    connectors = known if args.all else args.connector
    orchestrator = args.all or not args.connector
    try:  # the orchestrator applies the policy: a connector worker needs no app database
        if orchestrator:
            check_catalogue_covers_registry(settings)
            check_confirmations(settings, make_engine(settings.app_database_url))
    except (PolicyFault, UnrecordedConfirmation) as error:
        print(f"refusing to start: {error}", file=sys.stderr)
        return 2
    try:  # each connector checked (a dataset against its entry and database) before serving
        blobs = sealed_blob_store(settings)
        built = {name: build_connector(name, settings, blobs) for name in connectors}
    except DatasetError as error:
        print(f"refusing to start: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(settings, orchestrator, connectors, keyring, built))
    except (MissingSearchAttributes, search_attributes.SearchAttributeError, TokenError) as error:
        print(f"refusing to start: {error}", file=sys.stderr)
        # Connected once, the Temporal runtime's threads are up: leaving through interpreter
        # finalization aborted the process now and then (SIGABRT instead of 2, seen in CI).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
