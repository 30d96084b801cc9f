"""dsr/emails.py: every template renders in every language with a realistic context, and what
the requester's emails (the answer above all) say a person is owed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from jinja2 import TemplateError, UndefinedError

from dsr import emails
from dsr.emails import (
    Action,
    CancelledContext,
    ClarificationContext,
    ExtensionContext,
    ProductOutcome,
    UnverifiedContext,
    load_words,
    render,
    render_email,
)
from dsr.models import Language, Right
from tests.email_contexts import REQUEST, all_contexts, answer, closing, requester_contexts
from tests.email_contexts import catalogue as catalogue  # the fixture

TEMPLATE_DIR = Path(emails.__file__).parent / "templates"


# --- every template, every language --------------------------------------------------------


def test_every_template_exists_in_english_and_chinese(catalogue) -> None:
    names = {ctx.template for ctx in all_contexts(Language.EN, catalogue)}
    for language in Language:
        present = {p.name.removesuffix(".txt.j2") for p in (TEMPLATE_DIR / language).iterdir()}
        assert names == present, language


@pytest.mark.parametrize("language", list(Language))
def test_every_template_renders_completely(language: Language, catalogue) -> None:
    for context in all_contexts(language, catalogue):
        email = render_email(context)

        assert email.language == language
        assert email.subject and REQUEST in email.subject, context.template
        assert REQUEST in email.body
        assert "{{" not in email.body and "{%" not in email.body
        assert email.body.endswith("\n") and not email.body.endswith("\n\n")
        assert "\n\n\n" not in email.body


def test_a_missing_variable_is_an_error_not_a_blank() -> None:
    with pytest.raises(UndefinedError):
        render("acknowledgement", Language.EN, request_id=REQUEST)


def test_callers_may_render_a_dumped_context(catalogue) -> None:
    context = answer(Language.ZH, catalogue)

    assert render("answer", Language.ZH, **context.model_dump()) == render_email(context)
    assert render("answer", Language.ZH, **context.model_dump(mode="json")) == render_email(context)


@pytest.fixture
def english_only_templates(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    (tmp_path / "en").mkdir()
    (tmp_path / "zh").mkdir()
    monkeypatch.setattr(emails, "TEMPLATE_DIR", tmp_path)
    emails._environment.cache_clear()
    yield tmp_path
    emails._environment.cache_clear()


def test_a_template_missing_in_the_language_falls_back_to_english(english_only_templates) -> None:
    (english_only_templates / "en" / "notice.txt.j2").write_text(
        "Subject: Notice {{ request_id }}\n\nDated {{ on|day }}.\n"
    )

    email = render("notice", Language.ZH, request_id=REQUEST, on=date(2026, 8, 31))

    assert email.language == Language.EN
    assert email.subject == f"Notice {REQUEST}"
    assert email.body == "Dated 31 August 2026.\n"


def test_a_template_without_a_subject_line_is_refused(english_only_templates) -> None:
    (english_only_templates / "en" / "bad.txt.j2").write_text("Hello\n\nBody\n")

    with pytest.raises(TemplateError, match=r"must start with .Subject: \.\.\.."):
        render("bad", Language.EN)


def test_dates_are_written_the_readers_way(catalogue) -> None:
    context = UnverifiedContext(**closing(Language.EN, catalogue))

    assert "On 24 August 2026 we closed your request of 3 August 2026" in render_email(context).body
    zh = render_email(context.model_copy(update={"language": Language.ZH}))
    assert "已于2026年8月24日关闭您于2026年8月3日提出的请求" in zh.body


@pytest.mark.parametrize("template", ["answer", "denial", "unverified", "cancelled"])
def test_every_closing_email_renders_from_an_answer_context_and_a_reason(
    template: str, catalogue
) -> None:
    context = {**answer(Language.EN, catalogue).model_dump(), "reason": "It repeats REQ-1."}

    email = render(template, Language.EN, **context)

    assert REQUEST in email.subject
    if template == "denial":
        assert "It repeats REQ-1." in email.body


@pytest.mark.parametrize("language", list(Language))
def test_notices_render_from_plain_values_with_optional_fields_left_out(
    language: Language,
) -> None:
    """How workflow code sends notices: JSON-friendly values, only what it has."""
    notices: dict[str, dict[str, object]] = {
        "acknowledgement": {"rights": ["access", "erasure"], "due_on": "2026-09-03"},
        "verification_code": {"code": "123456", "valid_until": "2026-08-06 10:00 UTC"},
        "extension_notice": {"due_on": "2026-10-03", "reason": "Five affiliates."},
        "clarification": {"question": "Which number?"},
        "officer_reminder": {"due_on": "2026-09-03", "days_left": 2},
        "officer_overdue": {"due_on": "2026-09-03"},
        "officer_locked": {"attempts": 5},
        "officer_connector_failed": {"connector": "sms", "error": "TimeoutError"},
        "officer_confirm_recipient": {},
    }
    for template, context in notices.items():
        email = render(template, language, request_id=REQUEST, **context)
        assert REQUEST in email.subject, template
    code = render(
        "verification_code",
        Language.EN,
        request_id=REQUEST,
        code="1",
        valid_until="2026-08-06 10:00 UTC",
    )
    assert "valid until 2026-08-06 10:00 UTC." in code.body


def test_every_right_and_action_has_words_in_both_languages() -> None:
    words = load_words()
    for language in Language:
        said = words.in_language(language)
        assert set(said["rights"]) == {right.value for right in Right}
        assert set(said["actions"]) == {action.value for action in Action}
    assert words.in_language(Language.ZH)["actions"]["erased"] == "已删除"


# --- the answer ----------------------------------------------------------------------------


def test_the_answer_lists_each_product_retained_part_and_the_complaint(catalogue) -> None:
    body = render_email(answer(Language.EN, catalogue)).body

    for product in ("SMS: erased", "Customer account: exported", "24sessions video: we hold no"):
        assert product in body
    assert "Traffic data (routing, date, time and duration of a communication): 57 records" in body
    assert "Exported from the parent's billing system." in body
    assert "records dated 28 February 2026 or later, kept until 30 December 2026" in body
    assert "Why: Telecom integrity duty." in body
    assert "Invoices (Customer account): all records, kept until released" in body
    assert "Why: Legal hold for litigation." in body
    link = "https://privacy.example/packages/tok3n"
    assert f"from this page until 6 March 2025:\n\n    {link}" in body
    assert "Autoriteit Persoonsgegevens" in body and "judicial remedy" in body


def test_the_answer_gives_the_catalogue_facts_for_access(catalogue) -> None:
    body = render_email(answer(Language.EN, catalogue)).body
    facts = catalogue.facts("sms", "traffic_data", Language.EN)

    for text in (
        facts.legal_basis,
        facts.retention,
        *facts.purposes,
        *facts.recipients,
    ):
        assert text in body
    assert f"Source: {facts.source}" in body
    assert "Transfers outside the European Economic Area (EEA)" in body
    assert "Telecom operators, aggregators, carriers" in body
    assert "Source: collected from you" in body  # billing details came from the person


def test_the_chinese_answer_speaks_chinese(catalogue) -> None:
    email = render_email(answer(Language.ZH, catalogue))

    assert email.subject == f"您的数据主体请求 {REQUEST}:我们的答复"
    assert "客户账户:已导出至您的数据包" in email.body
    assert "原因:电信完整性义务。" in email.body
    assert "保留至2026年12月30日" in email.body
    assert "保留至该义务解除" in email.body
    assert "原因:Legal hold for litigation." in email.body  # no translation: English basis
    assert "向欧洲经济区(EEA)以外的传输" in email.body
    assert "荷兰的数据保护监督机构" in email.body
    # The link works through its last day: "until", never "before" (issue 16, item 11).
    assert "您可在 2025年3月6日 当日结束前通过以下页面下载(该日全天有效)" in email.body
    assert "之前通过以下页面下载" not in email.body


def test_the_chinese_answer_names_products_in_the_statements_words(catalogue) -> None:
    served = [ProductOutcome(connector="email", products=["Email"], action=Action.ERASED),
              ProductOutcome(connector="video", products=["Video"], action=Action.ERASED),
              ProductOutcome(connector="push", products=["Pusher Channels", "Pusher Beams"],
                             action=Action.ERASED)]
    body = render_email(answer(Language.ZH, catalogue).model_copy(
        update={"outcomes": served})).body
    assert "- 邮件服务:已删除" in body and "- 视频互动平台:已删除" in body
    assert "- 推送通知(Pusher Channels), 推送通知(Pusher Beams):已删除" in body


def test_the_answer_without_access_or_retention_leaves_those_sections_out(catalogue) -> None:
    context = answer(Language.EN, catalogue).model_copy(
        update={"categories": [], "retained": [], "package_link": None}
    )
    body = render_email(context).body

    assert "About your data" not in body
    assert "What we kept" not in body
    assert "Your data\n" not in body
    assert "Where to complain" in body


def test_the_extension_gives_reasons_and_the_two_month_horizon(catalogue) -> None:
    [extension] = [
        c for c in requester_contexts(Language.EN, catalogue) if isinstance(c, ExtensionContext)
    ]
    body = render_email(extension).body

    assert "Your request concerns data in five affiliates." in body
    assert "at the latest on 3 October 2026, no later than two months" in body
    zh = render_email(extension.model_copy(update={"language": Language.ZH})).body
    assert "最迟将于2026年10月3日答复您" in zh and "两(2)个月" in zh


def test_a_cancellation_says_what_had_already_been_done(catalogue) -> None:
    [cancelled] = [
        c for c in requester_contexts(Language.EN, catalogue) if isinstance(c, CancelledContext)
    ]

    assert "SMS: erased" in render_email(cancelled).body
    nothing = render_email(cancelled.model_copy(update={"outcomes": []})).body
    assert "Nothing had been done yet." in nothing


def test_a_clarification_says_when_the_clock_stops(catalogue) -> None:
    [asking] = [
        c for c in requester_contexts(Language.EN, catalogue) if isinstance(c, ClarificationContext)
    ]

    assert "paused until we receive your reply" in render_email(asking).body
    running = render_email(asking.model_copy(update={"clock_stops": False})).body
    assert "paused" not in running
