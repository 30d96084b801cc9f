"""dsr/catalogue.py: the data catalogue's facts in both languages, and where to complain in each
jurisdiction (the complaint authorities); bad files are refused naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsr.catalogue import UnknownCategory, authority_for, load_authorities, load_catalogue
from dsr.models import Jurisdiction, Language
from dsr.retention import PolicyError
from tests.email_contexts import catalogue as catalogue  # the fixture

KNOWN_CATEGORIES = {
    "sms": ["phone_number", "traffic_data", "location_data", "message_content"],
    "customer_account": ["account_profile", "billing_details", "invoices"],
    "orchestrator": ["request_confirmation"],
}


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
