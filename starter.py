"""The privacy officer's CLI: submit, verify, extend, approve or deny, cancel, follow requests,
and run the embedded stack. ``python starter.py --help`` lists the commands."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dsr import officer, secret_input
from dsr.files import private_umask
from dsr.holds_cli import hold_app
from dsr.intakeactions import CodeRelay
from dsr.keyring import KeyringError
from dsr.keys import keys_app
from dsr.ledger_cli import ledger_app
from dsr.models import parse_request
from dsr.officeractions import REGISTER, LinkRevocation, RecordQuery
from dsr.officers_cli import login, officer_service, officers_app
from dsr.records_cli import package, proof
from dsr.report_cli import report_command
from dsr.sessions_cli import ui_session
from dsr.settings import Settings, SettingsError, load_settings
from dsr.temporal import connect
from dsr.temporal_token import TokenError
from workflows.models import (
    CodeResult,
    ConnectorDecision,
    ConnectorResolution,
    Denial,
    Extension,
    OfficerAction,
    OfficerNote,
    OfficerPayload,
    RequestStatus,
    UpdateResult,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Data-subject-request orchestrator: the privacy officer's commands.")
stack_app = typer.Typer(no_args_is_help=True, help="The embedded stack under var/.")
app.add_typer(stack_app, name="stack")
app.add_typer(ledger_app, name="ledger")
app.add_typer(keys_app, name="keys")
app.add_typer(officers_app, name="officers")
app.command("login")(login)
app.command("report")(report_command)
app.command("ui-session")(ui_session)
app.add_typer(hold_app, name="hold")
app.command()(package)
app.command()(proof)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

OfficerOpt = Annotated[str | None, typer.Option(
    help="Only for requests begun before signed assertions: the name to record (default: "
         "your officer id). Later requests record who signed.")]


def _request_id_argument(value: str) -> str:
    # Checked before anything is asked of Temporal or the register: a mistyped id (or an email
    # pasted in its place) exits 2 and is not repeated back.
    from dsr.models import REQUEST_ID

    if not REQUEST_ID.fullmatch(value):
        raise typer.BadParameter("a request id is 3-64 letters, digits, '-' or '_', starting "
                                 "with a letter or digit")
    return value


RequestIdArg = Annotated[str, typer.Argument(callback=_request_id_argument,
                                             metavar="REQUEST_ID")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        _fail(str(error))


def _fail(message: str, code: int = 1) -> NoReturn:
    # Escaped: messages quote rules such as '^[a-z_]{2,40}$' and paths, which are not markup.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _run(work: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    settings = _settings()
    try:
        return asyncio.run(work(settings))
    except officer.OfficerError as error:
        _fail(str(error))
    except KeyringError as error:
        _fail(str(error), code=2)
    except TokenError as error:
        _fail(str(error), code=2)
    except RuntimeError as error:
        if "Failed client connect" in str(error) or "connect" in str(error).lower():
            _fail(f"cannot reach Temporal at {settings.temporal_address}: "
                  "start the stack with: python starter.py stack up")
        raise
    raise AssertionError("unreachable")


def _print(model: BaseModel, as_json: bool, text: str) -> None:
    if as_json:
        print(model.model_dump_json(indent=2))
    else:
        console.print(escape(text), highlight=False)


def _send(request_id: str, name: str, payload: OfficerPayload, as_json: bool) -> None:
    """An officer's Update, signed with the officer's key and credential, through the officer
    service (this process needs none of the product's secrets)."""
    async def work(settings: Settings) -> UpdateResult:
        return await officer_service(settings).update(request_id, name, payload)

    result = _run(work)
    _print(result, as_json, f"{request_id}: {result.message}")


def _payload(model: type[M], **fields: Any) -> M:
    """An Update's payload, validated here: bad input exits 2 naming the field, before
    anything is sent."""
    try:
        return model(**fields)
    except ValidationError as error:
        _fail(officer.describe_errors(error, "the input"), code=2)


# Submitting ------------------------------------------------------------------------------------


@app.command()
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
    child: Annotated[bool, typer.Option(help="The subject is under 18.")] = False,
    correct: Annotated[list[str] | None, typer.Option(help="field=value to rectify.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Enter a rights request that came by email or post (from flags or a JSON file), as
    yourself. Bad input starts nothing."""
    if file is not None and identities_file is not None:
        _fail("--identities-file goes with the flags: a --file request holds its own", code=2)
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
        _fail(officer.describe_errors(error), code=2)
    entered = _act("enter_request", officer.workflow_id(request.request_id), request)
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
        _fail(f"no such file: {file}", code=2)
    except OSError as error:  # a folder, no permission
        _fail(f"cannot read {file}: {error.strerror}", code=2)
    except UnicodeDecodeError as error:
        _fail(f"{file} is not valid UTF-8: undecodable byte at offset {error.start}", code=2)
    except json.JSONDecodeError as error:
        _fail(f"{file} is not valid JSON: {error.msg} at line {error.lineno} "
              f"column {error.colno}", code=2)
    except RecursionError:  # "[[[[..." thousands deep: json gives up without a JSONDecodeError
        _fail(f"{file} is not valid JSON: nested too deeply", code=2)


def _secret_input(read: Callable[[], T]) -> T:
    """Identities or a code read from a file or stdin; bad input exits 2, naming no value."""
    try:
        return read()
    except secret_input.SecretInputError as error:
        _fail(str(error), code=2)


def _correction(text: str) -> dict[str, str]:
    field, sep, value = text.partition("=")
    if not sep:
        _fail("--correct takes field=value, for example --correct job_title=CTO", code=2)
    return {"field": field.strip(), "value": value}


def _new_request_id() -> str:
    return f"DSR-{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:8].upper()}"


# Verification and officer actions ---------------------------------------------------------


@app.command()
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
    relay = _payload(CodeRelay, request_id=request_id, code=given)
    result = CodeResult.model_validate(
        _act("relay_code", officer.workflow_id(request_id), relay))
    if result.accepted:
        text = f"{request_id}: code accepted; {result.remaining_targets} identities still to verify"
    elif result.locked:
        text = f"{request_id}: wrong code; verification is now locked (officer: new-code)"
    else:
        text = f"{request_id}: wrong code; {result.attempts_left} attempts left"
    _print(result, as_json, text)
    if not result.accepted:
        raise typer.Exit(1)


@app.command("mark-verified")
def mark_verified(request_id: RequestIdArg,
                  note: Annotated[str, typer.Option(help="How it was checked.")],
                  officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Record that an officer verified the identity by hand (post, agent's mandate)."""
    note_model = _payload(OfficerNote, officer=officer_name, note=note)
    _send(request_id, "mark_verified", note_model, as_json)


@app.command("confirm-recipient")
def confirm_recipient(request_id: RequestIdArg,
                      note: Annotated[str, typer.Option(help="How the address was checked.")],
                      officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Confirm the requester's address as the answer's recipient (when no verification
    proved it): the answer waiting for it is sent."""
    note_model = _payload(OfficerNote, officer=officer_name, note=note)
    _send(request_id, "confirm_recipient", note_model, as_json)


@app.command("new-code")
def new_code(request_id: RequestIdArg,
             officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Issue a new one-time code (after a lock or expiry)."""
    _send(request_id, "new_code", _payload(OfficerAction, officer=officer_name),
          as_json)


@app.command()
def extend(request_id: RequestIdArg,
           reason: Annotated[str, typer.Option(help="Told to the requester.")],
           until: Annotated[str | None, typer.Option(help="YYYY-MM-DD; default the limit.")] = None,
           officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Extend the deadline; the requester is emailed the new date and the reason."""
    try:
        # "--until ''" is refused, not taken as the limit.
        day = date.fromisoformat(until) if until is not None else None
    except ValueError:
        _fail("--until takes a date as YYYY-MM-DD", code=2)
    _send(request_id, "extend",
          _payload(Extension, officer=officer_name, reason=reason, until=day), as_json)


@app.command()
def clarify(request_id: RequestIdArg,
            question: Annotated[str | None, typer.Option(help="Ask the requester this.")] = None,
            received: Annotated[str | None, typer.Option(help="Answer arrived: a note.")] = None,
            officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Ask for clarification (UK: the clock stops), or record that the answer arrived."""
    if (question is None) == (received is None):
        _fail("give either --question (ask) or --received (the answer arrived)", code=2)
    name = "request_clarification" if question is not None else "clarification_received"
    _send(request_id, name, _payload(OfficerNote, officer=officer_name,
                                     note=question or received or ""), as_json)


@app.command()
def approve(request_id: RequestIdArg,
            officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Approve execution of the request."""
    _send(request_id, "approve", _payload(OfficerAction, officer=officer_name),
          as_json)


@app.command()
def deny(request_id: RequestIdArg,
         reason: Annotated[str, typer.Option(help="Told to the requester.")],
         manifestly_unfounded: Annotated[bool, typer.Option(help="Unfounded/excessive.")] = False,
         officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Deny the request; the requester is told the reasons and where to complain."""
    _send(request_id, "deny", _payload(Denial, officer=officer_name, reason=reason,
                                       manifestly_unfounded=manifestly_unfounded), as_json)


@app.command()
def cancel(request_id: RequestIdArg,
           reason: Annotated[str, typer.Option(help="Why it is cancelled.")],
           officer_name: OfficerOpt = None, as_json: JsonOpt = False) -> None:
    """Cancel: nothing not yet started starts; what already happened is reported."""
    _send(request_id, "cancel", _payload(OfficerNote, officer=officer_name, note=reason),
          as_json)


@app.command("confirm-instruction")
def confirm_instruction(
    request_id: RequestIdArg, connector: str,
    note: Annotated[str, typer.Option(help="What the recipient confirmed.")],
    officer_name: OfficerOpt = None, as_json: JsonOpt = False,
) -> None:
    """Record that a recipient instructed by email confirmed it acted."""
    from workflows.models import InstructionConfirmation

    try:
        confirmation = InstructionConfirmation(officer=officer_name,
                                               connector=connector, note=note)
    except ValidationError as error:
        _fail(officer.describe_errors(error), code=2)
    _send(request_id, "confirm_instruction", confirmation, as_json)


@app.command("resolve-connector")
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
        _fail("give exactly one of --done, --skip or --retry", code=2)
    try:
        decision = ConnectorDecision(officer=officer_name, connector=connector,
                                     resolution=chosen[0], reason=reason)
    except ValidationError as error:
        _fail(officer.describe_errors(error), code=2)
    _send(request_id, "resolve_connector", decision, as_json)


# Following requests ------------------------------------------------------------------------


@app.command()
def status(request_id: RequestIdArg, as_json: JsonOpt = False) -> None:
    """Where a request stands: from Temporal while it runs, from the register after."""
    answer = _act("read_status", officer.workflow_id(request_id),
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


def _act(action: str, target: str, arguments: BaseModel, missing_exit: int = 1) -> Any:
    """One of the officer service's actions, signed as this officer; a refusal exits 1, or
    ``missing_exit`` when it names a request or link there is not."""
    async def work(settings: Settings) -> Any:
        return await officer_service(settings).action(action, target, arguments)

    try:
        return asyncio.run(work(_settings()))
    except officer.OfficerError as error:
        unknown = ("in the register", "no download link")
        _fail(str(error), missing_exit if any(s in str(error) for s in unknown) else 1)


def _print_status(result: Any) -> None:
    console.print(f"[bold]{result.request_id}[/bold]  {result.status.value}  "
                  f"{', '.join(result.rights)}  {result.jurisdiction}  "
                  f"due {result.due_at:%Y-%m-%d}"
                  + ("  [red]OVERDUE[/red]" if result.overdue else ""))
    if result.possible_duplicate_of:
        console.print("[yellow]possible duplicate of[/yellow] "
                      f"{', '.join(result.possible_duplicate_of)} (same subject, same right, "
                      "within 30 days): check before answering twice", highlight=False)
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


def _print_register_status(result: dict[str, Any]) -> None:
    console.print(f"[bold]{result['request_id']}[/bold]  {result['status']}  "
                  f"{', '.join(result['rights'])}  {result['jurisdiction']}  (from the register)")
    table = Table("step", "at", "actor", "detail")
    for m in result["milestones"]:
        at = datetime.fromisoformat(m["at"]) if isinstance(m["at"], str) else m["at"]
        # Officers' notes and actors are free text, not markup: "[/x]" would stop rich.
        table.add_row(m["step"], f"{at:%Y-%m-%d %H:%M}", escape(m["actor"]),
                      escape(json.dumps(m["detail"], ensure_ascii=False)))
    console.print(table)


@app.command("revoke-link")
def revoke_link(
    request_id: RequestIdArg,
    reason: Annotated[str, typer.Option(help="Why the link is withdrawn (for the ledger).")],
) -> None:
    """Withdraw a package's download link; the next purge deletes the package."""
    if not reason.strip():
        _fail("--reason is empty: say why the link is withdrawn", code=2)
    _act("revoke_link", officer.workflow_id(request_id),
         LinkRevocation(request_id=request_id, reason=reason), missing_exit=2)
    console.print(f"{request_id}: download link withdrawn", highlight=False)


@app.command("list")
def list_requests(
    status_filter: Annotated[str | None, typer.Option("--status", help="A status.")] = None,
    right: Annotated[str | None, typer.Option(help="A right.")] = None,
    jurisdiction: Annotated[str | None, typer.Option(help="A jurisdiction.")] = None,
    overdue: Annotated[bool, typer.Option(help="Only open requests past due.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List requests from the register, newest first."""
    from dsr import register
    from dsr.models import Jurisdiction, Right
    from workflows.models import Status

    # A misspelt filter would list nothing and look like "no such requests": refuse it.
    for option, value, known in (("--status", status_filter, Status),
                                 ("--right", right, Right),
                                 ("--jurisdiction", jurisdiction, Jurisdiction)):
        allowed = [member.value for member in known]
        if value is not None and value not in allowed:
            _fail(f"{option} is unknown: give one of {', '.join(allowed)}", code=2)
    filters = register.RequestFilter(status=status_filter, right=right,
                                     jurisdiction=jurisdiction, overdue=overdue, limit=limit)
    rows: list[dict[str, Any]] = _act("list_requests", REGISTER, filters)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("request", "status", "rights", "jurisdiction", "received", "due")
    for row in rows:
        table.add_row(row["request_id"], row["status"], ", ".join(row["rights"]),
                      row["jurisdiction"], row["received_at"][:10], (row["due_at"] or "")[:10])
    console.print(table)


# The embedded stack and the demo -----------------------------------------------------------


@stack_app.command("up")
def stack_up() -> None:
    """Start Temporal, the mail server and the workers under var/."""
    from dsr.embedded import start

    _run(start)


@stack_app.command("down")
def stack_down() -> None:
    """Stop everything the stack started."""
    from dsr import stack

    console.print(stack.down(_settings()).describe(), highlight=False)


@stack_app.command("status")
def stack_status() -> None:
    """What is running."""
    from dsr import stack

    console.print(stack.status(_settings()).describe(), highlight=False)


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
        _fail(str(error))
    namespace = _settings().temporal_namespace
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
    from dsr.demo import seed_stores

    facts = seed_stores(_settings(), people=people, customers=customers)
    console.print(f"seeded {people} people across {customers} customers "
                  f"(controller demo customer {facts.controller_account_id})", highlight=False)


@app.command()
def demo() -> None:
    """Start the stack, seed the stores, and run the two demo requests end to end."""
    from dsr.demo import run_demo

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
