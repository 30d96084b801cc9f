"""Every access answer states the person's other rights and how to exercise them (GDPR
Art. 15(1)(e)), in English and Chinese, as the answer activity builds it; an answer to a
request without access leaves it out. A UK answer names the complaint to the company itself
(DPA 2018 s.164A), the ICO and the courts; a Californian access answer says what was sold,
shared or disclosed in the past 12 months."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.answer import AnswerActivities, AnswerInput
from dsr.database import make_engine
from dsr.emails import AnswerContext, render_email
from dsr.models import Language, RightsRequest, parse_request
from dsr.settings import Settings

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
RIGHTS = {
    Language.EN: ("Your other rights", "corrected or erased", "restrict its processing",
                  "object to processing based on our legitimate interests",
                  "withdraw your consent", "(portability)", "privacy[at]messagebird.com"),
    Language.ZH: ("您的其他权利", "更正或删除", "限制对其的处理", "反对基于我们合法利益的处理",
                  "撤回同意", "(可携带权)", "privacy[at]messagebird.com"),
}


def request(rights: list[str], jurisdiction: str = "EU", language: str = "en") -> RightsRequest:
    return parse_request({
        "request_id": "REQ-RIGHTS-1", "rights": rights, "jurisdiction": jurisdiction,
        "channel": "email", "language": language,
        "identities": [{"type": "email", "value": "ana.silva@example.com"}],
        "requester": {"kind": "subject", "email": "ana.silva@example.com"},
        "received_at": (NOW - timedelta(days=3)).isoformat()}, NOW)


def answer_body(tmp_path: Path, asked: RightsRequest) -> str:
    settings = Settings(data_dir=tmp_path, hmac_key="answer-rights-key-5d9a2f7c1e8b3d6a4f0c")
    activities = AnswerActivities(settings, make_engine(settings.app_database_url))
    context = activities._context(AnswerInput(request=asked, answered_at=NOW))
    return render_email(AnswerContext.model_validate(context)).body


@pytest.mark.parametrize("language", [Language.EN, Language.ZH])
def test_an_access_answer_states_the_other_rights(tmp_path: Path, language: Language) -> None:
    body = answer_body(tmp_path, request(["access"], language=language.value))
    for words in RIGHTS[language]:
        assert words in body, words
    assert body.index(RIGHTS[language][0]) < body.index(
        "Where to complain" if language is Language.EN else "投诉渠道")


def test_an_answer_without_access_leaves_them_out(tmp_path: Path) -> None:
    body = answer_body(tmp_path, request(["erasure"]))
    assert "Your other rights" not in body and "Where to complain" in body


def test_a_uk_answer_names_the_complaint_to_us_the_ico_and_the_courts(tmp_path: Path) -> None:
    body = " ".join(answer_body(tmp_path, request(["access"], "UK")).split())
    assert "you may complain to us first, at privacy[at]messagebird.com" in body
    assert "acknowledge a complaint within 30 days" in body
    assert "Information Commissioner's Office (ICO)" in body and "judicial remedy" in body
    eu = " ".join(answer_body(tmp_path, request(["access"], "EU")).split())
    assert "complain to us first" not in eu


def test_a_californian_access_answer_says_what_was_sold_shared_or_disclosed(
        tmp_path: Path) -> None:
    """Cal. Civ. Code 1798.110 and 1798.115: even when the answer is none."""
    californian = " ".join(answer_body(tmp_path, request(["access"], "US-CA")).split())
    assert "In the past 12 months we have not sold your personal information" in californian
    assert "disclosed it for a business purpose only to the recipients listed above" in californian
    chinese = answer_body(tmp_path, request(["access"], "US-CA", "zh"))
    assert "在过去12个月内,我们没有出售您的个人信息" in chinese
    for elsewhere in (request(["access"], "EU"), request(["erasure"], "US-CA")):
        assert "past 12 months" not in answer_body(tmp_path, elsewhere)
