"""``starter.py ledger ...``: verifying the audit ledger, as an auditor or administrator
through the officer service (``verify_ledger``, signed with your credential: this machine
needs no secret); recording a database restore, as an administrator (``record_restore``);
anchoring its head, the operator's command on the server."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, NoReturn

import structlog
import typer
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine

from cli.officers import officer_service
from dsr.anchors import AnchorStoreError, anchor_store
from dsr.database import make_engine
from dsr.ledger import LEDGER, VerifyResult, anchor, ledger_key
from dsr.ledger_restore import RestoreRecorded
from dsr.logging import configure
from dsr.settings import Settings, SettingsError, load_settings
from services.officer_actions import RestoreNote
from services.workflow_client import OfficerError, describe_errors

ledger_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit ledger.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ReasonOpt = Annotated[str, typer.Option(
    help="What was restored and why (a backup's date, an incident's reference); the ledger "
         "keeps only a keyed hash of it.")]


def _cli_settings() -> Settings:
    if not structlog.is_configured():  # the operator's log goes to stderr, not into --json
        configure()

    try:
        return load_settings()
    except SettingsError as error:
        _fail(str(error), code=2)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _cli_engine(settings: Settings) -> Engine:
    return make_engine(settings.app_database_url)


def _act(settings: Settings, action: str, arguments: BaseModel | None = None) -> Any:
    try:
        return asyncio.run(officer_service(settings).action(action, LEDGER, arguments))
    except OfficerError as error:
        _fail(str(error))


@ledger_app.command("verify")
def verify_command(as_json: JsonOpt = False) -> None:
    """Recompute the chain and check it against every anchor (through the officer service);
    exit 1 naming the first broken entry, missing range or stale anchor."""
    result = VerifyResult.model_validate(_act(_cli_settings(), "verify_ledger"))
    typer.echo(result.model_dump_json() if as_json else result.describe())
    if not result.ok:
        raise typer.Exit(1)


@ledger_app.command("restored")
def restored_command(reason: ReasonOpt, as_json: JsonOpt = False) -> None:
    """After a database restore, record the entries it lost (an administrator, through the
    officer service): ledger verify then passes and reports the gap."""
    try:
        note = RestoreNote(reason=reason)
    except ValidationError as error:
        _fail(describe_errors(error, "the reason"), code=2)
    recorded = RestoreRecorded.model_validate(_act(_cli_settings(), "record_restore", note))
    if as_json:
        typer.echo(recorded.model_dump_json())
        return
    lost = (str(recorded.lost_from) if recorded.lost_from == recorded.lost_to
            else f"{recorded.lost_from}-{recorded.lost_to}")
    typer.echo(f"recorded as entry {recorded.seq}: entries {lost} were lost in the restore "
               f"(the chain ended at entry {recorded.chain_end}); ledger verify reports "
               "this gap from now on")


@ledger_app.command("anchor")
def anchor_command(as_json: JsonOpt = False) -> None:
    """Anchor the chain head now (the operator, with the server secret; the hourly Schedule
    and the daily purge also do this)."""
    settings = _cli_settings()
    try:
        store = anchor_store(settings)
        head = anchor(_cli_engine(settings), ledger_key(settings.secret), store)
    except AnchorStoreError as error:
        _fail(str(error))
    typer.echo(head.model_dump_json() if as_json else f"anchored seq {head.seq} in "
                                                      f"{store.where()}")
