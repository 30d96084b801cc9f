"""``starter.py package`` and ``proof``: a request's access package and the answer kept as
proof, read by an officer or an auditor through the officer service (which records the
reading in the audit ledger under who signed), decrypted into a file only its owner reads."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from cli.errors import cli_settings, fail
from cli.officers import officer_service
from services import workflow_client as officer
from services.officer_actions import RecordQuery

console = Console()
OutOpt = Annotated[Path, typer.Option(help="Where to write it.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]



def _read(action: str, request_id: str, out: Path) -> int:
    try:
        query = RecordQuery(request_id=request_id)
    except ValidationError:
        fail("a request id is 3-64 letters, digits, '-' or '_', starting with a letter or "
             "digit", code=2)
    if not out.parent.is_dir():
        fail(f"--out: folder {out.parent} does not exist", code=2)
    try:
        service = officer_service(cli_settings())
        return asyncio.run(service.download(action, officer.workflow_id(request_id), query,
                                            out))
    except officer.OfficerError as error:
        code = 2 if any(s in str(error) for s in ("no access package", "no confirmation")) else 1
        fail(str(error), code)


RequestIdArg = Annotated[str, typer.Argument(metavar="REQUEST_ID")]


def package(request_id: RequestIdArg, out: OutOpt, as_json: JsonOpt = False) -> None:
    """Download a request's access package, recorded in the audit ledger."""
    written = _read("read_package", request_id, out)
    if as_json:
        print(json.dumps({"request_id": request_id, "written": str(out), "bytes": written}))
    else:
        console.print(f"{request_id}: package written to {out} ({written} bytes)",
                      highlight=False)


def proof(request_id: RequestIdArg, out: OutOpt) -> None:
    """The answer as sent (kept encrypted as proof), decrypted into an .eml file; the
    reading is recorded in the audit ledger."""
    _read("read_proof", request_id, out)
    console.print(f"{request_id}: the answer as sent, written to {out}", highlight=False)
