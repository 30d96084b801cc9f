"""``starter.py rules ...``: the policy's rules and texts with their status (``list``, read from
the files: no secret needed); confirming one as a lawyer or administrator through the officer
service (``confirm``, signed with your credential); and the operator's ``check`` that every
confirmation a file claims is in the ledger."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.errors import cli_settings, fail
from cli.officers import officer_service
from dsr import legal_doc, rules
from dsr.provenance import RuleStatus
from services.rule_actions import RULES, RuleConfirmation
from services.workflow_client import OfficerError

rules_app = typer.Typer(no_args_is_help=True, help="The policy's rules and texts, and Legal's "
                        "confirmation of them.")
console = Console()
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@rules_app.command("list")
def list_command(drafts: Annotated[bool, typer.Option(help="Only drafts.")] = False,
                 as_json: JsonOpt = False) -> None:
    """Every rule and text with its status and source (docs/legal.md shows them per law)."""
    found = [e for e in rules.entries(cli_settings().policy_dir)
             if not drafts or e.status is RuleStatus.DRAFT]
    if as_json:
        print(json.dumps([{"file": e.file, "address": e.address, "status": e.status.value,
                           "source": e.source, "confirmed_by": e.confirmed_by,
                           "confirmed_on": str(e.confirmed_on) if e.confirmed_on else None}
                          for e in found], indent=2))
        return
    table = Table("file", "address", "status", "source")
    for e in found:
        status = e.status.value + (f" ({e.confirmed_by}, {e.confirmed_on})"
                                   if e.confirmed_by else "")
        table.add_row(e.file, e.address, status, e.source)
    console.print(table)


@rules_app.command("confirm")
def confirm_command(
    file: Annotated[str, typer.Argument(help="The policy file, such as authorities.yaml.")],
    address: Annotated[str, typer.Argument(help="The entry, as `rules list` shows it.")],
    as_json: JsonOpt = False,
) -> None:
    """Confirm a draft as the lawyer or administrator you are logged in as; recorded in the
    ledger with the text's fingerprint, then written into the file."""
    try:
        ask = RuleConfirmation(file=file, address=address)
    except ValueError:
        fail("give a policy file such as authorities.yaml and an address such as "
             "jurisdictions.UK.complaint (see `starter.py rules list`)", code=2)
    try:
        done = asyncio.run(officer_service(cli_settings()).action("confirm_rule", RULES, ask))
    except OfficerError as error:
        fail(str(error))
    if as_json:
        print(json.dumps(done, indent=2))
    else:
        console.print(f"{done['file']} {done['address']}: confirmed by {done['confirmed_by']} "
                      f"on {done['confirmed_on']}", highlight=False)


@rules_app.command("doc")
def doc_command(out: Annotated[Path, typer.Option(help="Where to write the page.")] =
                Path("docs/legal.md")) -> None:
    """Write the page Legal reviews (docs/legal.md) from the policy files."""
    out.write_text(legal_doc.render(cli_settings().policy_dir), encoding="utf-8")
    console.print(f"wrote {out}", highlight=False)
