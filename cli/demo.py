"""The demo: two real requests through every step on the embedded stack.

1. An account holder asks, through the privacy panel, for access to their own account data.
2. A customer, as controller, emails an instruction to erase one end user's SMS data; the
   verification code arrives at the customer's registered address and is read from var/mail/.

Answers that state texts Legal has not confirmed wait for an approver's review: the demo's
approver (registered by the operator, as ``officers bootstrap`` would) releases them, as
``starter.py release-answer`` does.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

from temporalio.client import Client

from connectors.customer_account import CustomerAccountConnector
from connectors.seeds.demo import DemoFacts
from connectors.seeds.demo import seed_stores as seed_connector_stores
from connectors.seeds.population import make_population
from connectors.seeds.stores import seed_population_stores
from connectors.sms import SmsConnector
from dsr.assertions import Role
from dsr.models import RightsRequest, parse_request
from dsr.sealedblobs import sealed_blob_store
from dsr.settings import Settings
from dsr.signers import door_signer, officer_signer
from dsr.status import CLOSED, Status
from dsr.temporal import connect
from services import workflow_client as officer
from services.embedded import start
from services.mail_server import MailFolder
from workflows.models import (
    CodeResult,
    CodeSubmission,
    OfficerNote,
    RequestOutcome,
    RequestStatus,
    UpdateResult,
)

CODE = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)
PACKAGE_LINK = re.compile(r"^\s+(https?://\S+/packages/\S+)$", re.MULTILINE)


def seed_stores(settings: Settings, people: int = 300, customers: int = 6,
                everything: bool = True) -> DemoFacts:
    """Seed the SMS and customer-account stores (the demo's requests), and with
    ``everything`` every other reference store from the shared population."""
    blobs = sealed_blob_store(settings)
    now = datetime.now(UTC)
    # The ignores go once the connectors annotate ``blobs: BlobStore`` (any store works).
    facts = seed_connector_stores(
        SmsConnector(settings.connector_database_url("sms"), blobs,
                     settings.secret),
        CustomerAccountConnector(settings.connector_database_url("customer_account"),
                                 blobs, settings.secret),
        people=people, customers=customers, now=now)
    if everything:
        seed_population_stores(settings, make_population(people, customers), now)
    return facts


def demo_requests(facts: DemoFacts, now: datetime) -> tuple[RightsRequest, RightsRequest]:
    stamp = now.strftime("%Y%m%d-%H%M%S")
    access = parse_request({
        "request_id": f"DEMO-{stamp}-ACCESS",
        "rights": ["access"],
        "identities": [{"type": "account_id", "value": facts.account_holder_account_id}],
        "jurisdiction": "EU",
        "channel": "privacy_panel",
        "requester": {"kind": "subject", "email": facts.account_holder_email},
        "received_at": now.isoformat(),
        "last_login_at": (now - timedelta(minutes=2)).isoformat(),
    })
    erasure = parse_request({
        "request_id": f"DEMO-{stamp}-ERASURE",
        "rights": ["erasure"],
        "identities": [{"type": "phone", "value": facts.end_user_phone}],
        "jurisdiction": "EU",
        "channel": "email",
        "requester": {"kind": "controller", "email": facts.controller_registered_email,
                      "customer_account": facts.controller_account_id},
        "received_at": now.isoformat(),
    })
    return access, erasure


async def submit_emailed_code(client: Client, settings: Settings, request_id: str) -> CodeResult:
    """Read the code from the mail folder, as the customer would from its inbox."""
    message_id = f"<code.1.controller.{request_id}@dsr>"
    mail = await MailFolder(settings.mail_dir).wait_for(
        header=("Message-ID", message_id), timeout=60)
    match = CODE.search(mail.get_content())
    if match is None:
        raise RuntimeError(f"no code found in the verification email of {request_id}")
    return await officer.update(client, request_id, "submit_code",
                                CodeSubmission(code=match.group(1)), CodeResult)


async def run_demo(settings: Settings) -> None:
    await start(settings)
    facts = seed_stores(settings)
    print(f"seeded the SMS and customer-account stores ({facts.controller_account_id} is the "
          f"controller; its end user's number also appears at "
          f"{len(facts.end_user_other_customers)} other customers)")
    client = await connect(settings)
    access, erasure = demo_requests(facts, datetime.now(UTC))
    # The privacy center vouches for the panel login (the demo stands in for it).
    handles = [await officer.submit(client, settings, r, door=door_signer(settings, r.channel))
               for r in (access, erasure)]
    print(f"submitted {access.request_id} and {erasure.request_id}")
    result = await submit_emailed_code(client, settings, erasure.request_id)
    print(f"{erasure.request_id}: code from var/mail/ accepted={result.accepted}")
    await release_held_answers(client, settings, [access.request_id, erasure.request_id])
    outcomes = await asyncio.gather(*(h.result() for h in handles))
    for request, outcome in zip((access, erasure), outcomes, strict=True):
        status = await officer.status(client, request.request_id)
        print_summary(settings, outcome, status)
    print(f"\nThe stack keeps running. Web UI: {settings.web_ui_url}/namespaces/"
          f"{settings.temporal_namespace}/workflows")
    print("Stop it with: python starter.py stack down")


async def release_held_answers(client: Client, settings: Settings,
                               request_ids: list[str]) -> None:
    """Until every request closes: an answer held for review (it states draft texts) is
    shown, then released by the demo's approver."""
    approver = officer_signer(settings, "demo.approver", [Role.APPROVER])
    waiting = set(request_ids)
    while waiting:
        for request_id in sorted(waiting):
            status = await officer.status(client, request_id)
            if status.status in CLOSED:
                waiting.discard(request_id)
            elif status.status is Status.AWAITING_REVIEW:
                print(f"{request_id}: answer held for review, it states: "
                      + "; ".join(status.held_for_review))
                await officer.update(client, request_id, "release_answer", OfficerNote(
                    note="demo: draft texts read against docs/legal.md"), UpdateResult, approver)
                print(f"{request_id}: released by demo.approver (starter.py release-answer)")
        await asyncio.sleep(0.5)


def _body(path: Path) -> str:
    with path.open("rb") as file:
        message = BytesParser(policy=policy.default).parse(file)
    body = message.get_body(("plain",))
    return body.get_content() if body is not None else ""


def print_summary(settings: Settings, outcome: RequestOutcome, status: RequestStatus) -> None:
    request_id = outcome.request_id
    print(f"\n== {request_id}: {outcome.status.value} ==")
    steps = [s.name for s in status.steps if s.status.value == "done"]
    print("steps done:", " → ".join(steps))
    for connector in status.connectors:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(connector.records.items())) or "-"
        print(f"  {connector.connector:18} {connector.status.value:12} {counts}")
    answer = MailFolder(settings.mail_dir).file_with(("Message-ID", f"<answer.{request_id}@dsr>"))
    print("answer email:", answer or "not found")
    link = PACKAGE_LINK.search(_body(answer)) if answer else None
    if link:
        print("package download page (open it, press the button):", link.group(1))
    print(f"Web UI: {settings.web_ui_url}/namespaces/{settings.temporal_namespace}/workflows/"
          f"{officer.workflow_id(request_id)}")
