"""The bad-input corpus (tests/bad_inputs.yaml): malformed input, laid out as field x kind of
error, at every entry point an officer or a client has: the submit flags (the real CLI in its
own process), request files and the other commands (the same typer ``app`` in-process), and
Updates sent straight to a running request's workflow.

Each case must be refused (exit 2 for bad input; exit 1 where the running workflow refuses),
with a message naming the field and the problem, never repeating an identity given; and
nothing may change: the workflows, every row of every table of the application database,
the mail folder, and the waiting request's state. One test per entry point, one harness
each, every failure reported at once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel
from sqlalchemy import inspect, text
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import FailureError
from typer.testing import CliRunner

import starter
from dsr.assertions import Assertion, Authority, Role, sign_action
from dsr.credentials import Signer
from dsr.deadlines import add_months
from dsr.status import Status
from services import workflow_client as officer
from tests.conftest import Harness
from tests.test_cli import cli, cli_env, emailed_code, submit_args, valid_file
from tests.test_foreign_payloads import foreign_client
from workflows import models as wm
from workflows.models import RequestStatus, UpdateResult

CORPUS = yaml.safe_load((Path(__file__).parent / "bad_inputs.yaml").read_text(encoding="utf-8"))
KINDS = {"missing", "empty", "malformed", "unknown", "wrong_type", "out_of_range", "oversized",
         "invalid_utf8", "control_chars", "inconsistent"}

SUBJECT = "ivo.brandt@example.org"
REQUESTER = "desk.brandt@example.org"
PHONE = "+447700900123"
# Examples the error messages quote on purpose (never given as input by the corpus).
EXAMPLES = {"name@example.com", "+31612345678"}
EMAILISH = re.compile(r"[^\s@\"'\[\]{},]+@[^\s@\"'\[\]{},]+")
PHONEISH = re.compile(r"\+?[0-9][0-9 ]{6,}[0-9]")
REPEAT = re.compile(r"<(\d+)\*([^>]+)>")
ONE_AT_A_TIME = threading.Lock()


# Cases ----------------------------------------------------------------------------------------


@dataclass
class Place:
    """What the placeholders of one test stand for."""

    tmp: Path
    waiting: str = "NONE-WAITING"
    beyond_limit: str = ""

    def expand(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self.expand(k): self.expand(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v) for v in value]
        if not isinstance(value, str):
            return value
        value = REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), value)
        for name, real in {
            "{subject}": SUBJECT, "{requester}": REQUESTER, "{phone}": PHONE,
            "{waiting}": self.waiting, "{past}": "2020-01-06",
            "{tomorrow}": (datetime.now(UTC).date() + timedelta(days=1)).isoformat(),
            "{beyond_limit}": self.beyond_limit, "{tmp}": str(self.tmp),
            "{missing}": str(self.tmp / "no-such-folder"),
        }.items():
            value = value.replace(name, real)
        return value


def case_name(entry: str, number: int, case: dict[str, Any]) -> str:
    return f"{entry}[{number}] {case['field']} x {case['kind']}"


def private_values(case: dict[str, Any], given: list[str]) -> set[str]:
    """Identities given: the corpus's own, any email- or phone-like text in the input, and
    the values given for identity fields. Short values (they occur in words) are left out."""
    found = {SUBJECT, REQUESTER, PHONE, *case.get("private", [])}
    for value in given:
        found |= set(EMAILISH.findall(value)) | set(PHONEISH.findall(value))
    return {v for v in found if len(v) >= 6 and v not in EXAMPLES}


def leaks(shown: str, private: set[str]) -> list[str]:
    squeezed = re.sub(r"\s+", "", shown)
    out = []
    for value in private:
        probes = {value, value[:24]} if len(value) > 24 else {value}
        for probe in probes:
            if probe in shown or re.sub(r"\s+", "", probe) in squeezed:
                out.append(probe[:12] + "...")
    return out


def judge(name: str, case: dict[str, Any], place: Place, code: int, message: str,
          private: set[str], crashed: BaseException | None = None) -> list[str]:
    """The problems with one refusal: exit code, the fragments named, identities, internals."""
    problems = []
    expected_exit = case.get("exit", 2)
    if crashed is not None:
        problems.append(f"{name}: crashed with {type(crashed).__name__}: {crashed}")
    if code != expected_exit:
        problems.append(f"{name}: exit {code}, not {expected_exit}: {message!r}")
    flat = re.sub(r"[\s│╭╮╰╯─]+", " ", message)
    for fragment in place.expand(case["expect"]):
        fragment = re.sub(r"\s+", " ", fragment)
        if fragment not in flat:
            problems.append(f"{name}: the message does not say {fragment!r}: {message!r}")
    if leaked := leaks(message, private):
        problems.append(f"{name}: identity repeated in the message: {leaked}")
    if "Traceback" in message or "input_value" in message:
        problems.append(f"{name}: internals shown: {message!r}")
    return problems


# What must not change -----------------------------------------------------------------------


def _digest(rows: list[Any]) -> str:
    return hashlib.sha256(repr(sorted(repr(tuple(r)) for r in rows)).encode()).hexdigest()


def snapshot_tables(h: Harness) -> dict[str, tuple[int, str]]:
    """Every table of the application database: its row count and a hash of all its rows;
    but the spent nonces: an officer's signed action is spent once the service has checked
    it, whether or not what it asks is then refused (the same assertion is not taken twice)."""
    engine = h.engine
    with engine.connect() as db:
        return {table: (len(rows), _digest(rows))
                for table in sorted(inspect(engine).get_table_names()) if table != "spent_nonces"
                for rows in [db.execute(text(f'SELECT * FROM "{table}"')).fetchall()]}


def snapshot_mail(h: Harness) -> list[tuple[str, str]]:
    folder = h.settings.mail_dir
    if not folder.exists():
        return []
    return sorted((str(p.relative_to(folder)), hashlib.sha256(p.read_bytes()).hexdigest())
                  for p in folder.rglob("*") if p.is_file())


async def snapshot_workflows(h: Harness) -> list[tuple[str, str, str]]:
    query = f'TaskQueue="{h.settings.task_queue}"'
    return sorted([(w.id, w.run_id, str(w.status))
                   async for w in h.client.list_workflows(query)])


async def snapshot_files(h: Harness) -> list[str]:
    """Blobs and ledger anchors: anything the CLI could write beside the database."""
    root = h.settings.data_dir
    skip = {"mail"}
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.relative_to(root).parts[0] not in skip
                  and not p.name.startswith("bad-") and p.suffix not in {".db", ".db-wal",
                                                                         ".db-shm", ".log"})


async def snapshot(h: Harness, waiting: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "workflows": await snapshot_workflows(h), "tables": snapshot_tables(h),
        "mail": snapshot_mail(h), "files": await snapshot_files(h)}
    if waiting is not None:
        status = await h.status(waiting)
        state["waiting"] = status.model_dump(mode="json")
    return state


async def settled(h: Harness, waiting: str | None) -> dict[str, Any]:
    """The state once nothing moves any more (the waiting request has sent its mail, recorded
    its milestones, and listing has caught up): three equal looks in a row."""
    last, same = await snapshot(h, waiting), 0
    for _ in range(60):
        await asyncio.sleep(0.3)
        now = await snapshot(h, waiting)
        same = same + 1 if now == last else 0
        last = now
        if same == 2:
            return now
    raise AssertionError("the harness never settled")


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [f"{part} changed: {before[part]!r} -> {after.get(part)!r}"
            for part in before if before[part] != after.get(part)]


async def waiting_request(h: Harness) -> tuple[str, str]:
    """A controller erasure waiting for its one-time code; its id and extension limit."""
    request = h.controller_erasure(request_id=f"BAD-WAIT-{uuid.uuid4().hex[:8]}")
    await h.submit(request)
    await emailed_code(h, request.request_id)
    beyond = add_months(request.received_at.date(), 4).isoformat()
    return request.request_id, beyond


# In-process CLI ---------------------------------------------------------------------------


def invoke(h: Harness, args: list[str],
           stdin: bytes | None = None) -> tuple[int, str, BaseException | None]:
    """``starter.app`` in this process, with the harness's settings as the subprocess gets
    them (and ``stdin``, else nothing, on its standard input); run in a thread (its own event
    loop) so the workers in this loop keep working."""
    env: dict[str, str | None] = dict(cli_env(h))
    env |= {k: None for k in os.environ if k.startswith("DSR_") and k not in env}
    with ONE_AT_A_TIME:  # CliRunner swaps sys.stdin, sys.stdout, sys.stderr and os.environ
        result = CliRunner().invoke(starter.app, args, input=stdin, env=env)
    crashed = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.stdout + result.stderr, crashed


def stdin_of(case: dict[str, Any], place: Place) -> bytes | None:
    """What the case puts on the command's standard input (latin-1: one byte a character)."""
    return str(place.expand(case["stdin"])).encode("latin-1") if "stdin" in case else None


def file_bytes(case: dict[str, Any], request_id: str, place: Place) -> bytes:
    if "raw" in case:
        return str(place.expand(case["raw"])).encode("latin-1")
    if "raw_json" in case:  # JSON text merged by hand: escapes and literals json.dumps avoids
        merged = json.dumps(valid_file(request_id, SUBJECT, REQUESTER))[:-1]
        return (merged + ", " + str(case["raw_json"])[1:]).encode()
    data = valid_file(request_id, SUBJECT, REQUESTER)
    for key, value in place.expand(case.get("json", {})).items():
        *parents, last = key.split("/")
        target = data
        for parent in parents:
            target = target[parent]
        target[last] = value
    for key in case.get("drop", []):
        *parents, last = key.split("/")
        target = data
        for parent in parents:
            target = target[parent]
        del target[last]
    return json.dumps(data).encode()


def given_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in given_strings(k) + given_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in given_strings(v)]
    return [value] if isinstance(value, str) else []


def test_corpus_is_a_grid() -> None:
    """Every case names its field and one of the kinds; every kind is covered by each of the
    entry points that can receive it; over a hundred cases in all."""
    total = 0
    for entry, cases in CORPUS.items():
        total += len(cases)
        for number, case in enumerate(cases):
            assert case["kind"] in KINDS, case_name(entry, number, case)
            assert case["field"] and case["expect"], case_name(entry, number, case)
        kinds = {case["kind"] for case in cases}
        assert kinds >= KINDS - {"invalid_utf8", "wrong_type"}, (entry, KINDS - kinds)
    assert {case["kind"] for case in CORPUS["files"]} == KINDS
    assert total >= 100


# The entry points ---------------------------------------------------------------------------


async def test_bad_submit_flags_exit_two_and_start_nothing(harness: Harness,
                                                           tmp_path: Path) -> None:
    """The real CLI in its own process (a few at once); the cases marked ``in_process``
    (argv cannot carry a NUL byte; or another case of the field runs as a process) through
    the same app in this process."""
    h, place = harness, Place(tmp_path)
    before = await settled(h, None)
    gate = asyncio.Semaphore(3)

    async def one(number: int, case: dict[str, Any]) -> list[str]:
        name = case_name("flags", number, case)
        request_id = f"BAD-FLAG-{number}-{uuid.uuid4().hex[:6]}"
        args = submit_args(request_id, place.expand(case["flags"]), SUBJECT, REQUESTER)
        stdin = stdin_of(case, place)
        private = private_values(case, [*args, *place.expand(case.get("private", [])),
                                        (stdin or b"").decode("latin-1")])
        if "in_process" in case:
            code, shown, crashed = await asyncio.to_thread(invoke, h, args, stdin)
            return judge(name, case, place, code, shown, private, crashed)
        async with gate:
            code, out, err = await cli(h, *args, stdin=stdin)
        problems = judge(name, case, place, code, err, private)
        if out or not err.startswith("error: "):
            problems.append(f"{name}: stdout {out!r}, stderr {err!r}")
        return problems + [f"{name}: stdout shows {leaked}" for leaked in leaks(out, private)]

    found = await asyncio.gather(*(one(n, c) for n, c in enumerate(CORPUS["flags"])))
    problems = [problem for one_case in found for problem in one_case]
    problems += changes(before, await snapshot(h, None))
    assert not problems, "\n".join(problems)


async def test_bad_request_files_exit_two_and_start_nothing(harness: Harness,
                                                            tmp_path: Path) -> None:
    h, place = harness, Place(tmp_path)
    before = await settled(h, None)
    problems: list[str] = []
    for number, case in enumerate(CORPUS["files"]):
        name = case_name("files", number, case)
        path = tmp_path / f"bad-{number}.json"
        if "path" in case:
            path = Path(place.expand(case["path"]))
        else:
            path.write_bytes(file_bytes(case, f"BAD-FILE-{number}-{uuid.uuid4().hex[:6]}",
                                        place))
        content = path.read_bytes().decode("utf-8", "replace") if path.is_file() else ""
        private = private_values(case, [content, *given_strings(case.get("json", {}))])
        code, shown, crashed = await asyncio.to_thread(invoke, h, ["submit", "--file",
                                                                   str(path)])
        expect_case = case | {"expect": [str(path) if f == "{file}" else f
                                         for f in case["expect"]]}
        problems += judge(name, expect_case, place, code, shown, private, crashed)
    problems += changes(before, await snapshot(h, None))
    assert not problems, "\n".join(problems)


async def test_bad_command_input_is_refused_and_changes_nothing(harness: Harness,
                                                                tmp_path: Path) -> None:
    h = harness
    waiting, beyond = await waiting_request(h)
    place = Place(tmp_path, waiting=waiting, beyond_limit=beyond)
    h.log_in_cli(roles=(Role.OFFICER, Role.APPROVER, Role.ADMINISTRATOR))
    before = await settled(h, waiting)
    assert before["waiting"]["status"] == Status.AWAITING_VERIFICATION
    problems: list[str] = []
    for number, case in enumerate(CORPUS["commands"]):
        name = case_name("commands", number, case)
        args = [str(a) for a in place.expand(case["args"])]
        stdin = stdin_of(case, place)
        private = private_values(case, [*args, (stdin or b"").decode("latin-1")]) | {
            h.facts.end_user_phone, h.facts.controller_registered_email}
        code, shown, crashed = await asyncio.to_thread(invoke, h, args, stdin)
        problems += judge(name, case, place, code, shown, private, crashed)
    problems += changes(before, await snapshot(h, waiting))
    assert not problems, "\n".join(problems)


ROGUE = Authority("rogue", Ed25519PrivateKey.generate())


def with_assertion(h: Harness, request_id: str, case: dict[str, Any], payload: Any) -> Any:
    """The payload as an officer signs it, or with the assertion the case names (``none``,
    ``malformed``, ``rogue``: another authority, ``expired``, ``other-request``,
    ``other-arguments``, ``officer-only``: a credential without the role approving needs)."""
    kind = case.get("assertion", "signed")
    if kind == "none" or not isinstance(payload, wm.OfficerPayload):
        return payload
    ada = h.officer("officer.only", [Role.OFFICER]) if kind == "officer-only" else h.officer()
    role = Role.OFFICER if kind == "officer-only" else ada.action_roles.get(
        case["update"], [Role.OFFICER])[0]
    if kind == "malformed":
        return payload.model_copy(update={"assertion": Assertion(credential="x.y.z", action="")})
    target = "dsr-T-another" if kind == "other-request" else officer.workflow_id(request_id)
    now = datetime.now(UTC) - (timedelta(minutes=10) if kind == "expired" else timedelta(0))
    credential = (ROGUE.certify("officer.ada", [Role.OFFICER, Role.APPROVER],
                                ada.key.public_key(), now)
                  if kind == "rogue" else ada.credential)
    arguments = payload.model_copy(update={"officer": "someone else"}) \
        if kind == "other-arguments" else payload
    with warnings.catch_warnings():  # a payload built unchecked, wrong types and all
        warnings.simplefilter("ignore", UserWarning)
        return _signed(ada, target, case["update"], arguments, role, now, payload, credential)


def _signed(ada: Signer, target: str, action: str, arguments: Any, role: Role, now: datetime,
            payload: Any, credential: str) -> Any:
    assertion = sign_action(ada.key, credential, namespace=ada.namespace, target=target,
                            action=action, arguments=arguments, role=role, now=now)
    return payload.model_copy(update={"assertion": assertion})


async def test_bad_updates_are_rejected_by_the_workflow_and_change_nothing(
        harness: Harness, tmp_path: Path) -> None:
    """Payloads no client-side model checked: the worker's decoding and the Updates'
    validators refuse them, and a refused Update leaves the request as it was."""
    h = harness
    waiting, beyond = await waiting_request(h)
    place = Place(tmp_path, waiting=waiting, beyond_limit=beyond)
    h.officer(), h.officer("officer.only", [Role.OFFICER])  # registered before the snapshot
    before = await settled(h, waiting)
    problems: list[str] = []
    for number, case in enumerate(CORPUS["updates"]):
        name = case_name("updates", number, case)
        model: type[BaseModel] = getattr(wm, case["model"])
        payload = with_assertion(h, waiting, case, model.model_construct(
            **place.expand(case["payload"])))
        private = private_values(case, given_strings(place.expand(case["payload"])))
        # The worker's reason, cause by cause (a payload that does not decode is "Failed
        # decoding arguments", caused by the validation error naming the field) ...
        client = foreign_client(h.client, case["sender"]) if "sender" in case else h.client
        handle = client.get_workflow_handle(officer.workflow_id(waiting))
        try:
            result = await asyncio.wait_for(handle.execute_update(
                case["update"], payload, result_type=UpdateResult), timeout=30)
        except WorkflowUpdateFailedError as error:
            chain: list[str] = []
            cause: BaseException | None = error.cause
            while cause is not None:
                chain.append(str(getattr(cause, "message", None) or cause))
                cause = cause.cause if isinstance(cause, FailureError) else None
            problems += judge(name, case | {"exit": 0}, place, 0, "\n".join(chain), private)
        else:
            problems.append(f"{name}: accepted: {result!r}")
        # ... and the officer's client refuses it too.
        try:
            await officer.update(client, waiting, case["update"], payload, UpdateResult)
            problems.append(f"{name}: services.workflow_client.update accepted it")
        except officer.OfficerError as error:
            if not str(error).startswith("refused: ") or leaks(str(error), private):
                problems.append(f"{name}: services.workflow_client.update said {error}")
    status: RequestStatus = await h.status(waiting)
    if status.wrong_codes or status.extended or status.status is not Status.AWAITING_VERIFICATION:
        problems.append(f"the waiting request moved: {status!r}")
    problems += changes(before, await snapshot(h, waiting))
    assert not problems, "\n".join(problems)

