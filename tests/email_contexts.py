"""What the email tests share: a realistic context for every template, requester's and
officer's, and the data catalogue as a module-scoped fixture."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from dsr.access_facts import answer_facts, load_access_policies
from dsr.catalogue import Catalogue, authority_for, load_catalogue
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
from dsr.retention import RetainedPart

REQUEST = "REQ-2026-0042"


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
