"""``starter.py ledger ...``: verifying the audit ledger, as an auditor or administrator
through the officer service (``verify_ledger``, signed with your credential: this machine
needs no secret); anchoring its head, the operator's command on the server."""

from __future__ import annotations

import asyncio
from typing import Annotated

import structlog
import typer
from sqlalchemy import Engine

from dsr.ledger import LEDGER, VerifyResult, anchor, anchors_path, ledger_key
from dsr.officer import OfficerError
from dsr.officers_cli import officer_service
from dsr.settings import Settings

ledger_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit ledger.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _cli_settings() -> Settings:
    from dsr.logging import configure
    from dsr.settings import SettingsError, load_settings

    if not structlog.is_configured():  # the operator's log goes to stderr, not into --json
        configure()

    try:
        return load_settings()
    except SettingsError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


def _cli_engine(settings: Settings) -> Engine:
    from dsr.database import make_engine

    return make_engine(settings.app_database_url)


@ledger_app.command("verify")
def verify_command(as_json: JsonOpt = False) -> None:
    """Recompute the chain (through the officer service); exit 1 naming the first broken
    entry."""
    settings = _cli_settings()
    try:
        answer = asyncio.run(officer_service(settings).action("verify_ledger", LEDGER))
    except OfficerError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    result = VerifyResult.model_validate(answer)
    typer.echo(result.model_dump_json() if as_json else result.describe())
    if not result.ok:
        raise typer.Exit(1)


@ledger_app.command("anchor")
def anchor_command(as_json: JsonOpt = False) -> None:
    """Anchor the chain head now (the operator, with the server secret; the daily purge also
    does this)."""
    settings = _cli_settings()
    head = anchor(_cli_engine(settings), ledger_key(settings.secret), anchors_path(settings))
    typer.echo(
        head.model_dump_json()
        if as_json
        else f"anchored seq {head.seq} in {anchors_path(settings)}"
    )
