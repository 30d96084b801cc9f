"""The operator's commands: the embedded stack (``stack up|down|status``), ``setup-cluster``
(search attributes and Schedules), ``seed`` and ``demo``. They hold the product's secrets,
unlike the officers' commands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from cli.demo import run_demo, seed_stores
from cli.errors import cli_settings, fail
from dsr import schedules, search_attributes
from dsr.keyring import KeyringError
from dsr.settings import Settings
from dsr.temporal import connect
from dsr.temporal_token import TokenError
from services import stack
from services import workflow_client as officer
from services.embedded import start

stack_app = typer.Typer(no_args_is_help=True, help="The embedded stack under var/.")
console = Console()
T = TypeVar("T")


def _run(work: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    """The operator's work against Temporal, with the product's secrets."""
    settings = cli_settings()
    try:
        return asyncio.run(work(settings))
    except officer.OfficerError as error:
        fail(str(error))
    except KeyringError as error:
        fail(str(error), code=2)
    except TokenError as error:
        fail(str(error), code=2)
    except RuntimeError as error:
        if "Failed client connect" in str(error) or "connect" in str(error).lower():
            fail(f"cannot reach Temporal at {settings.temporal_address}: "
                 "start the stack with: python starter.py stack up")
        raise
    raise AssertionError("unreachable")


@stack_app.command("up")
def stack_up() -> None:
    """Start Temporal, the mail server and the workers under var/."""
    _run(start)


@stack_app.command("down")
def stack_down() -> None:
    """Stop everything the stack started."""
    console.print(stack.down(cli_settings()).describe(), highlight=False)


@stack_app.command("status")
def stack_status() -> None:
    """What is running."""
    console.print(stack.status(cli_settings()).describe(), highlight=False)


def setup_cluster(
    cloud: Annotated[bool, typer.Option(
        "--cloud", help="Temporal Cloud: print the tcld commands for the search attributes "
                        "(the SDK cannot add them there) instead of adding them.")] = False,
) -> None:
    """Add the product's search attributes to the namespace and create or update its
    Schedules (purge, retention sweep, ledger anchoring); idempotent, saying what changed."""
    async def work(settings: Settings) -> tuple[list[str] | None, list[str]]:
        client = await connect(settings)
        added = (None if cloud
                 else await search_attributes.ensure(client, settings.temporal_namespace))
        changes = await schedules.ensure(client, settings)
        return added, [f"Schedule {entry.schedule_id}: {change}" for entry, change in changes]

    try:
        added, changed = _run(work)
    except search_attributes.SearchAttributeError as error:
        fail(str(error))
    namespace = cli_settings().temporal_namespace
    if added is not None:
        console.print(f"namespace {namespace}: "
                      + (f"added {', '.join(added)}" if added else "search attributes present"),
                      highlight=False)
    console.print("\n".join(changed), highlight=False)
    console.print("On Temporal Cloud, search attributes are added with tcld"
                  + (":" if cloud else " instead:"), highlight=False)
    for command in search_attributes.cloud_commands(namespace):
        print(command)


def seed(people: int = 300, customers: int = 6) -> None:
    """Seed the reference connectors' stores with realistic fictional data."""
    facts = seed_stores(cli_settings(), people=people, customers=customers)
    console.print(f"seeded {people} people across {customers} customers "
                  f"(controller demo customer {facts.controller_account_id})", highlight=False)


def demo() -> None:
    """Start the stack, seed the stores, and run the two demo requests end to end."""
    _run(run_demo)


COMMANDS: dict[str, Callable[..., None]] = {
    "setup-cluster": setup_cluster, "seed": seed, "demo": demo,
}
