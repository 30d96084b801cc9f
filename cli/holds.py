"""``starter.py hold ...``: legal holds, placed, released and listed by an administrator (list:
also auditors and officers) through the officer service, signed with their credential; this
machine needs no secret. ``hold recheck`` is the operator's, on the server."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.errors import cli_settings, err, fail
from cli.officers import officer_service
from cli.service_client import OfficerServiceClient
from dsr import holds
from dsr.temporal import connect
from dsr.temporal_token import TokenError
from services import workflow_client as officer
from services.officer_actions import HOLDS, HoldQuery, HoldRelease

hold_app = typer.Typer(no_args_is_help=True, help="Legal holds: data that must be kept.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
console = Console()




def _service() -> OfficerServiceClient:
    try:
        return officer_service(cli_settings())
    except officer.OfficerError as error:
        fail(str(error))


def _act(action: str, arguments: BaseModel, service: OfficerServiceClient | None = None) -> Any:
    try:
        return asyncio.run((service or _service()).action(action, HOLDS, arguments))
    except officer.OfficerError as error:
        fail(str(error))


@hold_app.command("place")
def hold_place(
    kind: Annotated[str, typer.Option(help="litigation or government.")],
    reason: Annotated[str, typer.Option(help="Why: case or request reference (internal).")],
    email: Annotated[str | None, typer.Option(help="Scope: a subject's email.")] = None,
    phone: Annotated[str | None, typer.Option(help="Scope: a subject's phone (E.164).")] = None,
    account_id: Annotated[str | None, typer.Option(help="Scope: a subject's account id.")] = None,
    customer: Annotated[str | None, typer.Option(help="Scope: a customer account.")] = None,
    product: Annotated[str | None, typer.Option(help="Scope: a product, e.g. SMS.")] = None,
    category: Annotated[str | None, typer.Option(help="Scope: a data category.")] = None,
    until: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD (default: open).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Place a legal hold: erasures keep what it covers until it is released."""
    given = {"email": email, "phone": phone, "account_id": account_id}
    identities = [{"type": kind_, "value": value} for kind_, value in given.items() if value]
    if len(identities) > 1:
        fail("give at most one of --email, --phone, --account-id", code=2)
    try:  # checked before anything is asked: bad input exits 2
        spec = holds.HoldSpec.model_validate({
            "kind": kind, "reason": reason, "placed_by": "officer",
            "identity": identities[0] if identities else None, "customer_account": customer,
            "product": product, "category": category, "until": until})
    except ValidationError as error:
        fail(officer.describe_errors(error).replace("the request", "the hold"), code=2)
    if spec.until is not None and spec.until <= date.today():
        fail("--until must be a date after today, or left out for an open hold", code=2)
    service = _service()
    spec = spec.model_copy(update={"placed_by": service.officer_id})  # recorded: the signer
    hold = holds.Hold.model_validate(_act("place_hold", spec, service))
    _print(hold, as_json, f"placed {hold.hold_id} ({hold.kind.value})")


@hold_app.command("release")
def hold_release(
    hold_id: str,
    reason: Annotated[str, typer.Option(help="Why the hold ends.")],
    as_json: JsonOpt = False,
) -> None:
    """Release a hold: what only it was keeping is erased by the deferred erasure."""
    if len(reason.strip()) < 3:
        fail("releasing a hold needs a reason: give --reason", code=2)
    try:
        release = HoldRelease(hold_id=hold_id, reason=reason)
    except ValidationError as error:
        fail(officer.describe_errors(error, "the release"), code=2)
    answer = _act("release_hold", release)
    hold = holds.Hold.model_validate(answer["hold"])
    _print(hold, as_json, f"released {hold.hold_id}")
    if answer["deferred_asked"] is None:
        err.print("the release is recorded, but the deferred erasures were not told: run "
                  "`python starter.py hold recheck` once Temporal is reachable", highlight=False)
        raise typer.Exit(1)
    else:
        err.print(f"{answer['deferred_asked']} deferred erasures asked to look again",
                  highlight=False)


@hold_app.command("recheck")
def hold_recheck() -> None:
    """Ask the deferred erasures to look again now (the operator, on the server: done by
    `release`; for after an outage, or after adding a payload key)."""
    async def ask() -> int:
        return await officer.recheck_deferred(await connect(cli_settings()))

    try:
        asked = asyncio.run(ask())
    except TokenError as error:
        fail(str(error), code=2)
    console.print(f"{asked} deferred erasures asked to look again", highlight=False)


@hold_app.command("list")
def hold_list(
    show_all: Annotated[bool, typer.Option("--all", help="Released and ended holds too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The active holds with their reasons (identities appear only as keyed hashes)."""
    listed = [holds.HoldListing.model_validate(h)
              for h in _act("list_holds", HoldQuery(everything=show_all))]
    if as_json:
        print(json.dumps([hold.model_dump(mode="json") for hold in listed], indent=2))
        return
    table = Table("hold", "kind", "subject", "customer", "product", "category", "until")
    for hold in listed:
        table.add_row(hold.hold_id, hold.kind.value, "yes" if hold.identity_hash else "",
                      escape(hold.customer_account or ""), escape(hold.product or ""),
                      hold.category or "", str(hold.until or "released by an officer"))
    console.print(table)
    for hold in listed:  # free text, unwrapped, below the table
        _print_hold_reasons(hold)


def _print_hold_reasons(hold: holds.HoldListing) -> None:
    lines = [f"{hold.hold_id} placed {hold.placed_at:%Y-%m-%d} by {hold.placed_by}: {hold.reason}"]
    if hold.released_at is not None:
        lines.append(f"{hold.hold_id} released {hold.released_at:%Y-%m-%d} by "
                     f"{hold.released_by}: {hold.release_reason}")
    for line in lines:
        console.print(escape(line), highlight=False, soft_wrap=True)


def _print(model: BaseModel, as_json: bool, text: str) -> None:
    if as_json:
        print(model.model_dump_json(indent=2))
    else:
        console.print(escape(text), highlight=False)
