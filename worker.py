"""Workers. ``python worker.py`` serves the orchestrator (workflows and its own activities on
``dsr-orchestrator``); ``--connector NAME`` serves one affiliate connector on its own task
queue; ``--all`` serves the orchestrator and every built-in connector in one process (the
embedded stack)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from activities import orchestrator_activities
from connectors.base import connector_activities
from connectors.builtin import BUILTIN, build_connector
from connectors.registry import load_registry
from dsr.activity_log import RequestLogInterceptor
from dsr.codec import Keyring, KeyringError, load_keyring
from dsr.database import make_engine
from dsr.logging import configure, get_logger
from dsr.policies import PolicyFault, check_policies
from dsr.settings import Settings, SettingsError, load_settings
from dsr.temporal import connect
from workflows.deferred import DeferredErasureWorkflow
from workflows.purge import ConfirmationPurgeWorkflow
from workflows.request import RightsRequestWorkflow
from workflows.sweep import RetentionSweepWorkflow

log = get_logger()
WORKFLOWS = [RightsRequestWorkflow, DeferredErasureWorkflow, ConfirmationPurgeWorkflow,
             RetentionSweepWorkflow]


def orchestrator_worker(client: Client, settings: Settings, executor: ThreadPoolExecutor) -> Worker:
    engine = make_engine(settings.app_database_url)
    blobs = settings.blob_store()
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        # ignore until activities/__init__.py annotates BlobStore (PackageActivities takes any)
        activities=orchestrator_activities(settings, engine, blobs),
        activity_executor=executor,
        interceptors=[RequestLogInterceptor()],
    )


def connector_worker(client: Client, settings: Settings, name: str,
                     executor: ThreadPoolExecutor) -> Worker:
    entry = load_registry(settings.connector_registry).get(name)
    if entry.task_queue is None:
        raise ValueError(f"connector {name} is instructed by email: it has no worker to run")
    connector = build_connector(name, settings, settings.blob_store())
    return Worker(client, task_queue=entry.task_queue,
                  activities=connector_activities(connector), activity_executor=executor,
                  interceptors=[RequestLogInterceptor()])


async def serve(settings: Settings, orchestrator: bool, connectors: list[str],
                keyring: Keyring | None = None) -> None:
    client = await connect(settings, keyring)
    executor = ThreadPoolExecutor(max_workers=32)
    workers = [connector_worker(client, settings, name, executor) for name in connectors]
    if orchestrator:
        workers.append(orchestrator_worker(client, settings, executor))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("workers started", orchestrator=orchestrator, connectors=connectors)
    async with _all(workers):
        await stop.wait()
    log.info("workers stopped")


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
                        help=f"serve this connector (one of: {', '.join(BUILTIN)}); repeatable")
    parser.add_argument("--all", action="store_true",
                        help="serve the orchestrator and every built-in connector")
    args = parser.parse_args(argv)
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
    unknown = [name for name in args.connector if name not in BUILTIN]
    if unknown:
        print(f"unknown connector(s): {', '.join(unknown)}; known: {', '.join(BUILTIN)}",
              file=sys.stderr)
        return 2
    connectors = list(BUILTIN) if args.all else args.connector
    orchestrator = args.all or not args.connector
    asyncio.run(serve(settings, orchestrator, connectors, keyring))
    return 0


if __name__ == "__main__":
    sys.exit(main())
