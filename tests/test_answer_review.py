"""An answer that states a draft text is held for an approver's review, end to end on the dev
server with the shipped policy (whose UK texts Legal has not confirmed): the approver is told
which texts, an officer without the role cannot release it, the approver can; a denial waits
the same way. With Legal's confirmations nothing waits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.answer import AnswerInput
from activities.review import ReviewActivities
from dsr.assertions import Role
from dsr.emails import Action, ProductOutcome
from dsr.models import parse_request
from dsr.retention import RetainedPart
from dsr.settings import POLICY_DIR, Settings
from dsr.status import Status
from services.mail_server import MailFolder
from services.workflow_client import OfficerError
from tests.conftest import Harness, legal_confirmed_policy, save_history, start_harness
from tests.test_cli import cli
from tests.test_recipients import mail_of, milestones
from tests.test_requests_e2e import wait_for_status
from workflows.models import Denial, OfficerNote

UK_TEXTS = ["draft text: complaint (UK)", "draft text: judicial remedy (UK)"]


@pytest.fixture
async def shipped(dev_env: WorkflowEnvironment, tmp_path: Path,
                  mail: tuple[int, MailFolder]) -> AsyncIterator[Harness]:
    """The product with the policy files as shipped: drafts and all."""
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        yield await start_harness(dev_env, tmp_path, mail[0], mail[1], stack,
                                  policy_dir=POLICY_DIR)


async def test_a_uk_answer_waits_for_an_approver_to_release_it(shipped: Harness) -> None:
    h = shipped
    request = h.request(jurisdiction="UK")
    rid = request.request_id
    handle = await h.submit(request)

    await wait_for_status(h, rid, Status.AWAITING_REVIEW)
    status = await h.status(rid)
    assert status.held_for_review[:2] == UK_TEXTS and status.rules_unconfirmed
    notice = await h.mail.wait_for(header=("Message-ID", f"<officer_review.{rid}@dsr>"),
                                   timeout=10)
    assert notice["To"] == h.settings.officer_address
    assert "  - draft text: complaint (UK)" in notice.get_content()
    assert not mail_of(h, "answer", rid), "nothing sent while held"
    clerk = h.officer("officer.bo", [Role.OFFICER])
    with pytest.raises(OfficerError):
        await h.update(rid, "release_answer", OfficerNote(note="texts read"), clerk)
    assert not mail_of(h, "answer", rid)

    h.log_in_cli()
    code, out, err = await cli(h, "status", rid)
    assert code == 0, err
    assert "answer held for review" in out and "rules unconfirmed" in out
    code, out, err = await cli(h, "release-answer", rid, "--note",
                               "UK complaint route checked against docs/legal.md")
    assert code == 0, err
    assert (await handle.result()).status is Status.ANSWERED
    [answer] = mail_of(h, "answer", rid)
    assert "Information Commissioner's Office (ICO)" in " ".join(answer.get_content().split())
    assert milestones(h, rid)["answer-released"] == "officer.ada"
    assert (await h.status(rid)).held_for_review == []
    await save_history(handle, "answer_held_for_review")


async def test_a_denial_stating_draft_texts_waits_too(shipped: Harness) -> None:
    h = shipped
    request = h.request(jurisdiction="UK", rights=["erasure"])
    rid = request.request_id
    handle = await h.submit(request)
    with pytest.raises(OfficerError):  # nothing is held yet
        await h.update(rid, "release_answer", OfficerNote(note="too early"))
    await h.update(rid, "deny", Denial(reason="the same request was answered last week",
                                       manifestly_unfounded=True))

    await wait_for_status(h, rid, Status.AWAITING_REVIEW)
    assert not mail_of(h, "denial", rid)
    await h.update(rid, "release_answer", OfficerNote(note="checked"))
    assert (await handle.result()).status is Status.DENIED
    assert len(mail_of(h, "denial", rid)) == 1


def _answer(jurisdiction: str, kind: str = "answer") -> AnswerInput:
    request = parse_request({
        "request_id": "T-review01", "rights": ["access"], "jurisdiction": jurisdiction,
        "identities": [{"type": "email", "value": "ana@example.com"}], "channel": "email",
        "requester": {"kind": "subject", "email": "ana@example.com"},
        "received_at": datetime(2026, 12, 1, tzinfo=UTC).isoformat()})
    return AnswerInput(request=request, kind=kind, answered_at=datetime(2026, 12, 2, tzinfo=UTC))


@pytest.mark.parametrize("jurisdiction", ["EU", "UK", "US-CA", "SG", "AU", "CO", "BR", "CN"])
def test_what_holds_an_answer_is_its_draft_texts(jurisdiction: str, tmp_path: Path) -> None:
    shipped = ReviewActivities(Settings(data_dir=tmp_path)).review(_answer(jurisdiction))
    confirmed = ReviewActivities(Settings(data_dir=tmp_path, policy_dir=legal_confirmed_policy()))
    assert f"draft text: judicial remedy ({jurisdiction})" in shipped.reasons
    assert confirmed.review(_answer(jurisdiction)).reasons == []
    assert ReviewActivities(Settings(data_dir=tmp_path)).review(
        _answer(jurisdiction, "cancelled")).reasons == [], "a cancellation states no law"


def test_data_kept_under_a_draft_rule_holds_the_answer(tmp_path: Path) -> None:
    """The Italian two years are an example Legal has not confirmed: an answer saying data is
    kept under them waits for review."""
    kept = RetainedPart(connector="sms", category="traffic_data",
                        rule_id="telecom-traffic-location", draft_rule=True, basis="duty",
                        records_until=None, until=None, countries_ended=["IT"])
    answer = _answer("EU").model_copy(update={"retained": [kept]})
    reasons = ReviewActivities(Settings(data_dir=tmp_path, policy_dir=legal_confirmed_policy())
                               ).review(answer).reasons
    assert reasons == ["draft retention rule: telecom-traffic-location (IT)"]


def test_an_erasure_saying_what_remains_in_a_draft_text_waits(tmp_path: Path) -> None:
    erased = ProductOutcome(connector="marketing", products=["Marketing"], action=Action.ERASED)
    answer = _answer("EU").model_copy(update={"outcomes": [erased]})
    shipped = ReviewActivities(Settings(data_dir=tmp_path)).review(answer).reasons
    assert "draft text: after erasure (marketing)" in shipped
