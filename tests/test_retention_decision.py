"""Data only a draft retention rule would keep is neither kept nor erased on the draft's say,
end to end on the dev server: the erasure waits for an approver, who applies the draft (the
data is kept under it) or leaves it out (the plan is made again from the confirmed rules, and
the answer says only what they keep)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from connectors.seeds.sms import COUNTRY_WEIGHTS
from dsr.assertions import Role
from dsr.retention import load_retention_policy
from dsr.status import Status
from services.mail_server import MailFolder
from services.workflow_client import OfficerError
from tests.conftest import Harness, legal_confirmed_policy, save_history, start_harness
from tests.test_recipients import mail_of, milestones
from tests.test_requests_e2e import answer_of, emailed_code, send_code, wait_for_status
from workflows.models import RetentionChoice

DRAFT_BASIS = "A telecom traffic data duty Legal has not confirmed (test)."


def with_draft_overrides(folder: Path) -> Path:
    """Legal's confirmed policy plus a draft: two years for traffic data wherever the seeded
    messages ended."""
    policy = folder / "policy"
    shutil.copytree(legal_confirmed_policy(), policy)
    path = policy / "retention.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    rule = next(r for r in data["rules"] if r["id"] == "telecom-traffic-location")
    rule["overrides"] = [{"country": country, "period": {"years": 2}, "status": "draft",
                          "source": "a test draft", "basis": {"en": DRAFT_BASIS}}
                         for country in COUNTRY_WEIGHTS]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert load_retention_policy(path).duty_for("sms", "traffic_data", ["NL"]) is not None
    return policy


@pytest.fixture
async def drafted(dev_env: WorkflowEnvironment, tmp_path: Path,
                  mail: tuple[int, MailFolder]) -> AsyncIterator[Harness]:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        yield await start_harness(dev_env, tmp_path, mail[0], mail[1], stack,
                                  policy_dir=with_draft_overrides(tmp_path))


async def _waiting(h: Harness) -> tuple[str, object]:
    request = h.controller_erasure()
    rid = request.request_id
    handle = await h.submit(request)
    await send_code(h, rid, await emailed_code(h, rid))
    await wait_for_status(h, rid, Status.AWAITING_RETENTION_DECISION)
    return rid, handle


async def test_an_approver_leaves_the_draft_out_and_the_confirmed_rules_decide(
        drafted: Harness) -> None:
    h = drafted
    rid, handle = await _waiting(h)
    status = await h.status(rid)
    assert "sms/traffic_data: telecom-traffic-location" in status.retention_undecided
    assert all(part.startswith("sms/") and part.endswith(": telecom-traffic-location")
               for part in status.retention_undecided), "what the draft covers, no more"
    notice = await h.mail.wait_for(
        header=("Message-ID", f"<officer_retention_decision.{rid}@dsr>"), timeout=10)
    assert "sms/traffic_data: telecom-traffic-location" in notice.get_content()
    assert "@" not in notice.get_content() and not mail_of(h, "answer", rid)
    clerk = h.officer("officer.bo", [Role.OFFICER])
    with pytest.raises(OfficerError):
        await h.update(rid, "decide_retention",
                       RetentionChoice(keep=False, note="not mine to decide"), clerk)

    result = await h.update(rid, "decide_retention",
                            RetentionChoice(keep=False, note="the draft duty is not ours"))
    assert "left out" in result.message
    assert (await handle.result()).status is Status.ANSWERED  # type: ignore[attr-defined]
    answer = " ".join(answer_of(h, rid).split())
    assert DRAFT_BASIS not in answer, "nothing is said to be kept under the draft"
    assert milestones(h, rid)["retention-decided"] == "officer.ada"
    await save_history(handle, "retention_draft_left_out")  # type: ignore[arg-type]


async def test_an_approver_applies_the_draft_and_the_answer_says_so(drafted: Harness) -> None:
    h = drafted
    rid, handle = await _waiting(h)
    with pytest.raises(OfficerError):  # no answer is held yet
        await h.update(rid, "release_answer", RetentionChoice(keep=True, note="early"))

    await h.update(rid, "decide_retention", RetentionChoice(keep=True, note="Legal agrees"))
    assert (await handle.result()).status is Status.ANSWERED  # type: ignore[attr-defined]
    assert DRAFT_BASIS in " ".join(answer_of(h, rid).split())
    with pytest.raises(OfficerError):  # decided once
        await h.update(rid, "decide_retention", RetentionChoice(keep=False, note="again"))
