"""What an access answer says about automated decisions, recipients and transfers (issue 16,
items 2, 4 and 5), rendered as the answer activity builds it, in English and Chinese; and the
reasons an officer is given to review it before it is sent."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.answer import AnswerActivities, AnswerInput
from dsr.access_facts import (
    access_review_reasons,
    load_access_policies,
    officer_notes,
    review_reasons,
)
from dsr.catalogue import Decisions
from dsr.database import make_engine
from dsr.emails import AnswerContext, render_email
from dsr.models import Jurisdiction, RightsRequest, parse_request
from dsr.policies import PolicyFault, check_policies
from dsr.provenance import STATEMENT, RuleStatus
from dsr.settings import POLICY_DIR, Settings
from dsr.sharing import Listing

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
SMS = {"sms": ["phone_number", "traffic_data", "message_content"]}
ACCOUNT = {"customer_account": ["account_profile", "billing_details"]}
PROSPECT = {"marketing": ["prospect_profile", "consent_proof"]}
# The parties the privacy statement names (introduction, sections 3 and 4): nothing else.
STATEMENT_PARTIES = {
    "24sessions", "Pusher", "SparkPost", "Telvox", "Stripe", "Mollie", "Adyen",
    "WhatsApp for Business", "Google Business Messages", "Facebook Messenger", "Instagram",
    "Line", "Twitter", "Viber", "WeChat",
}  # fmt: skip
REASON_KINDS = (
    "automated decisions unconfirmed", "draft text: catalogue", "draft text: automated decisions",
    "draft text: recipients on request", "draft text: recipients", "draft text: recipient country",
    "draft text: transfer safeguard", "recipient country unconfirmed",
    "transfer safeguard unconfirmed", "recipients list incomplete: available on request",
    "draft text: transfers",
)


def request(jurisdiction: str, language: str = "en") -> RightsRequest:
    return parse_request({
        "request_id": "REQ-FACTS-1", "rights": ["access"], "jurisdiction": jurisdiction,
        "channel": "email", "language": language,
        "identities": [{"type": "email", "value": "ana.silva@example.com"}],
        "requester": {"kind": "subject", "email": "ana.silva@example.com"},
        "received_at": (NOW - timedelta(days=3)).isoformat()}, NOW)


def answer_body(tmp_path: Path, jurisdiction: str, exported: dict[str, list[str]],
                language: str = "en") -> str:
    settings = Settings(data_dir=tmp_path, hmac_key="catalogue-facts-key-8c1f4e2a9b7d3f60")
    activities = AnswerActivities(settings, make_engine(settings.app_database_url))
    context = activities._context(AnswerInput(request=request(jurisdiction, language),
                                              answered_at=NOW, exported=exported))
    return render_email(AnswerContext.model_validate(context)).body


def flat(text: str) -> str:
    return " ".join(text.split())


# --- transfers -----------------------------------------------------------------------------


@pytest.mark.parametrize("jurisdiction", ["EU", "DE"])
def test_an_eu_answer_states_transfers_outside_the_eea_once(tmp_path: Path,
                                                             jurisdiction: str) -> None:
    body = flat(answer_body(tmp_path, jurisdiction, SMS | ACCOUNT))
    assert body.count("Transfers outside the European Economic Area (EEA)") == 1
    assert "only where the required cross-border transfer mechanisms and safeguards" in body
    assert "where necessary, a transfer impact assessment" in body
    assert "may transfer" not in body
    assert "Standard Contractual Clauses" not in body  # the statement claims none


def test_a_uk_answer_states_transfers_outside_the_uk_with_the_uk_mechanisms(
        tmp_path: Path) -> None:
    body = flat(answer_body(tmp_path, "UK", SMS))
    assert body.count("Transfers outside the UK") == 1
    assert "International Data Transfer Agreement (IDTA)" in body
    assert "UK Addendum to the EU Standard Contractual Clauses" in body
    assert "EEA" not in body and "European Economic Area" not in body
    assert "approved by the European Commission" not in body


def test_other_jurisdictions_get_a_neutral_transfers_text(tmp_path: Path) -> None:
    body = flat(answer_body(tmp_path, "US-CA", SMS))
    assert "Transfers to other countries" in body
    assert "EEA" not in body and "IDTA" not in body
    chinese = answer_body(tmp_path, "SG", SMS, "zh")
    assert "跨境传输" in chinese and "EEA" not in chinese


def test_the_chinese_answer_uses_the_statements_transfer_words(tmp_path: Path) -> None:
    body = answer_body(tmp_path, "EU", SMS, "zh")
    assert body.count("向欧洲经济区(EEA)以外的传输") == 1
    assert "具备所需的跨境传输机制和保障措施" in body and "传输影响评估" in body
    assert "欧盟委员会批准" not in body
    uk = answer_body(tmp_path, "UK", SMS, "zh")
    assert "向英国以外的传输" in uk and "国际数据传输协议(IDTA)" in uk


def test_an_answer_without_exported_data_states_no_transfers(tmp_path: Path) -> None:
    body = answer_body(tmp_path, "EU", {})
    assert "Transfers" not in body and "Who receives your data" not in body


# --- automated decisions -------------------------------------------------------------------


def test_unconfirmed_automated_decisions_are_never_said_to_be_none(tmp_path: Path) -> None:
    body = flat(answer_body(tmp_path, "EU", SMS))
    assert body.count("Automated decision-making, including profiling: being confirmed.") == 3
    assert "profiling: none" not in body
    assert "Ask us for it at privacy[at]messagebird.com, quoting your reference" in body
    chinese = answer_body(tmp_path, "EU", SMS, "zh")
    assert chinese.count("自动化决策(包括用户画像):正在确认。") == 3
    assert "本答复中注明“正在确认”的信息" in chinese


def test_described_profiling_states_logic_significance_and_consequences(
        tmp_path: Path) -> None:
    body = flat(answer_body(tmp_path, "EU", PROSPECT))
    assert "How it works: We combine business information about you from third-party" in body
    assert "Its significance: It is used to grow our business through direct marketing" in body
    assert "Envisaged consequences for you: You may receive our direct marketing" in body
    # Consent proof is kept only as proof: none, said as such.
    assert "profiling: none; we make no automated decisions about you with this data." in body
    chinese = answer_body(tmp_path, "EU", PROSPECT, "zh")
    assert "相关逻辑:我们将从第三方商业信息服务提供商" in chinese
    assert "对您的预期后果:" in chinese and "自动化决策(包括用户画像):无" in chinese


def test_every_category_states_automated_decisions_with_a_source() -> None:
    catalogue = load_access_policies().catalogue
    for connector, categories in catalogue.connectors.items():
        for category, entry in categories.items():
            made = entry.automated_decisions
            if made.kind is not Decisions.UNCONFIRMED:
                assert made.provenance is not None, (connector, category)
                assert "privacy statement section" in made.provenance.source
            # The statement does not settle Art. 22 effects: nothing is confirmed as none.
            assert not (made.kind is Decisions.NONE and made.provenance
                        and made.provenance.status is RuleStatus.CONFIRMED)


# --- recipients ----------------------------------------------------------------------------


def test_the_answer_names_each_actual_recipient_once_with_its_country_and_safeguard(
        tmp_path: Path) -> None:
    body = answer_body(tmp_path, "EU", SMS | ACCOUNT)
    section = body[body.index("Who receives your data"):body.index("Transfers outside")]
    assert section.count("- Our affiliates (24sessions, Pusher, SparkPost and Telvox).") == 1
    for party in ("24sessions", "Pusher", "SparkPost", "Telvox", "Stripe", "Mollie", "Adyen"):
        assert f"    {party}: country: being confirmed; transfer safeguard: being confirmed" \
            in section
    assert "Government authorities" not in section  # a category only: nothing more to list


def test_where_the_list_is_incomplete_the_answer_offers_it_on_request(tmp_path: Path) -> None:
    body = flat(answer_body(tmp_path, "EU", SMS))
    assert "The actual recipients: available on request (below)." in body
    assert ("The list of the actual recipients is available on request: write to "
            "privacy[at]messagebird.com quoting your reference.") in body
    assert '"Approved Subprocessors" section of our privacy statement: ' \
        "https://messagebird.com/legal/privacy" in body
    chinese = answer_body(tmp_path, "EU", SMS, "zh")
    assert "实际接收方的名单可应要求提供" in chinese and "“批准的处理器”部分" in chinese


def test_the_recipients_file_names_no_party_the_statement_does_not() -> None:
    recipients = load_access_policies().recipients
    named = {party.name for entry in recipients.recipients.values() for party in entry.parties}
    assert named <= STATEMENT_PARTIES
    for entry in recipients.recipients.values():
        if entry.provenance.status is RuleStatus.CONFIRMED:
            assert entry.provenance.confirmed_by == STATEMENT
            assert entry.provenance.source.startswith("privacy statement")
    hosts = recipients.recipient("hosting_providers")
    assert hosts.listing is Listing.ON_REQUEST and not hosts.parties


# --- review reasons ------------------------------------------------------------------------


def test_review_reasons_name_every_unconfirmed_or_draft_fact_an_answer_uses() -> None:
    policies = load_access_policies()
    reasons = review_reasons(policies, {"sms": ["phone_number"]}, Jurisdiction.UK)
    assert reasons == [
        "automated decisions unconfirmed: sms/phone_number",
        "recipient country unconfirmed: 24sessions, Pusher, SparkPost, Telvox",
        "transfer safeguard unconfirmed: 24sessions, Pusher, SparkPost, Telvox",
        "draft text: transfers UK",
    ]
    # The list Legal has not filled in: the officer is told, the answer is not held for it.
    assert officer_notes(policies, {"sms": ["phone_number"]}) == [
        "recipients list incomplete: available on request "
        "(communication_providers, hosting_providers)"]
    eu = review_reasons(policies, {"voice": ["call_recordings"]} | PROSPECT, Jurisdiction.EU)
    assert "draft text: catalogue voice/call_recordings" in eu
    assert "draft text: automated decisions marketing/prospect_profile, " \
        "marketing/consent_proof" in eu
    assert not [reason for reason in eu if "transfers" in reason]  # EU: the statement's text
    assert review_reasons(policies, {}, Jurisdiction.UK) == []
    # As the worker asks it, from its policy folder:
    assert access_review_reasons(POLICY_DIR, {"sms": ["phone_number"]}, Jurisdiction.UK) \
        == reasons


def test_review_reasons_hold_only_policy_ids_and_company_names() -> None:
    """No personal data: every item a reason lists is a catalogue key, a recipient id, a
    named company or a jurisdiction, whatever was exported."""
    policies = load_access_policies()
    exported = {connector: list(categories)
                for connector, categories in policies.catalogue.connectors.items()}
    known = {f"{connector}/{category}" for connector, categories in exported.items()
             for category in categories}
    known |= set(policies.recipients.recipients) | STATEMENT_PARTIES
    known |= {jurisdiction.value for jurisdiction in Jurisdiction}
    phrases = sorted(known | set(REASON_KINDS), key=len, reverse=True)
    for jurisdiction in Jurisdiction:
        for reason in review_reasons(policies, exported, jurisdiction):
            rest = reason
            for phrase in phrases:
                rest = rest.replace(phrase, "")
            assert set(rest) <= set(" ,():"), reason


# --- the files Legal edits -----------------------------------------------------------------


def broken_policies(tmp_path: Path, name: str, old: str, new: str) -> Settings:
    folder = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, folder)
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return Settings(data_dir=tmp_path / "var", policy_dir=folder)


@pytest.mark.parametrize(("name", "old", "new", "named"), [
    ("recipients.yaml", "{name: Pusher, country: unconfirmed,", "{name: Pusher, country: ,",
     ["recipients.yaml", "recipients.affiliates.parties[1]", "country", "unconfirmed"]),
    ("recipients.yaml", "    listing: on_request\n", "    listing: listed\n",
     ["recipients.yaml", "recipients.communication_providers", "names its parties"]),
    ("catalogue.yaml", "recipients: [payment_providers,", "recipients: [banks,",
     ["catalogue.yaml", "connectors.customer_account.billing_details", "'recipients'",
      "'banks'"]),
    ("catalogue.yaml", "automated_decisions: unconfirmed", "automated_decisions: none",
     ["catalogue.yaml", "connectors.sms.phone_number", "automated_decisions",
      "write unconfirmed, or kind"]),
    ("catalogue.yaml", "          kind: none\n          provenance:\n",
     "          kind: none\n          former:\n",
     ["catalogue.yaml", "connectors.orchestrator.request_confirmation",
      "automated_decisions"]),
    ("transfers.yaml", "DE: {same_as: EU}", "DE: {same_as: FR}",
     ["transfers.yaml", "jurisdictions.DE", "same_as"]),
])
def test_a_bad_fact_stops_the_worker_naming_file_entry_and_field(
        tmp_path: Path, name: str, old: str, new: str, named: list[str]) -> None:
    with pytest.raises(PolicyFault) as refused:
        check_policies(broken_policies(tmp_path, name, old, new))
    for words in named:
        assert words in str(refused.value), (words, str(refused.value))
