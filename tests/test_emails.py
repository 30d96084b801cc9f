"""Emails, the data catalogue and the complaint authorities: every template renders in every
language with a realistic context, and the answer says what a person is owed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from jinja2 import TemplateError, UndefinedError

from dsr import emails
from dsr.access_facts import answer_facts, load_access_policies
from dsr.catalogue import (
    Catalogue,
    UnknownCategory,
    authority_for,
    load_authorities,
    load_catalogue,
)
from dsr.emails import (
    AcknowledgementContext,
    Action,
    AnswerContext,
    CancelledContext,
    ClarificationContext,
    DeferredErasureContext,
    DenialContext,
    EmailContext,
    ExtensionContext,
    InstructionContext,
    ProductOutcome,
    ReferralContext,
    UnverifiedContext,
    VerificationCodeContext,
    load_words,
    render,
    render_email,
)
from dsr.models import Jurisdiction, Language, Right
from dsr.officer_emails import (
    OfficerAnswerNotesContext,
    OfficerChildReviewContext,
    OfficerConfirmRecipientContext,
    OfficerConnectorFailedContext,
    OfficerInstructionReminderContext,
    OfficerLockedContext,
    OfficerOverdueContext,
    OfficerReminderContext,
    OfficerRetentionDecisionContext,
    OfficerReviewContext,
)
from dsr.retention import PolicyError, RetainedPart

REQUEST = "REQ-2026-0042"
TEMPLATE_DIR = Path(emails.__file__).parent / "templates"
KNOWN_CATEGORIES = {
    "sms": ["phone_number", "traffic_data", "location_data", "message_content"],
    "customer_account": ["account_profile", "billing_details", "invoices"],
    "orchestrator": ["request_confirmation"],
}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def outcomes() -> list[ProductOutcome]:
    return [
        ProductOutcome(
            connector="sms",
            products=["SMS"],
            action=Action.ERASED,
            records={"phone_number": 1, "traffic_data": 57},
        ),
        ProductOutcome(
            connector="customer_account",
            products=["Customer account"],
            action=Action.EXPORTED,
            records={"account_profile": 1, "invoices": 12},
            note="Exported from the parent's billing system.",
        ),
        ProductOutcome(
            connector="video", products=["24sessions video"], action=Action.NOTHING_HELD
        ),
    ]


def retained() -> list[RetainedPart]:
    return [
        RetainedPart(
            connector="sms",
            category="traffic_data",
            rule_id="sms-voice-integrity",
            basis="Telecom integrity duty.",
            basis_translations={
                Language.EN: "Telecom integrity duty.",
                Language.ZH: "电信完整性义务。",
            },
            records_until=datetime(2026, 2, 28, 12, tzinfo=UTC),
            until=date(2026, 12, 30),
        ),
        RetainedPart(
            connector="customer_account",
            category="invoices",
            rule_id="litigation",
            basis="Legal hold for litigation.",
            records_until=None,
            until=None,
        ),
    ]


def answer(language: Language, catalogue: Catalogue) -> AnswerContext:
    exported = {"sms": ["traffic_data"], "customer_account": ["billing_details"]}
    facts = answer_facts(load_access_policies(), exported, Jurisdiction.EU, language)
    return AnswerContext(
        **facts.model_dump(),  # categories, recipients and transfers, as the answer states them
        request_id=REQUEST,
        language=language,
        rights=[Right.ACCESS, Right.ERASURE],
        jurisdiction=Jurisdiction.EU,
        received_on=date(2026, 8, 3),
        answered_on=date(2026, 8, 31),
        outcomes=outcomes(),
        retained=retained(),
        package_link="https://privacy.example/packages/tok3n",
        package_until=date(2025, 3, 6),
        category_names=catalogue.names(language),
        complaint=authority_for(Jurisdiction.EU, language),
    )


def officer_contexts() -> list[EmailContext]:
    return [
        OfficerReminderContext(request_id=REQUEST, due_on=date(2026, 9, 3), days_left=3),
        OfficerOverdueContext(request_id=REQUEST, due_on=date(2026, 9, 3), days_overdue=1),
        OfficerLockedContext(
            request_id=REQUEST, attempts=5, locked_at=datetime(2026, 8, 4, 9, 30, tzinfo=UTC)
        ),
        OfficerConnectorFailedContext(
            request_id=REQUEST,
            connector="sms",
            error="TimeoutError",
            failed_at=datetime(2026, 8, 5, 14, 5, tzinfo=UTC),
        ),
        OfficerConfirmRecipientContext(request_id=REQUEST),
        OfficerReviewContext(request_id=REQUEST, reasons=["draft text: complaint (UK)"]),
        OfficerAnswerNotesContext(request_id=REQUEST, notes=["recipients list incomplete"]),
        OfficerRetentionDecisionContext(request_id=REQUEST,
                                        parts=["sms/traffic_data: telecom-traffic-location (IT)"]),
    ]


def closing(language: Language, catalogue: Catalogue) -> dict[str, object]:
    """What the closing emails share: the fields of an answer without its findings."""
    return {
        "request_id": REQUEST,
        "language": language,
        "rights": [Right.ERASURE],
        "jurisdiction": Jurisdiction.UK,
        "received_on": date(2026, 8, 3),
        "answered_on": date(2026, 8, 24),
        "complaint": authority_for(Jurisdiction.UK, language),
        "category_names": catalogue.names(language),
    }


def requester_contexts(language: Language, catalogue: Catalogue) -> list[EmailContext]:
    received = date(2026, 8, 3)
    return [
        AcknowledgementContext(
            request_id=REQUEST,
            language=language,
            rights=[Right.ACCESS, Right.OPT_OUT_SALE_SHARING],
            jurisdiction=Jurisdiction.US_CA,
            received_on=received,
            due_on=date(2026, 9, 17),
            verification_needed=True,
        ),
        VerificationCodeContext(
            request_id=REQUEST,
            language=language,
            code="482913",
            valid_until=datetime(2026, 8, 6, 10, tzinfo=UTC),
            attempts=5,
        ),
        ExtensionContext(
            request_id=REQUEST,
            language=language,
            received_on=received,
            due_on=date(2026, 10, 3),
            reason="Your request concerns data in five affiliates.",
        ),
        ClarificationContext(
            request_id=REQUEST,
            language=language,
            received_on=received,
            question="Which phone number did you receive messages on?",
            clock_stops=True,
            reply_by=date(2026, 8, 20),
        ),
        answer(language, catalogue),
        DenialContext(
            **closing(language, catalogue),
            reason="This request repeats one answered two weeks ago.",
        ),
        UnverifiedContext(**closing(language, catalogue)),
        CancelledContext(**closing(language, catalogue), outcomes=outcomes()[:1]),
    ]


def all_contexts(language: Language, catalogue: Catalogue) -> list[EmailContext]:
    officers = [ctx.model_copy(update={"language": language}) for ctx in officer_contexts()]
    referral = ReferralContext(
        request_id=REQUEST, language=language, customer_account="CUST-0003",
        rights=[Right.ERASURE], identities=["phone: +447700900123"],
        received_on=date(2026, 8, 3))
    instruction = InstructionContext(
        request_id=REQUEST, language=language, operations=["erase"],
        identities=["phone: +447700900123"], customer_account="CUST-0003")
    reminder = OfficerInstructionReminderContext(
        request_id=REQUEST, language=language, connector="acme_analytics",
        instructed_on=date(2026, 8, 3))
    deferred = DeferredErasureContext(
        request_id=REQUEST, language=language, erased_on=date(2027, 2, 1),
        erased=["sms: message_content, phone_number"], remaining=True)
    child = OfficerChildReviewContext(
        request_id=REQUEST, language=language, target_on=date(2026, 8, 10),
        target_status="draft", days_left=7, due_on=date(2026, 9, 3), erasure="added",
        under_age=18)
    return [*requester_contexts(language, catalogue), *officers, child, referral, instruction,
            reminder, deferred]


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


# --- officer emails ------------------------------------------------------------------------


@pytest.mark.parametrize("language", list(Language))
def test_officer_emails_hold_only_what_they_are_given(language: Language) -> None:
    for context in officer_contexts():
        email = render_email(context.model_copy(update={"language": language}))

        assert "@" not in email.subject + email.body, context.template
        assert REQUEST in email.subject


def test_officer_emails_say_how_to_act() -> None:
    locked, failed, recipient, review, notes, retention = officer_contexts()[2:]

    assert f"python starter.py new-code {REQUEST}" in render_email(locked).body
    failed_body = render_email(failed).body
    assert f"python starter.py resolve-connector {REQUEST} sms --done --reason" in failed_body
    assert f"python starter.py resolve-connector {REQUEST} sms --skip --reason" in failed_body
    assert "5 August 2026, 14:05 UTC" in failed_body
    recipient_body = render_email(recipient).body
    assert f"python starter.py confirm-recipient {REQUEST} --note" in recipient_body
    assert f"python starter.py cancel {REQUEST} --reason" in recipient_body
    review_body = render_email(review).body
    assert "  - draft text: complaint (UK)\n" in review_body
    assert f"python starter.py release-answer {REQUEST} --note" in review_body
    assert "  - recipients list incomplete\n" in render_email(notes).body
    retention_body = render_email(retention).body
    assert "  - sms/traffic_data: telecom-traffic-location (IT)\n" in retention_body
    assert f"python starter.py retention-decision {REQUEST} --erase --note" in retention_body


# --- the catalogue -------------------------------------------------------------------------


def test_every_known_category_has_complete_facts_in_both_languages(catalogue) -> None:
    for connector, categories in KNOWN_CATEGORIES.items():
        for category in categories:
            for language in Language:
                facts = catalogue.facts(connector, category, language)
                assert facts.name and facts.purposes and facts.recipients and facts.retention
            assert catalogue.entry(connector, category).name.zh, (connector, category)


def test_facts_state_where_data_came_from_when_not_from_the_person(catalogue) -> None:
    sms = catalogue.facts("sms", "phone_number", Language.EN)
    assert sms.source == "Provided by the customer who sends you messages through our platform."
    assert catalogue.facts("customer_account", "billing_details", Language.EN).source is None


MINIMAL_CATALOGUE = """\
version: "t"
defaults:
  provenance: {status: draft, source: a test}
connectors:
  push:
    defaults:
      legal_basis: {en: Contract., zh: 合同。}
      automated_decisions: unconfirmed
      recipients: [hosting_providers]
      retention: {en: For the contract.}
      source: null
    categories:
      ip_address:
        name: {en: IP address}
        purposes: [{en: Delivering notifications.}]
"""


def test_a_missing_translation_falls_back_to_english(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(MINIMAL_CATALOGUE, encoding="utf-8")

    facts = load_catalogue(path).facts("push", "ip_address", Language.ZH)

    assert facts.name == "IP address"
    assert facts.legal_basis == "合同。"
    assert facts.recipients == [
        "第三方服务和技术提供商,例如我们的云托管服务提供商(批准的处理器)。"]


def test_an_unknown_category_is_a_key_error_naming_it(catalogue) -> None:
    with pytest.raises(KeyError) as raised:
        catalogue.facts("sms", "call_recording", Language.EN)

    assert isinstance(raised.value, UnknownCategory)
    assert "'call_recording'" in str(raised.value) and "'sms'" in str(raised.value)


def test_a_catalogue_entry_missing_a_fact_names_it(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(
        MINIMAL_CATALOGUE.replace("      retention: {en: For the contract.}\n", ""),
        encoding="utf-8",
    )

    with pytest.raises(PolicyError, match=r"connectors\.push\.ip_address\.retention"):
        load_catalogue(path)


# --- where to complain ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jurisdiction", "language", "names"),
    [
        (Jurisdiction.EU, Language.EN, ["Autoriteit Persoonsgegevens", "live or work"]),
        (Jurisdiction.DE, Language.EN, ["Autoriteit Persoonsgegevens", "federal state"]),
        (Jurisdiction.UK, Language.EN, ["Information Commissioner's Office (ICO)"]),
        (
            Jurisdiction.US_CA,
            Language.EN,
            ["California Privacy Protection Agency", "Attorney General"],
        ),
        (Jurisdiction.SG, Language.EN, ["PDPC"]),
        (Jurisdiction.AU, Language.EN, ["OAIC"]),
        (Jurisdiction.CO, Language.EN, ["Superintendencia de Industria y Comercio", "SIC"]),
        (Jurisdiction.BR, Language.EN, ["ANPD"]),
        (Jurisdiction.CN, Language.ZH, ["网信部门", "人民法院"]),
        (Jurisdiction.EU, Language.ZH, ["荷兰的数据保护监督机构", "司法救济"]),
    ],
)
def test_the_authority_depends_on_the_jurisdiction(
    jurisdiction: Jurisdiction, language: Language, names: list[str]
) -> None:
    text = authority_for(jurisdiction, language)

    for name in names:
        assert name in text


def test_every_jurisdiction_names_an_authority_and_a_judicial_remedy() -> None:
    authorities = load_authorities()
    for jurisdiction in Jurisdiction:
        assert "court" in authorities.complaint(jurisdiction, Language.EN)
        assert "法院" in authorities.complaint(jurisdiction, Language.ZH)


def test_an_authorities_file_missing_a_jurisdiction_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "authorities.yaml"
    path.write_text(
        'version: "t"\njudicial_remedy: {en: Courts., status: draft, source: law}\n'
        "your_rights: {en: Rights., status: draft, source: law}\n"
        "jurisdictions:\n  UK: {complaint: {en: ICO., status: draft, source: law}}\n",
        encoding="utf-8",
    )

    with pytest.raises(PolicyError, match="jurisdictions missing: EU, DE"):
        load_authorities(path)
