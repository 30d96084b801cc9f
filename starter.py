"""The privacy officer's CLI: submit, verify, extend, approve or deny, cancel, follow requests,
and run the embedded stack. ``python starter.py --help`` lists the commands."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from cli import following as following_cli
from cli import intake as intake_cli
from cli import updates as updates_cli
from cli.errors import cli_settings, fail
from cli.holds import hold_app
from cli.keys import keys_app
from cli.ledger import ledger_app
from cli.officers import login, officers_app
from cli.records import package, proof
from cli.report import report_command
from cli.rules import rules_app
from cli.sessions import ui_session
from dsr.files import private_umask
from dsr.keyring import KeyringError
from dsr.settings import Settings
from dsr.temporal import connect
from dsr.temporal_token import TokenError
from services import workflow_client as officer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Data-subject-request orchestrator: the privacy officer's commands.")
stack_app = typer.Typer(no_args_is_help=True, help="The embedded stack under var/.")
app.add_typer(stack_app, name="stack")
app.add_typer(ledger_app, name="ledger")
app.add_typer(rules_app, name="rules")
app.add_typer(keys_app, name="keys")
app.add_typer(officers_app, name="officers")
for commands in (intake_cli.COMMANDS, updates_cli.COMMANDS, following_cli.COMMANDS):
    for name, command in commands.items():
        app.command(name)(command)
app.command("login")(login)
app.command("report")(report_command)
app.command("ui-session")(ui_session)
app.add_typer(hold_app, name="hold")
app.command()(package)
app.command()(proof)
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


# The embedded stack and the demo -----------------------------------------------------------


@stack_app.command("up")
def stack_up() -> None:
    """Start Temporal, the mail server and the workers under var/."""
    from services.embedded import start

    _run(start)


@stack_app.command("down")
def stack_down() -> None:
    """Stop everything the stack started."""
    from services import stack

    console.print(stack.down(cli_settings()).describe(), highlight=False)


@stack_app.command("status")
def stack_status() -> None:
    """What is running."""
    from services import stack

    console.print(stack.status(cli_settings()).describe(), highlight=False)


@app.command("setup-cluster")
def setup_cluster(
    cloud: Annotated[bool, typer.Option(
        "--cloud", help="Temporal Cloud: print the tcld commands for the search attributes "
                        "(the SDK cannot add them there) instead of adding them.")] = False,
) -> None:
    """Add the product's search attributes to the namespace and create or update its
    Schedules (purge, retention sweep, ledger anchoring); idempotent, saying what changed."""
    from dsr import schedules, search_attributes

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


@app.command()
def seed(people: int = 300, customers: int = 6) -> None:
    """Seed the reference connectors' stores with realistic fictional data."""
    from cli.demo import seed_stores

    facts = seed_stores(cli_settings(), people=people, customers=customers)
    console.print(f"seeded {people} people across {customers} customers "
                  f"(controller demo customer {facts.controller_account_id})", highlight=False)


@app.command()
def demo() -> None:
    """Start the stack, seed the stores, and run the two demo requests end to end."""
    from cli.demo import run_demo

    _run(run_demo)


def main() -> int:
    private_umask()  # var/ and whatever the officer's commands write: the owner's only
    try:
        app()
    except SystemExit as done:
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
            return 1
        return done.code or 0
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's native threads can abort a short-lived process during interpreter
    # teardown (temporalio/sdk-python#300): leave without it, everything is flushed.
    os._exit(code)
