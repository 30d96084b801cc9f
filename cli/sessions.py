"""``starter.py ui-session``: an officer's Web UI sessions, through the officer service
(``services.session_actions``): open one for yourself (a one-time link for the browser you use for
the Web UI), list them, end one or all. An administrator also lists and ends anyone's."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.errors import cli_settings, fail
from cli.officers import officer_service
from cli.options import payload
from services.officer_actions import NoArguments
from services.session_actions import SESSIONS, SessionEnd, SessionQuery
from services.workflow_client import OfficerError

console = Console()


def _act(action: str, arguments: BaseModel) -> Any:
    try:
        return asyncio.run(officer_service(cli_settings()).action(action, SESSIONS, arguments))
    except OfficerError as error:
        fail(str(error), 2 if "no live session" in str(error) else 1)


def ui_session(
    officer_id: Annotated[str | None, typer.Option(
        "--officer", help="With --list or --revoke-all: this officer's sessions "
                          "(administrators; others see only their own).")] = None,
    everyone: Annotated[bool, typer.Option(
        "--everyone", help="With --list or --revoke-all: everyone's (administrators).")] = False,
    revoke: Annotated[str | None, typer.Option(
        "--revoke", metavar="SESSION", help="End this session (the id ui-session printed).")
    ] = None,
    revoke_all: Annotated[bool, typer.Option(
        "--revoke-all", help="End every live session of yours (or --officer's, --everyone's)."
    )] = False,
    list_sessions: Annotated[bool, typer.Option("--list", help="List the live sessions.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Open a Web UI session: a one-time link that lets this browser decode payloads in the
    Web UI. Or list the live sessions, or end one or all of them."""
    if sum((revoke is not None, revoke_all, list_sessions)) > 1:
        fail("use one of --revoke, --revoke-all and --list", code=2)
    if (officer_id is not None or everyone) and not (revoke_all or list_sessions):
        fail("--officer and --everyone go with --list or --revoke-all", code=2)
    query = payload(SessionQuery, officer=officer_id, everyone=everyone)
    if list_sessions:
        _print_sessions(_act("list_ui_sessions", query), as_json)
    elif revoke is not None or revoke_all:
        ended = (_act("end_ui_session", payload(SessionEnd, session_id=revoke))
                 if revoke is not None else _act("end_ui_sessions", query))["ended"]
        print(json.dumps({"ended": ended}) if as_json
              else f"ended {ended} session{'s' if ended != 1 else ''}")
    else:
        _print_opened(_act("open_ui_session", NoArguments()), as_json)


def _print_sessions(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("session", "officer", "link opened", "expires")
    for row in rows:
        table.add_row(*(escape(str(row[key]))
                        for key in ("session", "officer", "link_used", "expires_at")))
    console.print(table if rows else "no live session", highlight=False)


def _print_opened(opened: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(opened, indent=2))
        return
    console.print(f"Web UI session {opened['session']} for {escape(opened['officer'])}, valid "
                  f"{opened['hours']} hours. Open this link once, in the browser you use for "
                  "the Web UI (it works once):", highlight=False)
    console.print(opened["link"], highlight=False, soft_wrap=True)
    console.print(f"Then, once, in the Web UI ({escape(opened['web_ui'])}): open the codec "
                  f"server settings, choose a browser endpoint ({opened['codec_endpoint']}) and "
                  "enable \"Include cross-origin credentials\". "
                  "Until it is opened, the link opens the session for anyone who has it: do not "
                  f"share it. End the session with: ui-session --revoke {opened['session']}",
                  highlight=False)
