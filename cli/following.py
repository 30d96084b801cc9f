"""Following requests: ``status`` (from Temporal while a request runs, from the register
after), ``list`` (the register) and ``revoke-link``, through the officer service."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.errors import fail
from cli.options import JsonOpt, RequestIdArg, act
from dsr import register
from dsr.models import Jurisdiction, Right
from dsr.status import Status
from services import workflow_client as officer
from services.officer_actions import REGISTER, LinkRevocation, RecordQuery
from workflows.models import ChildMarker, RequestStatus

console = Console()


def status(request_id: RequestIdArg, as_json: JsonOpt = False) -> None:
    """Where a request stands: from Temporal while it runs, from the register after."""
    answer = act("read_status", officer.workflow_id(request_id),
                  RecordQuery(request_id=request_id))
    if "register" in answer:
        if as_json:
            print(json.dumps(answer["register"], indent=2))
        else:
            _print_register_status(answer["register"])
        return
    result = RequestStatus.model_validate(answer["temporal"])
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        _print_status(result)


def _print_status(result: Any) -> None:
    console.print(f"[bold]{result.request_id}[/bold]  {result.status.value}  "
                  f"{', '.join(result.rights)}  {result.jurisdiction}  "
                  f"due {result.due_at:%Y-%m-%d}"
                  + ("  [red]OVERDUE[/red]" if result.overdue else "")
                  + ("  [yellow]rules unconfirmed[/yellow]" if result.rules_unconfirmed else ""))
    if result.retention_undecided:
        console.print("[yellow]retention decision needed:[/yellow] "
                      + "; ".join(result.retention_undecided)
                      + " (a draft rule would keep it: `starter.py retention-decision`)",
                      highlight=False)
    if result.held_for_review:
        console.print("[yellow]answer held for review:[/yellow] "
                      + "; ".join(result.held_for_review)
                      + " (release it with `starter.py release-answer`)", highlight=False)
    if result.possible_duplicate_of:
        console.print("[yellow]possible duplicate of[/yellow] "
                      f"{', '.join(result.possible_duplicate_of)} (same subject, same right, "
                      "within 30 days): check before answering twice", highlight=False)
    if result.child is not None:
        _print_child(result.child)
    table = Table("step", "status", "at", "detail")
    for step in result.steps:
        table.add_row(step.name, step.status.value,
                      f"{step.at:%Y-%m-%d %H:%M}" if step.at else "", escape(step.detail or ""))
    console.print(table)
    if result.connectors:
        connectors = Table("connector", "status", "records", "note")
        for c in result.connectors:
            records = ", ".join(f"{k}={v}" for k, v in c.records.items())
            connectors.add_row(c.connector, c.status.value, records,
                               escape(c.error or c.resolution_reason or ""))
        console.print(connectors)


def _print_child(child: ChildMarker) -> None:
    """The erasure review a report about a child's data started, and its target."""
    draft = " (draft: rules unconfirmed)" if child.target_status == "draft" else ""
    decision = {"erase": "erase (an approver confirmed it)",
                "keep": "keep (an approver dropped the erasure the report added)",
                None: ("awaiting an approver (child-review)" if child.erasure == "added"
                       else "erasure asked by the requester")}[child.decision]
    console.print(f"[magenta]CHILD[/magenta] erasure review: {decision}; target "
                  f"{child.target_on:%Y-%m-%d}{draft}", highlight=False)


def _print_register_status(result: dict[str, Any]) -> None:
    console.print(f"[bold]{result['request_id']}[/bold]  {result['status']}  "
                  f"{', '.join(result['rights'])}  {result['jurisdiction']}  (from the register)"
                  + ("  [magenta]CHILD[/magenta]" if result.get("child") else ""))
    table = Table("step", "at", "actor", "detail")
    for m in result["milestones"]:
        at = datetime.fromisoformat(m["at"]) if isinstance(m["at"], str) else m["at"]
        # Officers' notes and actors are free text, not markup: "[/x]" would stop rich.
        table.add_row(m["step"], f"{at:%Y-%m-%d %H:%M}", escape(m["actor"]),
                      escape(json.dumps(m["detail"], ensure_ascii=False)))
    console.print(table)


def revoke_link(
    request_id: RequestIdArg,
    reason: Annotated[str, typer.Option(help="Why the link is withdrawn (for the ledger).")],
) -> None:
    """Withdraw a package's download link; the next purge deletes the package."""
    if not reason.strip():
        fail("--reason is empty: say why the link is withdrawn", code=2)
    act("revoke_link", officer.workflow_id(request_id),
         LinkRevocation(request_id=request_id, reason=reason), missing_exit=2)
    console.print(f"{request_id}: download link withdrawn", highlight=False)


def list_requests(
    status_filter: Annotated[str | None, typer.Option("--status", help="A status.")] = None,
    right: Annotated[str | None, typer.Option(help="A right.")] = None,
    jurisdiction: Annotated[str | None, typer.Option(help="A jurisdiction.")] = None,
    overdue: Annotated[bool, typer.Option(help="Only open requests past due.")] = False,
    child: Annotated[bool, typer.Option(help="Only reports about a child's data.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List requests from the register, newest first."""
    # A misspelt filter would list nothing and look like "no such requests": refuse it.
    for option, value, known in (("--status", status_filter, Status),
                                 ("--right", right, Right),
                                 ("--jurisdiction", jurisdiction, Jurisdiction)):
        allowed = [member.value for member in known]
        if value is not None and value not in allowed:
            fail(f"{option} is unknown: give one of {', '.join(allowed)}", code=2)
    filters = register.RequestFilter(status=status_filter, right=right,
                                     jurisdiction=jurisdiction, overdue=overdue, child=child,
                                     limit=limit)
    rows: list[dict[str, Any]] = act("list_requests", REGISTER, filters)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("request", "status", "rights", "jurisdiction", "received", "due", "child")
    for row in rows:
        table.add_row(row["request_id"], row["status"], ", ".join(row["rights"]),
                      row["jurisdiction"], row["received_at"][:10], (row["due_at"] or "")[:10],
                      "child" if row.get("child") else "")
    console.print(table)


COMMANDS: dict[str, Callable[..., None]] = {
    "status": status, "list": list_requests, "revoke-link": revoke_link,
}
