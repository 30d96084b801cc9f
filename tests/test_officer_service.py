"""The officer service on the dev server with the real workers: an officer's CLI holding none
of the product's secrets (no server secret, no payload key, no database) logs in and acts
through it; without a credential, revoked, replayed or malformed, an action is refused with a
reason and changes nothing."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cli.service_client import OfficerServiceClient
from dsr.assertions import Role
from dsr.officers import Revocation
from dsr.status import Status
from services import workflow_client as officer
from tests.conftest import Harness
from tests.test_cli import cli, cli_env, controller_erasure_flags
from tests.test_requests_e2e import emailed_code
from workflows.models import OfficerAction, OfficerNote, RequestOutcome


def officer_env(h: Harness, home: Path) -> dict[str, str]:
    """An officer's machine: their own folder, the officer service's address, no secret."""
    env = cli_env(None) | {"DSR_DATA_DIR": str(home),
                           "DSR_OFFICER_SERVICE_URL": h.settings.officer_service_url,
                           "DSR_SETTINGS_FILE": str(home / "absent.env")}
    assert not {k for k in env if k in ("DSR_HMAC_KEY", "DSR_PAYLOAD_KEYS", "DSR_DATABASE_URL")}
    return env


async def test_an_officer_without_the_products_secrets_logs_in_and_acts(
        harness: Harness, tmp_path: Path) -> None:
    h = harness
    home = tmp_path / "officer-home"
    request = h.controller_erasure()
    rid = request.request_id
    handle = await h.submit(request)
    await emailed_code(h, rid)

    async def as_officer(*args: str) -> tuple[int, str, str]:
        return await cli(None, *args, env=officer_env(h, home))

    code, out, err = await as_officer("cancel", rid, "--reason", "requester withdrew")
    assert (code, out) == (1, "") and "officers keygen" in err
    code, out, err = await as_officer("officers", "keygen")
    assert code == 0, err
    public = out.split("public key: ")[1].strip()
    code, out, err = await cli(h, "officers", "bootstrap", "officer.ada", "--roles",
                               "approver,officer", "--public-key", public)  # the operator
    assert code == 0, err
    code, out, err = await as_officer("cancel", rid, "--reason", "requester withdrew")
    assert (code, out) == (1, "") and "log in with python starter.py login" in err
    code, out, err = await as_officer("login", "officer.ada")
    assert code == 0 and out.startswith("logged in as officer.ada (approver, officer)"), err
    code, out, err = await as_officer("cancel", rid, "--reason", "requester withdrew")
    assert code == 0, err
    assert (await handle.result()).status is Status.CANCELLED
    code, out, err = await as_officer("approve", rid)
    assert (code, out) == (1, "") and f"request {rid} is closed; see its status" in err
    code, out, err = await as_officer("proof", rid, "--out", str(home / "proof.eml"))
    assert code == 0, err
    assert f"<cancelled.{rid}@dsr>" in (home / "proof.eml").read_text()
    (home / "proof.eml").unlink()
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert written == ["officer/credential.jwt", "officer/officer.key"], "and no secret"


async def test_a_revoked_officer_a_replay_and_bad_input_are_refused_at_once(
        harness: Harness) -> None:
    h = harness
    request = h.controller_erasure()
    rid = request.request_id
    handle = await h.submit(request)
    await emailed_code(h, rid)
    url = h.settings.officer_service_url
    admin = OfficerServiceClient(url, h.officer("admin.lee", [Role.ADMINISTRATOR]))
    tan_signer = h.officer("officer.tan", [Role.OFFICER, Role.APPROVER])
    tan = OfficerServiceClient(url, tan_signer)

    approval = officer.signed(tan_signer, rid, "approve", OfficerAction())
    assert (await tan.update(rid, "approve", approval)).message == "approved"
    async with aiohttp.ClientSession() as session:
        again = await session.post(f"{url}/v1/requests/{rid}/approve",
                                   json=approval.model_dump(mode="json"))
        assert again.status == 403
        assert "already used (a replay)" in (await again.json())["error"]
        bad = await session.post(f"{url}/v1/requests/{rid}/extend", json={"until": "soon"})
        assert bad.status == 400
        assert "reason: Field required" in (await bad.json())["error"]
        unknown = await session.post(f"{url}/v1/requests/{rid}/forget_everything", json={})
        assert unknown.status == 404
    with pytest.raises(officer.OfficerError, match="revoke_officer needs the role"):
        await tan.directory("revoke_officer", Revocation(officer_id="admin.lee"))
    await admin.directory("revoke_officer", Revocation(officer_id="officer.tan"))
    with pytest.raises(officer.OfficerError, match=r"officer\.tan is no longer a registered"):
        await tan.update(rid, "cancel", OfficerNote(note="requester withdrew"))
    status = await h.status(rid)
    assert status.status is Status.AWAITING_VERIFICATION
    listed = {o["officer_id"]: o for o in await admin.directory("list_officers")}
    assert listed["officer.tan"]["revoked_at"] is not None
    await h.update(rid, "cancel", OfficerNote(note="requester withdrew"))
    assert (await handle.result()).status is Status.CANCELLED


async def test_an_auditor_verifies_the_ledger_through_the_service_and_sees_tampering(
        harness: Harness, tmp_path: Path) -> None:
    h = harness
    await (await h.submit(h.request())).result()
    auditor, clerk = tmp_path / "auditor-home", tmp_path / "clerk-home"
    for home, officer_id, roles in ((auditor, "audit.kim", [Role.AUDITOR]),
                                    (clerk, "officer.clerk", [Role.OFFICER])):
        h.log_in_cli(officer_id, roles, home)
    code, out, err = await cli(None, "ledger", "verify", "--json",
                               env=officer_env(h, clerk))
    assert (code, out) == (1, "") and "verify_ledger needs the role auditor or administrator" in err
    code, out, err = await cli(None, "ledger", "verify", env=officer_env(h, auditor))
    assert code == 0 and out.startswith("ledger intact"), (out, err)
    with sqlite3.connect(h.settings.data_dir / "dsr.db") as database:
        database.execute("UPDATE ledger SET actor = 'someone else' WHERE seq = 2")
    code, out, err = await cli(None, "ledger", "verify", "--json", env=officer_env(h, auditor))
    assert code == 1 and json.loads(out)["broken_seq"] == 2, (out, err)


WITHOUT_A_CREDENTIAL = [
    ("hold", "place", "--kind", "litigation", "--reason", "case 2026-17", "--product", "SMS"),
    ("hold", "release", "HOLD-0000ABCD", "--reason", "case settled"),
    ("hold", "list"),
    ("package", "T-anything", "--out", "{home}/p.zip"),
    ("proof", "T-anything", "--out", "{home}/p.eml"),
    ("ledger", "verify"),
    ("ledger", "restored", "--reason", "restored last night's backup"),
    ("officers", "list"),
    ("submit", "--right", "access", "--email", "ana@example.com"),
    ("verify", "T-anything", "123456"),
    ("report", "--from", "2026-01-01"),
    ("ui-session",),
    ("ui-session", "--list"),
]


async def test_without_a_key_or_a_credential_every_officer_command_is_refused(
        harness: Harness, tmp_path: Path) -> None:
    h = harness
    home = tmp_path / "officer-home"
    home.mkdir()
    stages = (("no key", "officers keygen"), ("no credential", "python starter.py login"))
    for stage, says in stages:
        if stage == "no credential":
            assert (await cli(None, "officers", "keygen", env=officer_env(h, home)))[0] == 0
        for command in WITHOUT_A_CREDENTIAL:
            args = [arg.replace("{home}", str(home)) for arg in command]
            code, out, err = await cli(None, *args, env=officer_env(h, home))
            assert (code, out) == (1, ""), (stage, command, out, err)
            assert says in err, (stage, command, err)
    assert sorted(p.name for p in home.rglob("*") if p.is_file()) == ["officer.key"]


# Run only by the operator, on the server, with the server secret (or none at all).
OPERATOR_COMMANDS = {"demo", "seed", "setup-cluster", "stack up", "stack down", "stack status",
                     "keys retire", "ledger anchor", "hold recheck", "officers bootstrap"}
GROUPS = {"hold", "ledger", "officers", "keys", "stack", "rules"}


def every_command() -> set[str]:
    import typer

    import starter

    def walk(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[str]:
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(command, (*prefix, name))
            else:
                yield " ".join((*prefix, name))

    return set(walk(typer.main.get_command(starter.app)))


async def test_every_command_but_the_operators_runs_with_no_secret(
        harness: Harness, tmp_path: Path) -> None:
    """An officer (ada) and an administrator (lee), each on a machine holding only their own
    key and credential, run every command but the operator's. A command that reaches the
    request and is refused there for the request's state ("refused: ...", after the
    assertion was checked) counts as run; one refused for want of a secret fails."""
    h, facts = harness, harness.facts
    ada, lee = tmp_path / "ada", tmp_path / "lee"
    h.log_in_cli("admin.lee", [Role.ADMINISTRATOR], lee)
    ran: set[str] = set()

    async def run(home: Path, *args: str, stdin: bytes | None = None,
                  refused: str | None = None) -> str:
        code, out, err = await cli(None, *args, stdin=stdin, env=officer_env(h, home))
        ran.add(" ".join(args[:2]) if args[0] in GROUPS else args[0])
        if refused is None:
            assert code == 0, (args, err)
        else:
            assert code == 1 and err.startswith("error: refused:"), (args, out, err)
            assert refused in err and "not authorized" not in err, (args, err)
        return out

    public = (await run(ada, "officers", "keygen")).split("public key: ")[1].strip()
    await run(lee, "officers", "register", "officer.ada", "--roles", "officer,approver",
              "--public-key", public)
    await run(ada, "login", "officer.ada")
    assert "officer.ada" in await run(lee, "officers", "list")

    erasure = f"NOSECRET-E-{uuid.uuid4().hex[:8]}"
    await run(ada, *controller_erasure_flags(h, erasure))
    await run(ada, "verify", erasure, "--code-file", "-",
              stdin=(await emailed_code(h, erasure)).encode())
    access = f"NOSECRET-A-{uuid.uuid4().hex[:8]}"
    await run(ada, "submit", "--request-id", access, "--right", "access", "--account-id",
              facts.account_holder_account_id, "--requester-email", facts.account_holder_email)
    while (await h.status(access)).status is not Status.AWAITING_VERIFICATION:
        await asyncio.sleep(0.1)
    await run(ada, "mark-verified", access, "--note", "checked on a video call")
    for request_id in (erasure, access):
        handle = h.client.get_workflow_handle(officer.workflow_id(request_id),
                                              result_type=RequestOutcome)
        assert (await handle.result()).status is Status.ANSWERED
    assert json.loads(await run(ada, "status", erasure, "--json"))["status"] == "answered"
    assert {erasure, access} <= {r["request_id"] for r in json.loads(
        await run(ada, "list", "--json"))}
    await run(ada, "proof", erasure, "--out", str(tmp_path / "proof.eml"))
    await run(ada, "package", access, "--out", str(tmp_path / "package.zip"))
    await run(ada, "revoke-link", access, "--reason", "sent to an old address")

    waiting = h.controller_erasure()
    rid = waiting.request_id
    await h.submit(waiting)
    await emailed_code(h, rid)
    await run(ada, "extend", rid, "--reason", "many requests at once")
    await run(ada, "clarify", rid, "--question", "which of your numbers?")
    await run(ada, "clarify", rid, "--received", "the requester answered")
    await run(ada, "new-code", rid)
    await run(ada, "approve", rid)
    await run(ada, "confirm-recipient", rid, "--note", "address checked",
              refused="not waiting for its recipient to be confirmed")
    await run(ada, "confirm-instruction", rid, "sms", "--note", "done",
              refused="sms is not awaiting a confirmation")
    await run(ada, "resolve-connector", rid, "sms", "--skip", "--reason", "gone",
              refused="connector sms is not waiting for an officer")
    await run(ada, "child-review", rid, "--erase", "--note", "the subject is 15",
              refused="no child erasure review awaits a decision")
    await run(ada, "release-answer", rid, "--note", "texts checked",
              refused="the answer is not held for review")
    await run(ada, "retention-decision", rid, "--erase", "--note", "the draft is not ours",
              refused="no retention decision is awaited")
    await run(ada, "deny", rid, "--reason", "the account is not the requester's")

    hold = json.loads(await run(lee, "hold", "place", "--kind", "litigation", "--reason",
                                "case 2026-17", "--product", "SMS", "--json"))
    await run(lee, "hold", "list")
    await run(lee, "hold", "release", hold["hold_id"], "--reason", "case settled")
    assert (await run(lee, "ledger", "verify")).startswith("ledger intact")
    await run(lee, "ledger", "restored", "--reason", "restored last night's backup",
              refused="nothing to record: every anchor agrees with the chain")
    today = datetime.now(UTC).date().isoformat()
    assert json.loads(await run(lee, "report", "--from", today, "--json"))["totals"][
        "received"] >= 3
    await run(lee, "rules", "list", "--drafts")
    await run(lee, "rules", "confirm", "authorities.yaml", "jurisdictions.UK.complaint",
              refused="already confirmed")  # the harness's policy: Legal confirmed it all
    await run(ada, "rules", "doc", "--out", str(tmp_path / "legal.md"))
    await run(ada, "ui-session", "--json")
    await run(ada, "ui-session", "--revoke-all")
    await run(ada, "cancel", erasure, "--reason", "closed", refused="is closed")
    await run(lee, "officers", "revoke", "officer.ada")

    assert ran == every_command() - OPERATOR_COMMANDS
    for home in (ada, lee):
        kept = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
        assert kept == ["officer/credential.jwt", "officer/officer.key"], "and no secret"
