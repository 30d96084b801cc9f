"""Nothing the product writes outside the affiliate stores holds personal data readably.

The embedded stack for real (dev server, mail, codec and download servers, the worker with
every built-in connector) on free ports, plus a connector worker whose errors quote the
person's email. It runs the demo's two requests (an account holder's access through the
privacy panel; a customer's erasure of an end user's SMS, verified by an emailed code) and an
access request whose CRM connector fails with the email in its message, which the officer
verifies by hand and then records as done by hand, both notes quoting the email; and a legal
hold placed and released with reasons quoting it. Then it reads, without the codec, what anyone
with the server's or the operator's access would:

* every workflow history, description and schedule as ``temporal ... --output json`` prints
  it, with every base64 value decoded as well (unencrypted payloads are base64 there);
* every log line of every process;
* every row of every table of the application database;
* every blob (exports, packages).

None of them may hold the subjects' emails, phone numbers (E.164, digits only, any case,
JSON-escaped), names, addresses, IBANs or message contents; nor the server secret, the officer
authority's key, an officer's or a door's private key or credential, or an officer's signed
action (each is searched for by its signature). The mail folder (the outside
world) and the affiliate stores are where those belong, and the test checks they are there:
the search would find them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cli.demo import demo_requests, release_held_answers, seed_stores, submit_emailed_code
from connectors.customer_account import BillingProfile, Contact
from connectors.kit.store import create_store_engine
from connectors.seeds.demo import DemoFacts
from connectors.sms import Message
from dsr.assertions import Assertion
from dsr.credentials import Signer
from dsr.database import make_engine
from dsr.holds import HoldKind, HoldSpec, place_hold, release_hold
from dsr.models import Channel, parse_request
from dsr.purposes import OFFICER_AUTHORITY, purpose_key
from dsr.settings import Settings
from dsr.signers import door_signer, officer_signer
from dsr.status import Status
from dsr.temporal import connect
from services import embedded, stack
from services import workflow_client as officer
from tests import leaky_connector
from tests.conftest import ROOT, binary
from workflows.models import (
    ConnectorDecision,
    ConnectorResolution,
    ConnectorStatus,
    OfficerNote,
    UpdateResult,
)

LEAKY_QUEUE = "dsr-connector-leaky"
MIN_CONTENT_CHARS = 12


@dataclass
class Run:
    settings: Settings
    facts: DemoFacts
    needles: dict[str, list[str]]  # what must not be found -> its spellings
    request_ids: list[str]


def _settings(data_dir: Path) -> Settings:
    return stack.settings_on_free_ports(
        data_dir,
        connector_registry=data_dir / "registry.yaml",
        connector_max_attempts=2,
        connector_retry_seconds=0.1,
    )


def _write_registry(settings: Settings) -> None:
    registry = yaml.safe_load((ROOT / "connectors" / "registry.yaml").read_text())
    registry["connectors"].append(leaky_connector.registry_entry(LEAKY_QUEUE))
    settings.connector_registry.write_text(yaml.safe_dump(registry))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    settings = _settings(tmp_path_factory.mktemp("leaks"))
    _write_registry(settings)
    with pytest.MonkeyPatch.context() as patch:
        # What the stack's processes read beyond what the stack itself passes them.
        patch.setenv("DSR_CONNECTOR_REGISTRY", str(settings.connector_registry))
        patch.setenv("DSR_CONNECTOR_MAX_ATTEMPTS", "2")
        patch.setenv("DSR_CONNECTOR_RETRY_SECONDS", "0.1")
        try:
            yield _run_everything(settings)
        finally:
            stack.down(settings)


def _run_everything(settings: Settings) -> Run:
    import asyncio

    facts = seed_stores(settings, people=60, customers=4)
    needles = _needles(settings, facts)
    asyncio.run(embedded.start(settings))
    leaky = _start_leaky_worker(settings)
    try:
        request_ids, secrets = asyncio.run(_requests(settings, facts))
        _hold_quoting_the_email(settings, facts)
    finally:
        leaky.terminate()
        leaky.wait(timeout=10)
    return Run(settings, facts, needles | secrets, request_ids)


def _start_leaky_worker(settings: Settings) -> subprocess.Popen[bytes]:
    log = (settings.data_dir / "log").resolve()
    log.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DSR_LOG_FORMAT": "json",
           "DSR_DATA_DIR": str(settings.data_dir.resolve()),
           "DSR_TEMPORAL_ADDRESS": settings.temporal_address}
    with (log / "leaky.log").open("ab") as output:
        return subprocess.Popen([sys.executable, "-m", "tests.leaky_connector", LEAKY_QUEUE],
                                cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)


async def _requests(settings: Settings,
                    facts: DemoFacts) -> tuple[list[str], dict[str, list[str]]]:
    import asyncio

    client = await connect(settings)
    ada = officer_signer(settings, "officer.ada")
    panel = door_signer(settings, Channel.PRIVACY_PANEL)
    access, erasure = demo_requests(facts, datetime.now(UTC))
    failing = parse_request(access.model_dump(mode="json") | {
        "request_id": access.request_id + "-CRM",
        "identities": [{"type": "account_id", "value": facts.account_holder_account_id},
                       {"type": "email", "value": facts.account_holder_email}],
    })
    handles = [await officer.submit(client, settings, r, door=panel)
               for r in (access, erasure, failing)]
    await submit_emailed_code(client, settings, erasure.request_id)
    # The email identity is not covered by the panel login: an officer checks it by hand. The
    # officers' notes quote the email: sealed in the register, keyed hashes in the ledger.
    verified = officer.signed(ada, failing.request_id, "mark_verified", OfficerNote(
        note=f"identity document checked, {facts.account_holder_email} called"))
    await officer.update(client, failing.request_id, "mark_verified", verified, UpdateResult)
    for _ in range(300):
        status = await officer.status(client, failing.request_id)
        if any(c.connector == "leaky" and c.status is ConnectorStatus.FAILED
               for c in status.connectors):
            break
        await asyncio.sleep(0.1)
    await officer.update(client, failing.request_id, "resolve_connector", ConnectorDecision(
        officer="Ada", connector="leaky", resolution=ConnectorResolution.DONE_BY_HAND,
        reason=f"looked up {facts.account_holder_email} by hand in the CRM"), UpdateResult,
        signer=ada)
    # The shipped policy's drafts hold the answers: an approver releases them.
    await release_held_answers(client, settings,
                               [r.request_id for r in (access, erasure, failing)])
    outcomes = [await handle.result() for handle in handles]
    assert [o.status for o in outcomes] == [Status.ANSWERED] * 3
    assert verified.assertion is not None
    return [access.request_id, erasure.request_id, failing.request_id], _secrets(
        settings, ada, panel, verified.assertion)


def _secrets(settings: Settings, *held: Signer | Assertion) -> dict[str, list[str]]:
    """Keys and assertions, which no history, log or table may hold: the officer's and the
    door's private keys and credentials, an officer's signed action (its signature), the
    server secret and the officer authority's key."""
    values = {"server secret": settings.secret.decode(),
              "authority key": purpose_key(settings.secret, OFFICER_AUTHORITY).hex()}
    for number, item in enumerate(held):
        if isinstance(item, Assertion):
            values[f"assertion {number}"] = item.action.rsplit(".", 1)[1]
            continue
        raw = item.key.private_bytes_raw()
        values |= {f"private key {number}": raw.hex(),
                   f"private key {number} (base64)": base64.b64encode(raw).decode(),
                   f"credential {number}": item.credential.rsplit(".", 1)[1]}
    return {label: _spellings(value) for label, value in values.items()}


def _hold_quoting_the_email(settings: Settings, facts: DemoFacts) -> None:
    """A hold on no one of these requests (a customer account of nobody's), its reasons quoting
    the email: sealed in legal_holds, keyed hashes in the ledger."""
    engine = make_engine(settings.app_database_url)
    spec = HoldSpec(kind=HoldKind.LITIGATION, placed_by="counsel", customer_account="CUST-NONE",
                    reason=f"case 2026-31, {facts.account_holder_email} wrote to counsel")
    hold = place_hold(engine, settings.secret, spec, datetime.now(UTC))
    release_hold(engine, settings.secret, hold.hold_id, "counsel",
                 f"settled, {facts.account_holder_email} told", datetime.now(UTC))


# What must not leak --------------------------------------------------------------------------


def _needles(settings: Settings, facts: DemoFacts) -> dict[str, list[str]]:
    """The subjects' identities and data, read from the affiliate stores before the run."""
    values = {
        "account holder email": facts.account_holder_email,
        "controller email": facts.controller_registered_email,
        "end user phone": facts.end_user_phone,
    }
    for number, value in enumerate(_store_values(settings, facts)):
        values[f"store value {number}"] = value
    return {label: _spellings(value) for label, value in values.items()}


def _store_values(settings: Settings, facts: DemoFacts) -> list[str]:
    """Names, addresses, IBANs and message contents of the requests' subjects."""
    account = create_store_engine(settings.connector_database_url("customer_account"))
    sms = create_store_engine(settings.connector_database_url("sms"))
    with Session(account) as session:
        contacts = session.scalars(select(Contact).where(or_(
            Contact.account_id == facts.account_holder_account_id,
            Contact.email == facts.account_holder_email))).all()
        billing = session.get(BillingProfile, facts.account_holder_account_id)
        values = [c.name for c in contacts] + [c.phone for c in contacts]
        if billing is not None:
            values += [billing.billing_name, billing.company_address, billing.bank_iban]
    with Session(sms) as session:
        values += session.scalars(
            select(Message.content).where(Message.end_user_phone == facts.end_user_phone)).all()
    return sorted({v for v in values if v and (len(v) >= MIN_CONTENT_CHARS or " " in v)})


def _spellings(value: str) -> list[str]:
    """Lower-cased, as the haystacks are: raw, JSON-escaped, Go-escaped; phones also without
    the plus and with spaces removed."""
    forms = {value, json.dumps(value)[1:-1], value.replace("@", "\\u0040"),
             value.replace("+", "\\u002b"), value.replace("&", "\\u0026")}
    if value.startswith("+") and value[1:].replace(" ", "").isdigit():
        digits = value[1:].replace(" ", "")
        forms |= {digits, "+" + digits}
    return sorted(form.lower() for form in forms)


# Where it must not be ------------------------------------------------------------------------


def _temporal(settings: Settings, *args: str) -> str:
    done = subprocess.run(
        [binary("temporal"), *args, "--address", settings.temporal_address,
         "--namespace", settings.temporal_namespace, "--output", "json"],
        capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def _json_documents(text: str) -> list[Any]:
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _with_base64_decoded(text: str) -> str:
    """The text, plus every JSON string value that decodes as base64 to UTF-8."""
    decoded: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and len(node) >= 8:
            with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
                decoded.append(base64.b64decode(node, validate=True).decode("utf-8"))

    for document in _json_documents(text):
        walk(document)
    return "\n".join([text, *decoded])


def _histories(settings: Settings) -> dict[str, str]:
    found: dict[str, str] = {}
    for listed in _json_documents(_temporal(settings, "workflow", "list")):
        for execution in listed if isinstance(listed, list) else [listed]:
            workflow_id = execution["execution"]["workflowId"]
            run_id = execution["execution"]["runId"]
            ids = ("--workflow-id", workflow_id, "--run-id", run_id)
            found[f"history {workflow_id}/{run_id}"] = _with_base64_decoded(
                _temporal(settings, "workflow", "show", *ids))
            found[f"description {workflow_id}/{run_id}"] = _with_base64_decoded(
                _temporal(settings, "workflow", "describe", *ids))
    return found


def _schedules(settings: Settings) -> dict[str, str]:
    found: dict[str, str] = {}
    for listed in _json_documents(_temporal(settings, "schedule", "list")):
        for schedule in listed if isinstance(listed, list) else [listed]:
            schedule_id = schedule["scheduleId"]
            found[f"schedule {schedule_id}"] = _with_base64_decoded(
                _temporal(settings, "schedule", "describe", "--schedule-id", schedule_id))
    return found


def _logs(settings: Settings) -> dict[str, str]:
    return {f"log {path.name}": path.read_text(errors="replace")
            for path in sorted((settings.data_dir / "log").glob("*.log"))}


def _app_database(settings: Settings) -> dict[str, str]:
    found: dict[str, str] = {}
    with sqlite3.connect(settings.data_dir / "dsr.db") as database:
        tables = [row[0] for row in database.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            rows = database.execute(f'SELECT * FROM "{table}"').fetchall()
            found[f"table {table}"] = "\n".join(
                repr([v.decode("latin-1") if isinstance(v, bytes) else v for v in row])
                for row in rows)
    return found


def _blobs(settings: Settings) -> dict[str, str]:
    return {f"blob {path.relative_to(settings.blob_dir)}": path.read_bytes().decode("latin-1")
            for path in sorted(settings.blob_dir.rglob("*")) if path.is_file()}


def _leaks(haystacks: dict[str, str], needles: dict[str, list[str]]) -> list[str]:
    return [f"{label} in {where}"
            for where, text in haystacks.items()
            for label, forms in needles.items()
            if any(form in text.lower() for form in forms)]


# The checks ----------------------------------------------------------------------------------


def test_the_failing_connector_really_quoted_the_email(run: Run) -> None:
    """The SDK logged the failure with its message: masked, so the message shows the path
    was taken and the masking worked."""
    assert "no CRM contact found for <email>" in _logs(run.settings)["log leaky.log"]


def test_no_history_description_or_schedule_holds_personal_data_or_secrets(run: Run) -> None:
    haystacks = _histories(run.settings) | _schedules(run.settings)
    workflows = [name for name in haystacks if name.startswith("history ")]
    assert len(workflows) >= len(run.request_ids)
    assert any(name.startswith("schedule ") for name in haystacks)
    assert _leaks(haystacks, run.needles) == []


def test_no_log_line_holds_personal_data_or_secrets(run: Run) -> None:
    logs = _logs(run.settings)
    assert {"log worker.log", "log temporal.log", "log codec.log"} <= set(logs)
    assert _leaks(logs, run.needles) == []


def test_no_table_of_the_application_database_holds_personal_data_or_secrets(
        run: Run) -> None:
    tables = _app_database(run.settings)
    assert {"table requests", "table confirmations", "table ledger"} <= set(tables)
    assert tables["table legal_holds"].count("HOLD-") == 1, "the hold is there, sealed"
    assert _leaks(tables, run.needles) == []


def test_no_blob_holds_personal_data(run: Run) -> None:
    blobs = _blobs(run.settings)
    assert any("packages/" in name for name in blobs)
    assert _leaks(blobs, run.needles) == []


def test_the_search_finds_what_belongs_where_it_is(run: Run) -> None:
    """The mail folder (what went out) holds the emails; the stores hold the rest: a search
    that finds nothing elsewhere is not blind."""
    mail = {f"mail {p.name}": p.read_text(errors="replace")
            for p in run.settings.mail_dir.rglob("*") if p.is_file()}
    leaked_to_mail = _leaks(mail, run.needles)
    assert any("account holder email" in leak for leak in leaked_to_mail)
    assert any("controller email" in leak for leak in leaked_to_mail)
    assert sum(label.startswith("store value") for label in run.needles) >= 3
    stores = {f"store {p.name}": p.read_bytes().decode("latin-1")  # with the WAL not yet
              for p in (run.settings.data_dir / "connectors").glob("*.db*")}  # checkpointed
    assert any("store value" in leak for leak in _leaks(stores, run.needles))


def test_an_unencrypted_payload_would_be_found() -> None:
    """Payloads are base64 in the CLI's JSON: the search decodes them before looking."""
    email = "Ana.Silva@Example.com"
    payload = base64.b64encode(json.dumps({"requester": {"email": email}}).encode()).decode()
    shown = json.dumps({"events": [{"input": {"payloads": [{"data": payload}]}}]})
    assert email.lower() not in shown.lower()
    assert _leaks({"history": _with_base64_decoded(shown)}, {"email": _spellings(email)}) == [
        "email in history"]
