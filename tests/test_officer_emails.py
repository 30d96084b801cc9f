"""dsr/officer_emails.py: an officer's email holds only what it is given (never a requester's
address) and says which command to run."""

from __future__ import annotations

import pytest

from dsr.emails import render_email
from dsr.models import Language
from tests.email_contexts import REQUEST, officer_contexts


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
