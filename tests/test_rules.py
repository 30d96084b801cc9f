"""Confirming the policy's rules and texts: only a lawyer or administrator, authenticated by the
officer service, confirms a draft; the confirmation is in the ledger with the text's
fingerprint and then in the file; a file claiming a confirmation the ledger lacks (edited by
hand, or changed after) stops a worker."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

import worker
from dsr import legal_doc, rules
from dsr.assertions import Role
from dsr.database import make_engine
from dsr.ledger import ledger_key, verify
from dsr.provenance import STATEMENT, RuleStatus
from dsr.settings import POLICY_DIR, Settings
from dsr.signers import officer_signer
from services.mail_server import free_port
from services.rule_actions import UnrecordedConfirmation, check_confirmations
from starter import app
from tests.conftest import officer_service_thread, write_officer_files

KEY = "rules-test-key-8d2f6a1c9e4b7f3a5c0e1d9b"
UK = ("authorities.yaml", "jurisdictions.UK.complaint")


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """The officer service on a copy of the shipped policy (no Temporal here); lee (legal),
    tan (administrator) and ada (officer and approver) logged in, each on their own machine."""
    policy = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, policy)
    port = free_port()
    settings = Settings(data_dir=tmp_path, hmac_key=KEY, officer_service_port=port,
                        officer_service_url=f"http://127.0.0.1:{port}", policy_dir=policy,
                        temporal_address="127.0.0.1:9")  # nothing listens there
    with officer_service_thread(settings):
        for name, roles in (("legal.lee", [Role.LEGAL]), ("admin.tan", [Role.ADMINISTRATOR]),
                            ("officer.ada", [Role.OFFICER, Role.APPROVER])):
            write_officer_files(officer_signer(settings, name, roles), tmp_path / name)
        yield settings


def _cli(settings: Settings, who: str, *args: str) -> tuple[int, str]:
    home = settings.data_dir / who
    env = {"DSR_DATA_DIR": str(home), "DSR_SETTINGS_FILE": str(home / "absent.env"),
           "DSR_OFFICER_SERVICE_URL": settings.officer_service_url,
           "DSR_POLICY_DIR": str(settings.policy_dir)}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, " ".join(result.output.split())  # as read, not as wrapped


def _confirmations(settings: Settings) -> list[tuple[str, dict[str, str]]]:
    with sqlite3.connect(settings.data_dir / "dsr.db") as connection:
        return [(actor, json.loads(detail)) for actor, detail in connection.execute(
            "SELECT actor, detail FROM ledger WHERE kind = 'rule_confirmed'")]


def test_the_shipped_policy_confirms_only_what_the_statement_says() -> None:
    found = rules.entries(POLICY_DIR)
    confirmed = [e for e in found if e.status is RuleStatus.CONFIRMED]
    assert confirmed and all(e.confirmed_by == STATEMENT for e in confirmed)
    assert all("privacy statement" in e.source for e in confirmed)
    assert ("authorities.yaml", "jurisdictions.UK.complaint") in {
        (e.file, e.address) for e in found if e.status is RuleStatus.DRAFT}


def test_a_lawyer_confirms_a_draft_in_the_ledger_and_the_file(settings: Settings) -> None:
    before = rules.find(settings.policy_dir, *UK)
    code, out = _cli(settings, "legal.lee", "rules", "confirm", *UK)

    assert code == 0, out
    assert "jurisdictions.UK.complaint: confirmed by legal.lee on" in out
    after = rules.find(settings.policy_dir, *UK)
    assert after.status is RuleStatus.CONFIRMED and after.confirmed_by == "legal.lee"
    assert after.fingerprint == before.fingerprint  # the text itself is untouched
    assert _confirmations(settings) == [("legal.lee", {
        "file": "authorities.yaml", "address": "jurisdictions.UK.complaint",
        "source": before.source, "fingerprint": before.fingerprint})]
    text = (settings.policy_dir / "authorities.yaml").read_text()
    assert "# Since 19 June 2026 (DPA 2018 s.164A" in text  # the comments stay
    engine = make_engine(settings.app_database_url)
    assert verify(engine, ledger_key(settings.secret), settings.data_dir / "anchors").ok
    check_confirmations(settings, engine)  # a worker starts on it
    code, out = _cli(settings, "legal.lee", "rules", "list", "--drafts")
    assert code == 0 and "jurisdictions.UK.complaint" not in out and "judicial_remedy" in out


def test_an_officer_without_the_role_is_refused_and_nothing_changes(settings: Settings) -> None:
    text = (settings.policy_dir / "authorities.yaml").read_text()

    code, out = _cli(settings, "officer.ada", "rules", "confirm", *UK)

    assert code == 1 and "confirm_rule" in out and "legal" in out
    assert (settings.policy_dir / "authorities.yaml").read_text() == text
    assert _confirmations(settings) == []


def test_an_administrator_may_confirm_and_a_second_confirmation_is_refused(
        settings: Settings) -> None:
    assert _cli(settings, "admin.tan", "rules", "confirm", *UK)[0] == 0
    code, out = _cli(settings, "legal.lee", "rules", "confirm", *UK)
    assert code == 1 and "already confirmed by admin.tan" in out
    assert len(_confirmations(settings)) == 1


def test_an_unknown_address_or_file_is_named_and_changes_nothing(settings: Settings) -> None:
    code, out = _cli(settings, "legal.lee", "rules", "confirm", "authorities.yaml",
                     "jurisdictions.XX.complaint")
    assert code == 1 and "no rule or text at 'jurisdictions.XX.complaint'" in out
    code, out = _cli(settings, "legal.lee", "rules", "confirm", "../secrets.yaml", "x")
    assert code == 2 and "give a policy file such as authorities.yaml" in out
    assert _confirmations(settings) == []


def _worker_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSR_POLICY_DIR", str(settings.policy_dir))
    monkeypatch.setenv("DSR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DSR_HMAC_KEY", KEY)
    monkeypatch.setenv("DSR_SETTINGS_FILE", str(settings.data_dir / "absent.env"))
    monkeypatch.setenv("DSR_TEMPORAL_ADDRESS", "127.0.0.1:9")  # never reached


def test_a_confirmation_typed_into_the_file_stops_the_worker(
        settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = settings.policy_dir / "authorities.yaml"
    path.write_text(path.read_text().replace(
        'status: draft\n      source: "DPA 2018 ss. 164A, 165; UK GDPR Art. 77"',
        'status: confirmed\n      source: "DPA 2018 ss. 164A, 165; UK GDPR Art. 77"\n'
        "      confirmed_by: legal.lee\n      confirmed_on: 2026-12-07"))
    _worker_env(settings, monkeypatch)

    assert worker.main([]) == 2
    message = capsys.readouterr().err
    assert "refusing to start" in message
    assert "authorities.yaml jurisdictions.UK.complaint" in message
    assert "starter.py rules confirm" in message


def test_a_confirmed_text_changed_afterwards_stops_the_worker(settings: Settings) -> None:
    assert _cli(settings, "legal.lee", "rules", "confirm", *UK)[0] == 0
    path = settings.policy_dir / "authorities.yaml"
    path.write_text(path.read_text().replace("Information\n        Commissioner's Office (ICO)",
                                             "Information\n        Commissioner (ICO)"))

    with pytest.raises(UnrecordedConfirmation, match=r"jurisdictions\.UK\.complaint"):
        check_confirmations(settings, make_engine(settings.app_database_url))


def test_the_page_legal_reviews_is_generated_from_the_policy_files() -> None:
    """docs/legal.md: regenerate with `python starter.py rules doc` after changing a file."""
    page = (Path(__file__).parent.parent / "docs" / "legal.md").read_text(encoding="utf-8")
    assert page == legal_doc.render(POLICY_DIR)
    assert "## UK" in page and "the period starts once identity is confirmed" in page


def test_confirming_a_part_keeps_the_confirmation_of_the_whole(tmp_path: Path) -> None:
    """A rule Legal confirmed stays confirmed when Legal then confirms one of its overrides:
    only an edit of the text itself makes a confirmation stale."""
    policy = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, policy)
    path = policy / "retention.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        'status: confirmed\n    source: "privacy statement 7.1 (six months by default)"\n'
        "    confirmed_by: privacy-statement\n    confirmed_on: 2026-12-07",
        'status: draft\n    source: "privacy statement 7.1 (six months by default)"'),
        encoding="utf-8")
    rule = "rules.telecom-traffic-location"
    ledger = {(e.file, e.address, e.fingerprint) for e in (
        rules.confirm(policy, "retention.yaml", rule, "legal.lee", date(2026, 12, 7)),
        rules.confirm(policy, "retention.yaml", f"{rule}.overrides.IT", "legal.lee",
                      date(2026, 12, 8)))}
    assert rules.unrecorded(policy, ledger) == []
