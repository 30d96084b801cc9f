"""The officer's Updates on a request (``mark-verified`` to ``resolve-connector``), each signed
with the officer's key and credential and sent through the officer service, which forwards it
to the request's workflow; the workflow checks the assertion again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cli.errors import cli_settings, fail
from cli.officers import officer_service
from cli.options import JsonOpt, OfficerOpt, RequestIdArg, payload
from services import workflow_client as officer
from workflows.models import (
    ChildErasureDecision,
    ConnectorDecision,
    ConnectorResolution,
    Denial,
    Extension,
    InstructionConfirmation,
    OfficerAction,
    OfficerNote,
    OfficerPayload,
    RetentionChoice,
)

console = Console()


def _send(request_id: str, name: str, update: OfficerPayload, as_json: bool) -> None:
    try:
        result = asyncio.run(officer_service(cli_settings()).update(request_id, name, update))
    except officer.OfficerError as error:
        fail(str(error))
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        console.print(escape(f"{request_id}: {result.message}"), highlight=False)


def mark_verified(request_id: RequestIdArg,
                  note: Annotated[str, typer.Option(help="How it was checked.")],
                  officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Record that an officer verified the identity by hand (post, agent's mandate)."""
    note_model = payload(OfficerNote, officer=officer_name, note=note)
    _send(request_id, "mark_verified", note_model, as_json)


def confirm_recipient(request_id: RequestIdArg,
                      note: Annotated[str, typer.Option(help="How the address was checked.")],
                      officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Confirm the requester's address as the answer's recipient (when no verification
    proved it): the answer waiting for it is sent."""
    note_model = payload(OfficerNote, officer=officer_name, note=note)
    _send(request_id, "confirm_recipient", note_model, as_json)


def new_code(request_id: RequestIdArg,
             officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Issue a new one-time code (after a lock or expiry)."""
    _send(request_id, "new_code", payload(OfficerAction, officer=officer_name),
          as_json)


def extend(request_id: RequestIdArg,
           reason: Annotated[str, typer.Option(help="Told to the requester.")],
           until: Annotated[str | None, typer.Option(help="YYYY-MM-DD; default the limit.")] = None,
           officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Extend the deadline; the requester is emailed the new date and the reason."""
    try:
        # "--until ''" is refused, not taken as the limit.
        day = date.fromisoformat(until) if until is not None else None
    except ValueError:
        fail("--until takes a date as YYYY-MM-DD", code=2)
    _send(request_id, "extend",
          payload(Extension, officer=officer_name, reason=reason, until=day), as_json)


def clarify(request_id: RequestIdArg,
            question: Annotated[str | None, typer.Option(help="Ask the requester this.")] = None,
            received: Annotated[str | None, typer.Option(help="Answer arrived: a note.")] = None,
            about_scope: Annotated[bool, typer.Option(
                help="The question asks what the request covers (UK: only then the clock "
                     "stops).")] = False,
            officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Ask for clarification, or record that the answer arrived. In the UK the clock stops
    only for a question about what the request covers (--about-scope)."""
    if (question is None) == (received is None):
        fail("give either --question (ask) or --received (the answer arrived)", code=2)
    if question is None:
        _send(request_id, "clarification_received",
              payload(OfficerNote, officer=officer_name, note=received or ""), as_json)
        return
    name = "request_scope_clarification" if about_scope else "request_clarification"
    _send(request_id, name, payload(OfficerNote, officer=officer_name, note=question), as_json)


def approve(request_id: RequestIdArg,
            officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Approve execution of the request."""
    _send(request_id, "approve", payload(OfficerAction, officer=officer_name),
          as_json)


def release_answer(request_id: RequestIdArg,
                   note: Annotated[str, typer.Option(help="What was checked.")],
                   officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Send an answer held for review: its draft texts were checked (docs/legal.md)."""
    _send(request_id, "release_answer", payload(OfficerNote, officer=officer_name, note=note),
          as_json)


def child_review(
    request_id: RequestIdArg,
    note: Annotated[str, typer.Option(help="What the review found (for the ledger).")],
    erase: Annotated[bool, typer.Option("--erase", help="Erase the child's data.")] = False,
    keep: Annotated[bool, typer.Option(
        "--keep", help="Drop the erasure the report added (not a child, or consent given).")
    ] = False,
    officer_name: OfficerOpt = None, as_json: JsonOpt = False,
) -> None:
    """Decide the erasure review a report about a child's data added (approver role)."""
    if erase == keep:
        fail("give exactly one of --erase or --keep", code=2)
    _send(request_id, "review_child_erasure",
          payload(ChildErasureDecision, officer=officer_name, erase=erase, note=note), as_json)


def retention_decision(
    request_id: RequestIdArg,
    note: Annotated[str, typer.Option(help="Why (kept in the ledger).")],
    keep: Annotated[bool, typer.Option("--keep", help="Apply the draft rule: keep the data.")]
    = False,
    erase: Annotated[bool, typer.Option(
        "--erase", help="Leave the draft rule out: erase as the confirmed rules allow.")] = False,
    officer_name: OfficerOpt = None, as_json: JsonOpt = False,
) -> None:
    """Decide data only a draft retention rule would keep (approver role)."""
    if keep == erase:
        fail("give exactly one of --keep or --erase", code=2)
    _send(request_id, "decide_retention",
          payload(RetentionChoice, officer=officer_name, keep=keep, note=note), as_json)


def deny(request_id: RequestIdArg,
         reason: Annotated[str, typer.Option(help="Told to the requester.")],
         manifestly_unfounded: Annotated[bool, typer.Option(help="Unfounded/excessive.")] = False,
         officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Deny the request; the requester is told the reasons and where to complain."""
    _send(request_id, "deny", payload(Denial, officer=officer_name, reason=reason,
                                       manifestly_unfounded=manifestly_unfounded), as_json)


def cancel(request_id: RequestIdArg,
           reason: Annotated[str, typer.Option(help="Why it is cancelled.")],
           officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Cancel: nothing not yet started starts; what already happened is reported."""
    _send(request_id, "cancel", payload(OfficerNote, officer=officer_name, note=reason),
          as_json)


def confirm_instruction(
    request_id: RequestIdArg, connector: str,
    note: Annotated[str, typer.Option(help="What the recipient confirmed.")],
    officer_name: OfficerOpt = None, as_json: JsonOpt = False,
) -> None:
    """Record that a recipient instructed by email confirmed it acted."""
    confirmation = payload(InstructionConfirmation, officer=officer_name, connector=connector,
                           note=note)
    _send(request_id, "confirm_instruction", confirmation, as_json)


def resolve_connector(
    request_id: RequestIdArg, connector: str,
    reason: Annotated[str, typer.Option(help="Why.")],
    done: Annotated[bool, typer.Option("--done", help="Done by hand.")] = False,
    skip: Annotated[bool, typer.Option("--skip", help="Skip this connector.")] = False,
    retry: Annotated[bool, typer.Option("--retry", help="Try the connector again.")] = False,
    officer_name: OfficerOpt = None, as_json: JsonOpt = False,
) -> None:
    """Resolve a connector that keeps failing: done by hand, skipped, or retried."""
    chosen = [r for r, flag in ((ConnectorResolution.DONE_BY_HAND, done),
                                (ConnectorResolution.SKIPPED, skip),
                                (ConnectorResolution.RETRY, retry)) if flag]
    if len(chosen) != 1:
        fail("give exactly one of --done, --skip or --retry", code=2)
    decision = payload(ConnectorDecision, officer=officer_name, connector=connector,
                       resolution=chosen[0], reason=reason)
    _send(request_id, "resolve_connector", decision, as_json)


COMMANDS: dict[str, Callable[..., None]] = {
    "mark-verified": mark_verified, "confirm-recipient": confirm_recipient,
    "new-code": new_code, "extend": extend, "clarify": clarify, "approve": approve,
    "deny": deny, "child-review": child_review, "cancel": cancel,
    "confirm-instruction": confirm_instruction,
    "resolve-connector": resolve_connector, "release-answer": release_answer,
    "retention-decision": retention_decision,
}
