"""The officer's CLI as an officer runs it: ``python starter.py ...`` in its own process, against
the dev server, with the workers, the SMTP server and the SQLite stores of a test harness.

The workers run in this test's event loop, so the CLI runs as an asyncio subprocess: a
blocking ``subprocess.run`` would stall them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from temporalio.service import RPCError, RPCStatusCode
from typer.testing import CliRunner

import starter
from cli import following as following_cli
from dsr.orm import Base
from dsr.register import MilestoneRecord
from dsr.status import Status
from services import workflow_client as officer
from tests.conftest import ROOT, Harness
from workflows.models import RequestOutcome

OFFICER = "Ada Lovelace"
CODE = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)


def cli_env(h: Harness | None) -> dict[str, str]:
    """The harness's settings as the CLI reads them: ``DSR_*`` variables, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSR_")}
    env |= {"COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb", "PYTHONIOENCODING": "utf-8"}
    if h is None:
        return env
    settings = h.settings
    assert settings.hmac_key is not None and settings.payload_keys is not None
    return env | {
        "DSR_SETTINGS_FILE": str(settings.data_dir / "absent.env"),
        "DSR_TEMPORAL_ADDRESS": h.client.service_client.config.target_host,
        "DSR_DATA_DIR": str(settings.data_dir),
        "DSR_TASK_QUEUE": settings.task_queue,
        "DSR_CONNECTOR_REGISTRY": str(settings.connector_registry),
        "DSR_HMAC_KEY": settings.hmac_key.get_secret_value(),
        "DSR_PAYLOAD_KEYS": settings.payload_keys.get_secret_value(),
        "DSR_SMTP_PORT": str(settings.smtp_port),
        "DSR_OFFICER_ADDRESS": settings.officer_address,
        "DSR_OFFICER_NAME": OFFICER,
        "DSR_OFFICER_SERVICE_URL": settings.officer_service_url,
    }


async def cli(h: Harness | None, *args: str, stdin: bytes | None = None,
              env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``python starter.py *args`` (``stdin`` on its standard input, else nothing; ``env``
    instead of the harness's settings); the exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "starter.py", *args, cwd=ROOT, env=env or cli_env(h),
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def cli_login(h: Harness, officer_id: str = "officer.ada",
                    roles: str = "approver,officer") -> None:
    """The officer's first day through the CLI: a key, registered by the operator, a login."""
    code, out, err = await cli(h, "officers", "keygen")
    assert code == 0, err
    public = out.split("public key: ")[1].strip()
    code, out, err = await cli(h, "officers", "bootstrap", officer_id, "--roles", roles,
                               "--public-key", public)
    assert code == 0, err
    code, out, err = await cli(h, "login", officer_id)
    assert code == 0 and out.startswith(f"logged in as {officer_id} ({roles.replace(',', ', ')})")


async def emailed_code(h: Harness, request_id: str) -> str:
    mail = await h.mail.wait_for(
        header=("Message-ID", f"<code.1.controller.{request_id}@dsr>"), timeout=30)
    assert mail["To"] == h.facts.controller_registered_email
    match = CODE.search(mail.get_content())
    assert match is not None
    return match.group(1)


def controller_erasure_flags(h: Harness, request_id: str) -> list[str]:
    return ["submit", "--right", "erasure", "--phone", h.facts.end_user_phone,
            "--channel", "email", "--requester", "controller",
            "--requester-email", h.facts.controller_registered_email,
            "--customer-account", h.facts.controller_account_id, "--request-id", request_id]


async def runs_of(h: Harness, request_id: str) -> int:
    query = f'WorkflowId = "{officer.workflow_id(request_id)}"'
    return len([w async for w in h.client.list_workflows(query)])


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10].upper()}"


# The paths an officer walks ------------------------------------------------------------------


async def test_officer_submits_verifies_and_follows_requests_through_the_cli(
        harness: Harness, tmp_path: Path) -> None:
    h, facts = harness, harness.facts
    erasure = new_id("CLI-ERASE")
    await cli_login(h)
    code, out, err = await cli(h, *controller_erasure_flags(h, erasure))
    assert code == 0, err
    assert out.strip() == f"submitted {erasure} (workflow dsr-{erasure})"
    assert facts.end_user_phone not in out + err

    access = new_id("CLI-ACCESS")
    now = datetime.now(UTC).isoformat()
    request_file = tmp_path / "access.json"
    fields = {
        "request_id": access, "rights": ["access"],
        "identities": [{"type": "account_id", "value": facts.account_holder_account_id}],
        "jurisdiction": "EU", "channel": "privacy_panel",
        "requester": {"kind": "subject", "email": facts.account_holder_email},
        "received_at": now, "last_login_at": now,
    }
    request_file.write_text(json.dumps(fields))
    # A panel login is the privacy center's to vouch for, not an officer's.
    code, out, err = await cli(h, "submit", "--file", str(request_file))
    assert (code, out) == (1, "") and "needs the assertion of the door that verified it" in err
    assert await runs_of(h, access) == 0
    request_file.write_text(json.dumps(fields | {"channel": "email", "last_login_at": None}))
    code, out, err = await cli(h, "submit", "--file", str(request_file), "--json")
    assert code == 0, err
    assert json.loads(out) == {"request_id": access, "workflow_id": f"dsr-{access}",
                               "possible_duplicate_of": []}
    while (await h.status(access)).status is not Status.AWAITING_VERIFICATION:
        await asyncio.sleep(0.1)
    code, out, err = await cli(h, "mark-verified", access, "--note", "checked on a video call")
    assert code == 0, err

    code, out, err = await cli(h, "verify", erasure, await emailed_code(h, erasure))
    assert code == 0, err
    assert out.strip() == f"{erasure}: code accepted; 0 identities still to verify"
    for request_id in (erasure, access):
        handle = h.client.get_workflow_handle(officer.workflow_id(request_id),
                                              result_type=RequestOutcome)
        assert (await handle.result()).status is Status.ANSWERED

    code, out, err = await cli(h, "status", erasure, "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["request_id"] == erasure and status["status"] == "answered"
    assert status["rights"] == ["erasure"] and status["jurisdiction"] == "EU"
    done = {step["name"] for step in status["steps"] if step["status"] == "done"}
    assert {"intake", "acknowledge", "verify", "execute", "answer"} <= done
    assert facts.end_user_phone not in out and facts.controller_registered_email not in out

    code, out, err = await cli(h, "list", "--json", "--status", "answered")
    assert code == 0, err
    rows = {row["request_id"]: row for row in json.loads(out)}
    assert set(rows) == {erasure, access}
    assert rows[erasure]["rights"] == ["erasure"] and rows[erasure]["due_at"]

    code, out, err = await cli(h, "list", "--right", "erasure", "--jurisdiction", "EU")
    assert code == 0, err
    assert erasure in out and "answered" in out and access not in out

    # An answered request keeps its id: submitting it again starts nothing.
    first_run = (await h.client.get_workflow_handle(officer.workflow_id(erasure)).describe()).run_id
    code, out, err = await cli(h, *controller_erasure_flags(h, erasure))
    assert code == 1 and "already submitted" in err, (out, err)
    latest = await h.client.get_workflow_handle(officer.workflow_id(erasure)).describe()
    assert latest.run_id == first_run and await runs_of(h, erasure) == 1

    # The access package, downloaded by an officer: the download is in the audit ledger.
    zipped = tmp_path / "package.zip"
    code, out, err = await cli(h, "package", access, "--out", str(zipped))
    assert code == 0, err
    with zipfile.ZipFile(zipped) as archive:
        assert "manifest.json" in archive.namelist()
    code, out, err = await cli(h, "package", erasure, "--out", str(tmp_path / "none.zip"))
    assert code == 2 and "no access package" in err and not (tmp_path / "none.zip").exists()
    with sqlite3.connect(h.settings.data_dir / "dsr.db") as db:
        downloads = db.execute("SELECT request_id, actor FROM ledger "
                               "WHERE kind = 'package_downloaded'").fetchall()
    assert downloads == [(access, "officer.ada")]  # who signed, not DSR_OFFICER_NAME
    with sqlite3.connect(h.settings.data_dir / "dsr.db") as db:
        received = dict(db.execute("SELECT request_id, actor FROM ledger "
                                   "WHERE kind = 'received'").fetchall())
    assert received == {access: "officer.ada", erasure: "officer.ada"}, \
        "the ledger names the officer who signed, not DSR_OFFICER_NAME"


async def test_refusals_exit_one_with_a_reason_and_change_nothing(harness: Harness) -> None:
    h = harness
    request = h.controller_erasure(request_id=new_id("CLI-REFUSE"))
    rid = request.request_id
    handle = await h.submit(request)
    right = await emailed_code(h, rid)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    code, out, err = await cli(h, "cancel", rid, "--reason", "requester withdrew")
    assert (code, out) == (1, "") and "no officer key" in err and "officers keygen" in err
    await cli_login(h)
    code, out, err = await cli(h, "verify", rid, wrong)
    assert code == 1, err
    assert out.strip() == f"{rid}: wrong code; 4 attempts left"

    received = request.received_at.date()
    # The first of the month four months on: past the extension limit on any day (the limit
    # counts from the local receipt date and rolls past weekends and holidays).
    month = received.month + 3
    too_late = date(received.year + month // 12, month % 12 + 1, 1)
    code, out, err = await cli(h, "extend", rid, "--reason", "many requests at once",
                               "--until", too_late.isoformat())
    assert code == 1 and out == ""
    assert err.startswith("error: refused:") and "beyond the limit" in err, err

    code, out, err = await cli(h, *controller_erasure_flags(h, rid))
    assert code == 1 and out == ""
    assert err.strip() == (f"error: refused: request {rid} was already submitted; "
                           f"see: python starter.py status {rid}")
    assert await runs_of(h, rid) == 1

    unknown = new_id("CLI-NOPE")
    code, out, err = await cli(h, "status", unknown)
    assert code == 1 and out == ""
    assert err.strip() == f"error: refused: no request {unknown} in the register"

    status = await h.status(rid)
    assert status.status is Status.AWAITING_VERIFICATION and not status.extended
    assert status.wrong_codes == 1

    code, out, err = await cli(h, "cancel", rid, "--reason", "requester withdrew")
    assert code == 0, err
    assert out.startswith(f"{rid}: ")
    assert (await handle.result()).status is Status.CANCELLED
    with Session(h.engine) as session:
        actors = session.scalars(select(MilestoneRecord.actor).where(
            MilestoneRecord.request_id == rid, MilestoneRecord.key == "cancelled")).all()
    assert actors == ["officer.ada"]  # who signed, not DSR_OFFICER_NAME


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if hasattr(command, "commands"):  # a group, such as ``stack``
            yield from _commands(command, (*prefix, name))


async def test_every_command_has_help() -> None:
    """Every command in-process (a CLI process costs over a second), and the entry point for
    real: the top level and a nested command."""
    commands = [(), *_commands(typer.main.get_command(starter.app))]
    assert {("submit",), ("verify",), ("mark-verified",), ("confirm-recipient",),
            ("new-code",), ("extend",), ("clarify",), ("approve",), ("deny",), ("cancel",),
            ("resolve-connector",), ("status",), ("list",), ("stack", "up")} <= set(commands)
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(starter.app, [*command, "--help"], env={"COLUMNS": "400"})
        assert result.exit_code == 0, (command, result.output)
        assert f"Usage: root {' '.join(command)}".rstrip() in result.output, command
    for command in [(), ("stack", "up")]:
        code, out, err = await cli(None, *command, "--help")
        assert code == 0 and err == "", (command, err)
        assert f"Usage: starter.py {' '.join(command)}".rstrip() in out, command
        assert "Data-subject-request orchestrator" in out or "Start Temporal" in out


# Bad input changes nothing -------------------------------------------------------------------

SUBJECT = "zora.quill@example.com"
REQUESTER = "desk.quill@example.com"


@dataclass(frozen=True)
class Bad:
    """One malformed submission: changes to valid flags (``None`` drops a flag) or the bytes
    or JSON of a request file; what stderr must name; values that must not appear at all."""

    case: str
    names: str
    rule: str
    flags: dict[str, Any] = field(default_factory=dict)
    file: Any = None
    private: tuple[str, ...] = ()


def submit_args(request_id: str, flags: dict[str, Any], subject: str = SUBJECT,
                requester: str = REQUESTER) -> list[str]:
    """``submit`` of a valid access request, with ``flags`` replacing or adding options (a
    value of None leaves the option out, a list repeats it)."""
    options: dict[str, Any] = {
        "--request-id": request_id, "--right": ["access"], "--email": [subject],
        "--channel": "email", "--requester": "subject", "--requester-email": requester,
    } | flags
    args = ["submit"]
    for option, value in options.items():
        for one in [] if value is None else value if isinstance(value, list) else [value]:
            args += [option, one]
    return args


def valid_file(request_id: str, subject: str = SUBJECT,
               requester: str = REQUESTER) -> dict[str, Any]:
    return {"request_id": request_id, "rights": ["access"],
            "identities": [{"type": "email", "value": subject}], "jurisdiction": "EU",
            "channel": "email", "requester": {"kind": "subject", "email": requester},
            "received_at": "2026-01-05T09:00:00+01:00"}


# field × kind of error. ``names`` is the field stderr must name ("FILE": the file's path).
GRID = [
    Bad("email identity malformed", "identities.0", "email identity is malformed",
        {"--email": ["zora.quill.example.com"]}, private=("zora.quill.example.com",)),
    Bad("phone not E.164", "identities.0", "E.164",
        {"--email": None, "--phone": ["0612345678"]}, private=("0612345678",)),
    Bad("email identity oversized", "identities.0.value", "at most 254 characters",
        {"--email": ["z" * 288 + "@example.com"]}, private=("z" * 40,)),
    Bad("unknown right", "rights.0", "Input should be 'access'", {"--right": ["forget_me"]}),
    Bad("no rights", "rights", "at least 1 item", {"--right": None}),
    Bad("repeated right", "rights", "rights are repeated", {"--right": ["access", "access"]}),
    Bad("unknown jurisdiction", "jurisdiction", "Input should be 'EU'", {"--jurisdiction": "XX"}),
    Bad("unknown channel", "channel", "Input should be 'privacy_panel'", {"--channel": "fax"}),
    Bad("received in the future", "received_at", "is in the future",
        {"--received-at": "2999-01-01T00:00:00+00:00"}),
    Bad("received without time zone", "received_at", "needs a time zone",
        {"--received-at": "2026-01-05T09:00:00"}),
    Bad("controller without customer account", "requester", "needs customer_account",
        {"--requester": "controller"}),
    Bad("agent without mandate", "requester", "needs mandate_reference",
        {"--requester": "agent"}),
    Bad("rectification without corrections", "request", "rectification needs corrections",
        {"--right": ["rectification"]}),
    Bad("correction field malformed", "corrections.0.field", "'^[a-z_]{2,40}$'",
        {"--right": ["rectification"], "--correct": ["Job Title=Chief Quill Officer"]},
        private=("Chief Quill Officer",)),
    Bad("privacy panel without account id", "request", "needs the account_id identity",
        {"--channel": "privacy_panel", "--last-login-at": "2026-01-05T09:00:00+00:00"}),
    Bad("newline and control characters in request id", "request_id", "3-64 letters",
        {"--request-id": "CLI\n\x1b[2JGRID"}),
    Bad("file is not JSON", "FILE", "is not valid JSON", file=b'{"request_id": '),
    Bad("file is not UTF-8", "FILE", "is not valid UTF-8: undecodable byte at offset 16",
        file=b'{"request_id": "\xff\xfe"}'),
    Bad("file: identities is a string", "identities", "Input should be a valid list",
        file={"identities": SUBJECT}, private=(SUBJECT,)),
    Bad("file: unknown extra field", "nickname", "Extra inputs are not permitted",
        file={"nickname": "Zo"}, private=(SUBJECT,)),
]


def snapshot_db(h: Harness) -> dict[str, int]:
    with Session(h.engine) as session:
        return {table.name: session.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables}


def snapshot_mail(h: Harness) -> int:
    folder = h.settings.mail_dir
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


async def snapshot_temporal(h: Harness) -> int:
    counted = await h.client.count_workflows(f'TaskQueue="{h.settings.task_queue}"')
    return counted.count


async def test_malformed_submissions_exit_two_name_the_field_and_start_nothing(
        harness: Harness, tmp_path: Path) -> None:
    h = harness
    before = (await snapshot_temporal(h), snapshot_db(h), snapshot_mail(h))
    assert set(before[1]) == {"requests", "request_subjects", "milestones", "confirmations",
                              "ledger", "ledger_head", "legal_holds", "officer_sessions",
                              "package_links", "officers", "spent_nonces"}
    problems: list[str] = []
    request_ids = []
    for number, bad in enumerate(GRID):
        request_id = f"CLI-GRID-{number}-{uuid.uuid4().hex[:6]}"
        request_ids.append(request_id)
        path = tmp_path / f"bad-{number}.json"
        if bad.file is None:
            args = submit_args(request_id, bad.flags)
        else:
            content = bad.file
            if isinstance(content, dict):
                content = valid_file(request_id) | content
            path.write_bytes(content if isinstance(content, bytes)
                             else json.dumps(content).encode())
            args = ["submit", "--file", str(path)]
        code, out, err = await cli(h, *args)
        names = str(path) if bad.names == "FILE" else bad.names
        shown = out + err
        if code != 2:
            problems.append(f"{bad.case}: exit {code}, not 2: {shown!r}")
        if out:
            problems.append(f"{bad.case}: stdout {out!r}")
        if not err.startswith("error: ") or f"{names}" not in err or bad.rule not in err:
            problems.append(f"{bad.case}: stderr does not name {names!r} and {bad.rule!r}: "
                            f"{err!r}")
        for value in (*bad.private, SUBJECT, REQUESTER):
            if value in shown or value in re.sub(r"\s+", "", shown):
                problems.append(f"{bad.case}: personal data shown: {value[:12]}...")
        if "Traceback" in shown or "input_value" in shown:
            problems.append(f"{bad.case}: internals shown: {shown!r}")
    assert not problems, "\n".join(problems)

    assert (await snapshot_temporal(h), snapshot_db(h), snapshot_mail(h)) == before
    for request_id in request_ids:
        with pytest.raises(RPCError) as missing:
            await h.client.get_workflow_handle(officer.workflow_id(request_id)).describe()
        assert missing.value.status is RPCStatusCode.NOT_FOUND


def test_free_text_in_a_status_is_shown_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """Officers' notes, actors and connector errors are text, never rich markup: a note
    holding "[/red]" once stopped the status command with a MarkupError."""
    shown = Console(record=True, width=400)
    monkeypatch.setattr(following_cli, "console", shown)
    following_cli._print_register_status({
        "request_id": "R-1", "status": "answered", "rights": ["erasure"],
        "jurisdiction": "EU", "milestones": [{
            "step": "denial", "at": datetime(2026, 12, 1, tzinfo=UTC), "actor": "[bold]x",
            "detail": {"reason": "see [/red] and [link=http://evil.example]here[/link]"}}]})
    text = shown.export_text()
    assert "[bold]x" in text and "see [/red] and [link=http://evil.example]here[/link]" in text
