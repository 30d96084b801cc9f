"""What the answer activity writes that depends on where and what: the request's dates as the
person counts them (in the jurisdiction's time zone, deadlines.yaml), and, after an erasure
in marketing, the suppression entry that remains and why, in English and Chinese."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from activities.answer import AnswerActivities, AnswerInput
from connectors.marketing import MarketingConnector, ProspectRow
from dsr.blobstore import LocalBlobStore
from dsr.connector_contract import EraseInput, Scope
from dsr.database import make_engine
from dsr.emails import Action, AnswerContext, ProductOutcome, render_email
from dsr.models import Identity, IdentityType, Language, RightsRequest, parse_request
from dsr.retention import load_retention_policy, plan_erasure
from dsr.settings import Settings

EMAIL = "ana.silva@example.com"
SECRET = b"answer-erasure-test-key-4e8b2c6a9d1f3e7b"
SUPPRESSION = {
    Language.EN: ("What remains after the erasure", "A suppression entry remains",
                  "a keyed hash of your email address", "do not contact you again"),
    Language.ZH: ("删除后仍保留的内容", "仍保留一条屏蔽记录", "电子邮件地址的密钥哈希值",
                  "不再向您发送营销信息"),
}


def request(
    received_at: datetime, jurisdiction: str = "EU", language: str = "en",
    rights: tuple[str, ...] = ("erasure",),
) -> RightsRequest:
    return parse_request({
        "request_id": "REQ-ERASE-1", "rights": list(rights), "jurisdiction": jurisdiction,
        "channel": "email", "language": language,
        "identities": [{"type": "email", "value": EMAIL}],
        "requester": {"kind": "subject", "email": EMAIL},
        "received_at": received_at.isoformat()}, received_at)


def answer_body(
    tmp_path: Path, asked: RightsRequest, answered_at: datetime,
    outcomes: list[ProductOutcome] | None = None,
) -> str:
    settings = Settings(data_dir=tmp_path, hmac_key="answer-erasure-key-2b7e5d9c1a4f8e3d6b0a")
    activities = AnswerActivities(settings, make_engine(settings.app_database_url))
    answer = AnswerInput(request=asked, answered_at=answered_at, outcomes=outcomes or [])
    context = AnswerContext.model_validate(activities._context(answer))
    return " ".join(render_email(context).body.split())


# --- the dates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jurisdiction", "received", "answered", "language", "expected"),
    [
        # British Summer Time began at 01:00 UTC that day: 23:30 UTC is 00:30 on the 30th.
        ("UK", datetime(2026, 3, 29, 23, 30, tzinfo=UTC), datetime(2026, 4, 10, 23, 5, tzinfo=UTC),
         "en", "our answer of 11 April 2026 to your request of 30 March 2026"),
        # Still Greenwich Mean Time the evening before: the same day.
        ("UK", datetime(2026, 3, 28, 23, 30, tzinfo=UTC), datetime(2026, 4, 1, 9, tzinfo=UTC),
         "en", "our answer of 1 April 2026 to your request of 28 March 2026"),
        # China, UTC+8: 17:00 UTC on 31 May is 01:00 on 1 June.
        ("CN", datetime(2026, 5, 31, 17, tzinfo=UTC), datetime(2026, 6, 30, 16, tzinfo=UTC),
         "zh", "这是我们于2026年7月1日对您2026年6月1日提出的请求"),
        ("CN", datetime(2026, 5, 31, 17, tzinfo=UTC), datetime(2026, 6, 2, 1, tzinfo=UTC),
         "en", "our answer of 2 June 2026 to your request of 1 June 2026"),
        # California, UTC-8 in winter: 03:00 UTC on 1 January is still New Year's Eve.
        ("US-CA", datetime(2027, 1, 1, 3, tzinfo=UTC), datetime(2027, 1, 20, 20, tzinfo=UTC),
         "en", "our answer of 20 January 2027 to your request of 31 December 2026"),
    ],
)
def test_the_answer_gives_the_dates_in_the_jurisdictions_time_zone(
    tmp_path: Path, jurisdiction: str, received: datetime, answered: datetime, language: str,
    expected: str,
) -> None:
    body = answer_body(tmp_path, request(received, jurisdiction, language), answered)
    assert expected in body


# --- the suppression entry -----------------------------------------------------------------


def erased_in_marketing(tmp_path: Path, as_of: datetime) -> tuple[ProductOutcome, bool]:
    """A real marketing store holding the person as a prospect, erased as the workflow
    would (discover, plan, erase): its outcome, and whether the person is now suppressed."""
    marketing = MarketingConnector(f"sqlite:///{tmp_path / 'marketing.db'}",
                                   LocalBlobStore(tmp_path / "blobs"), SECRET)
    marketing.import_prospects([ProspectRow(
        email=EMAIL, name="Ana Silva", source="web_form", source_detail="webinar sign-up",
        created_at=datetime(2026, 3, 1, tzinfo=UTC))])
    scope = Scope(request_id="REQ-ERASE-1", as_of=as_of,
                  identities=[Identity(type=IdentityType.EMAIL, value=EMAIL)])
    plan = plan_erasure([marketing.discover(scope)], as_of, load_retention_policy())
    result = marketing.erase(EraseInput(scope=scope, rules=plan.rules["marketing"]))
    outcome = ProductOutcome(connector="marketing", products=["Marketing and prospects"],
                             action=Action.ERASED, records=result.erased)
    return outcome, marketing.is_suppressed(EMAIL)


@pytest.mark.parametrize("language", [Language.EN, Language.ZH])
def test_an_erasure_in_marketing_says_a_suppression_entry_remains_and_why(
    tmp_path: Path, language: Language
) -> None:
    as_of = datetime(2026, 6, 1, 10, tzinfo=UTC)
    outcome, suppressed = erased_in_marketing(tmp_path, as_of)
    assert suppressed and outcome.records["prospect_profile"] == 1

    body = answer_body(tmp_path, request(as_of, language=language.value), as_of, [outcome])
    for words in SUPPRESSION[language]:
        assert words in body, words


def test_no_suppression_is_mentioned_where_marketing_erased_nothing(tmp_path: Path) -> None:
    as_of = datetime(2026, 6, 1, 10, tzinfo=UTC)
    nothing = ProductOutcome(connector="marketing", products=["Marketing and prospects"],
                             action=Action.NOTHING_HELD)
    erased_elsewhere = ProductOutcome(connector="customer_account", products=["Customer account"],
                                      action=Action.ERASED, records={"account_profile": 2})
    body = answer_body(tmp_path, request(as_of), as_of, [nothing, erased_elsewhere])
    assert "suppression" not in body
    exported = ProductOutcome(connector="marketing", products=["Marketing and prospects"],
                              action=Action.EXPORTED, records={"prospect_profile": 1})
    access = answer_body(tmp_path, request(as_of, rights=("access",)), as_of, [exported])
    assert "suppression" not in access
