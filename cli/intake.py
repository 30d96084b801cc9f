"""``starter.py submit`` and ``verify``: an officer enters a request that came by email or
post, and relays the one-time code its requester received, both as themself through the
officer service (``services.intake_actions``). Identities and codes can come from a file or stdin,
out of shell history and ``ps``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from cli import secret_input
from cli.errors import fail
from cli.options import JsonOpt, RequestIdArg, act, payload
from dsr.models import parse_request
from services import workflow_client as officer
from services.intake_actions import CodeRelay
from workflows.models import CodeResult

console = Console()
T = TypeVar("T")


def submit(
    file: Annotated[Path | None, typer.Option(help="A JSON request file.")] = None,
    request_id: Annotated[str | None, typer.Option(help="Default: generated.")] = None,
    right: Annotated[list[str] | None, typer.Option(help="A right; repeat for more.")] = None,
    email: Annotated[list[str] | None, typer.Option(help="Subject's email identity.")] = None,
    phone: Annotated[list[str] | None, typer.Option(help="Subject's phone (E.164).")] = None,
    account_id: Annotated[list[str] | None, typer.Option(help="Subject's account id.")] = None,
    channel_id: Annotated[list[str] | None, typer.Option(help="'channel:id'.")] = None,
    jurisdiction: Annotated[str, typer.Option(help="EU, DE, UK, US-CA, SG, AU, CO, BR, CN")] = "EU",
    channel: Annotated[str, typer.Option(help="privacy_panel, email, post, api")] = "email",
    requester: Annotated[str, typer.Option(help="subject, agent or controller")] = "subject",
    requester_email: Annotated[str | None, typer.Option(help="Where answers go.")] = None,
    identities_file: Annotated[str | None, typer.Option(
        metavar="FILE", help="More identities, one type:value a line (- for stdin): kept out "
                             "of shell history and ps, unlike the flags.")] = None,
    customer_account: Annotated[str | None, typer.Option(help="Controller's account.")] = None,
    mandate: Annotated[str | None, typer.Option(help="Agent's proof of mandate.")] = None,
    received_at: Annotated[str | None, typer.Option(help="ISO time; default now.")] = None,
    last_login_at: Annotated[str | None, typer.Option(help="Panel login, ISO time.")] = None,
    language: Annotated[str, typer.Option(help="en or zh")] = "en",
    child: Annotated[bool, typer.Option(
        help="A report that the subject is under 18 (from the child, a parent or anyone): "
             "starts an erasure review of the child's data.")] = False,
    correct: Annotated[list[str] | None, typer.Option(help="field=value to rectify.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Enter a rights request that came by email or post (from flags or a JSON file), as
    yourself. Bad input starts nothing."""
    if file is not None and identities_file is not None:
        fail("--identities-file goes with the flags: a --file request holds its own", code=2)
    if file is not None:
        data = _read_json(file)
    else:
        identities = [{"type": kind, "value": value}
                      for kind, values in (("email", email), ("phone", phone),
                                           ("account_id", account_id), ("channel_id", channel_id))
                      for value in values or []]
        identities, requester_email = _secret_input(lambda: secret_input.with_identities_file(
            identities, requester_email, identities_file))
        data = {
            # An empty value is refused, not taken as "not given" (is not None, not `or`).
            "request_id": request_id if request_id is not None else _new_request_id(),
            "rights": right or [],
            "identities": identities,
            "jurisdiction": jurisdiction,
            "channel": channel,
            "requester": {"kind": requester, "email": requester_email,
                          "customer_account": customer_account, "mandate_reference": mandate},
            "received_at": (received_at if received_at is not None
                            else datetime.now(UTC).isoformat()),
            "last_login_at": last_login_at,
            "language": language,
            "is_child": child,
            "corrections": [_correction(c) for c in correct or []],
        }
    try:
        request = parse_request(data)
    except ValidationError as error:
        fail(officer.describe_errors(error), code=2)
    entered = act("enter_request", officer.workflow_id(request.request_id), request)
    if as_json:
        print(json.dumps(entered))
        return
    console.print(f"submitted {request.request_id} (workflow {entered['workflow_id']})",
                  highlight=False)
    if duplicates := entered["possible_duplicate_of"]:
        console.print(f"possible duplicate of {', '.join(duplicates)}: the same subject asked "
                      "for the same right within 30 days (see `status`)", highlight=False)


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"no such file: {file}", code=2)
    except OSError as error:  # a folder, no permission
        fail(f"cannot read {file}: {error.strerror}", code=2)
    except UnicodeDecodeError as error:
        fail(f"{file} is not valid UTF-8: undecodable byte at offset {error.start}", code=2)
    except json.JSONDecodeError as error:
        fail(f"{file} is not valid JSON: {error.msg} at line {error.lineno} "
              f"column {error.colno}", code=2)
    except RecursionError:  # "[[[[..." thousands deep: json gives up without a JSONDecodeError
        fail(f"{file} is not valid JSON: nested too deeply", code=2)


def _secret_input(read: Callable[[], T]) -> T:
    """Identities or a code read from a file or stdin; bad input exits 2, naming no value."""
    try:
        return read()
    except secret_input.SecretInputError as error:
        fail(str(error), code=2)


def _correction(text: str) -> dict[str, str]:
    field, sep, value = text.partition("=")
    if not sep:
        fail("--correct takes field=value, for example --correct job_title=CTO", code=2)
    return {"field": field.strip(), "value": value}


def _new_request_id() -> str:
    return f"DSR-{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:8].upper()}"


def verify(
    request_id: RequestIdArg,
    code: Annotated[str | None, typer.Argument(
        metavar="CODE", help="The code; it stays in shell history and shows in ps: prefer "
                             "--code-file.")] = None,
    code_file: Annotated[str | None, typer.Option(
        metavar="FILE", help="Read the code from FILE, or - for stdin (typed unseen on a "
                             "terminal).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Relay the one-time code the requester received by email (as yourself)."""
    given = _secret_input(lambda: secret_input.one_time_code(code, code_file))
    relay = payload(CodeRelay, request_id=request_id, code=given)
    result = CodeResult.model_validate(
        act("relay_code", officer.workflow_id(request_id), relay))
    if result.accepted:
        text = f"{request_id}: code accepted; {result.remaining_targets} identities still to verify"
    elif result.locked:
        text = f"{request_id}: wrong code; verification is now locked (officer: new-code)"
    else:
        text = f"{request_id}: wrong code; {result.attempts_left} attempts left"
    _print(result, as_json, text)
    if not result.accepted:
        raise typer.Exit(1)


def _print(result: CodeResult, as_json: bool, text: str) -> None:
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        console.print(escape(text), highlight=False)


COMMANDS: dict[str, Callable[..., None]] = {"submit": submit, "verify": verify}
