"""Officers' Updates on the dev server, with the real workers: who acts is proven by a signed
assertion checked in the Update's validator; the ledger credits the proven officer, whatever
name was typed; a stolen credential, a replay (one after the other or at once), an action for
another request and an officer without the role are each refused, and nothing changes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from dsr.assertions import Role, sign_action
from dsr.ledger import LedgerEntry
from dsr.status import Status
from services import workflow_client as officer
from tests.conftest import Harness
from tests.test_requests_e2e import emailed_code
from workflows.models import OfficerAction, OfficerNote, UpdateResult


def ledger_actors(h: Harness, request_id: str, kind: str) -> list[str]:
    with Session(h.engine) as session:
        return list(session.scalars(select(LedgerEntry.actor).where(
            LedgerEntry.request_id == request_id, LedgerEntry.kind == kind)))


async def test_the_ledger_credits_who_signed_and_a_replay_is_refused(harness: Harness) -> None:
    h = harness
    request = h.controller_erasure()
    rid = request.request_id
    handle = await h.submit(request)
    await emailed_code(h, rid)
    lee = h.officer("officer.lee", [Role.APPROVER])
    approval = officer.signed(lee, rid, "approve", OfficerAction(officer="officer.tan"))
    first, again = await asyncio.gather(
        *(officer.update(h.client, rid, "approve", approval, UpdateResult) for _ in range(2)),
        return_exceptions=True)
    outcomes = sorted([first, again], key=lambda r: isinstance(r, BaseException))
    assert isinstance(outcomes[0], UpdateResult) and outcomes[0].message == "approved"
    assert isinstance(outcomes[1], officer.OfficerError)
    assert "not authorized: the assertion was already used (a replay)" in str(outcomes[1])
    with pytest.raises(officer.OfficerError, match=r"already used \(a replay\)"):
        await officer.update(h.client, rid, "approve", approval, UpdateResult)
    milestone_actors = ledger_actors(h, rid, "milestone")
    assert "officer.lee" in milestone_actors and "officer.tan" not in milestone_actors
    await h.update(rid, "cancel", OfficerNote(note="requester withdrew"))
    assert (await handle.result()).status is Status.CANCELLED


async def test_forged_misdirected_and_underprivileged_updates_change_nothing(
        harness: Harness) -> None:
    h = harness
    request = h.controller_erasure()
    rid = request.request_id
    other = h.controller_erasure()
    handle = await h.submit(request)
    await h.submit(other)
    await emailed_code(h, rid)
    before = await h.status(rid)
    ada, clerk = h.officer(), h.officer("officer.clerk", [Role.OFFICER])
    note = OfficerNote(note="identity document checked on a call")
    stolen = sign_action(Ed25519PrivateKey.generate(), ada.credential, namespace=ada.namespace,
                         target=officer.workflow_id(rid), action="mark_verified",
                         arguments=note, role=Role.OFFICER, now=datetime.now(UTC))
    attempts = {
        "carries no assertion": ("mark_verified", note),
        "the action has a signature that does not verify":
            ("mark_verified", note.model_copy(update={"assertion": stolen})),
        "made for another request": ("mark_verified", officer.signed(
            ada, other.request_id, "mark_verified", note)),
        "made for another action": ("mark_verified", officer.signed(
            ada, rid, "cancel", note)),
        "approve needs the role approver, not 'officer'": ("approve", OfficerAction().model_copy(
            update={"assertion": sign_action(
                clerk.key, clerk.credential, namespace=clerk.namespace,
                target=officer.workflow_id(rid), action="approve", arguments=OfficerAction(),
                role=Role.OFFICER, now=datetime.now(UTC))})),
    }
    for reason, (name, payload) in attempts.items():
        with pytest.raises(officer.OfficerError, match="not authorized") as refused:
            await officer.update(h.client, rid, name, payload, UpdateResult)
        assert reason in str(refused.value)
    with pytest.raises(officer.OfficerError, match="approve needs the role approver"):
        await h.update(rid, "approve", OfficerAction(), signer=clerk)  # the CLI's own check
    after = await h.status(rid)
    assert after.status is Status.AWAITING_VERIFICATION
    assert (after.verification, after.steps) == (before.verification, before.steps)
    assert ledger_actors(h, rid, "milestone").count("officer.ada") == 0
    await h.update(rid, "mark_verified", note)
    await handle.result()
    assert "officer.ada" in ledger_actors(h, rid, "milestone")
