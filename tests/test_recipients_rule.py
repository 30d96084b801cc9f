"""The rule of who may receive the answer (dsr.recipients), case by case: pure, no server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsr.models import RightsRequest, parse_request
from dsr.recipients import (
    Recipient,
    RecipientBasis,
    contact_account,
    verified_recipient,
)
from dsr.verification import Method, Target, plan_verification
from tests.test_models import ACCOUNT, EMAIL, NOW, PHONE, parse, well_formed

ATTACKER = "attacker@evil.example"
REGISTERED = "billing@acme.example"
CONTROLLER = {"kind": "controller", "email": "dpo@acme.example", "customer_account": ACCOUNT}


def verified(request: RightsRequest, by: Method | None = None) -> list[Target]:
    """The request's targets once every one is verified: by its planned method (a code, a
    login, the API), or ``by`` (an officer's ``MANUAL``) for those not verified at intake."""
    targets = plan_verification(request, NOW, 15)
    for target in targets:
        if not target.verified:
            target.verified, target.verified_by = True, by or target.method
    return targets


def recipient(request: RightsRequest, targets: list[Target], contact: str | None = REGISTERED,
              confirmed: bool = False) -> Recipient | None:
    """The rule as the workflow applies it: the contact only of the account it names."""
    looked_up = contact if contact_account(request, targets) is not None else None
    return verified_recipient(request, targets, looked_up, confirmed)


def where(found: Recipient | None) -> tuple[str, RecipientBasis] | None:
    return (found.email, found.basis) if found else None


# (a) an email identity verified by code ------------------------------------------------------


def test_the_requesters_email_verified_by_code_receives_the_answer() -> None:
    request = parse()
    targets = verified(request)
    assert contact_account(request, targets) is None, "nothing to look up"
    assert where(recipient(request, targets)) == (EMAIL, RecipientBasis.VERIFIED_EMAIL)


def test_the_email_comparison_ignores_case() -> None:
    request = parse(requester={"kind": "subject", "email": EMAIL.upper()})
    assert where(recipient(request, verified(request))) == (
        EMAIL.upper(), RecipientBasis.VERIFIED_EMAIL)


def test_a_verified_identity_does_not_make_another_address_a_recipient() -> None:
    """The attack: the victim's email as identity, the attacker's as the requester's."""
    request = parse(requester={"kind": "subject", "email": ATTACKER})
    for by in (None, Method.MANUAL):  # verified by code (somehow), or by hand by an officer
        targets = verified(request, by)
        assert contact_account(request, targets) is None
        assert recipient(request, targets) is None
    assert where(recipient(request, verified(request, Method.MANUAL), confirmed=True)) == (
        ATTACKER, RecipientBasis.OFFICER_CONFIRMED)


def test_an_email_identity_verified_by_hand_needs_the_officers_confirmation() -> None:
    request = parse()
    assert recipient(request, verified(request, Method.MANUAL)) is None
    assert where(recipient(request, verified(request, Method.MANUAL), confirmed=True)) == (
        EMAIL, RecipientBasis.OFFICER_CONFIRMED)


def test_an_unverified_email_identity_is_no_recipient() -> None:
    request = parse()
    assert recipient(request, plan_verification(request, NOW, 15)) is None


def test_one_of_several_identities_verified_by_code_is_enough() -> None:
    request = parse(identities=[{"type": "phone", "value": PHONE},
                                {"type": "email", "value": EMAIL}])
    targets = verified(request, Method.MANUAL)  # the phone by hand, the email too at first
    assert recipient(request, targets) is None
    targets[1].verified_by = Method.CODE  # the email by its code
    assert where(recipient(request, targets)) == (EMAIL, RecipientBasis.VERIFIED_EMAIL)


# (b) a customer acting as controller -------------------------------------------------------


@pytest.mark.parametrize("channel", ["email", "api", "privacy_panel"])
def test_a_controllers_answer_goes_to_its_registered_contact_however_verified(
        channel: str) -> None:
    fields: dict[str, Any] = {"channel": channel, "requester": CONTROLLER, "rights": ["erasure"],
                              "identities": [{"type": "phone", "value": PHONE}]}
    if channel == "privacy_panel":
        fields |= {"last_login_at": NOW.isoformat(),
                   "identities": [*fields["identities"], {"type": "account_id", "value": "x1"}]}
    request = parse(**fields)
    targets = verified(request)
    assert contact_account(request, targets) == ACCOUNT
    assert where(recipient(request, targets)) == (REGISTERED, RecipientBasis.CONTROLLER_CONTACT)


def test_a_controller_without_a_registered_contact_waits_for_the_officer() -> None:
    request = parse(channel="api", requester=CONTROLLER,
                    identities=[{"type": "phone", "value": PHONE}])
    assert recipient(request, verified(request), contact=None) is None
    assert where(recipient(request, verified(request), contact=None, confirmed=True)) == (
        CONTROLLER["email"], RecipientBasis.OFFICER_CONFIRMED)


# (c) a subject verified through an account_id ----------------------------------------------


@pytest.mark.parametrize("login_minutes_ago", [5, 60 * 24])
def test_an_account_holders_answer_goes_to_the_accounts_registered_contact(
        login_minutes_ago: int) -> None:
    """A panel login, or (an erasure after a stale login) a code to the registered contact."""
    request = parse(channel="privacy_panel", rights=["erasure"],
                    last_login_at=(NOW - timedelta(minutes=login_minutes_ago)).isoformat(),
                    identities=[{"type": "account_id", "value": ACCOUNT}],
                    requester={"kind": "subject", "email": ATTACKER})
    targets = verified(request)
    assert contact_account(request, targets) == ACCOUNT
    assert where(recipient(request, targets)) == (REGISTERED, RecipientBasis.ACCOUNT_CONTACT)
    assert recipient(request, targets, contact=None) is None, "an account without a contact"


def test_an_unverified_account_is_not_looked_up() -> None:
    request = parse(identities=[{"type": "account_id", "value": ACCOUNT}])
    targets = plan_verification(request, NOW, 15)
    assert contact_account(request, targets) is None
    assert recipient(request, targets) is None


def test_a_requesters_verified_email_is_preferred_to_an_accounts_contact() -> None:
    request = parse(identities=[{"type": "account_id", "value": ACCOUNT},
                                {"type": "email", "value": EMAIL}])
    targets = verified(request)
    assert contact_account(request, targets) is None
    assert where(recipient(request, targets)) == (EMAIL, RecipientBasis.VERIFIED_EMAIL)


# (d) everyone else: an officer confirms ----------------------------------------------------


@pytest.mark.parametrize("fields", [
    {"identities": [{"type": "phone", "value": PHONE}]},
    {"identities": [{"type": "channel_id", "value": "whatsapp:12345"}]},
    {"requester": {"kind": "agent", "email": "agent@law.example", "mandate_reference": "M-1"}},
    {"channel": "post"},
], ids=["phone", "channel id", "agent", "post"])
def test_identities_verified_by_hand_wait_for_the_officer(fields: dict[str, Any]) -> None:
    request = parse(**fields)
    targets = verified(request, Method.MANUAL)
    assert contact_account(request, targets) is None
    assert recipient(request, targets) is None
    assert where(recipient(request, targets, confirmed=True)) == (
        request.requester.email, RecipientBasis.OFFICER_CONFIRMED)


# No verification needed: an opt-out about the requester's own address ----------------------


def test_an_opt_out_about_the_requesters_own_email_is_confirmed_to_it() -> None:
    request = parse(rights=["opt_out_sale_sharing"], jurisdiction="US-CA")
    assert plan_verification(request, NOW, 15) == []
    assert where(recipient(request, [])) == (EMAIL, RecipientBasis.OWN_ADDRESS)


@pytest.mark.parametrize("identities", [
    [{"type": "phone", "value": PHONE}],
    [{"type": "email", "value": EMAIL}, {"type": "email", "value": "other@example.com"}],
    [{"type": "email", "value": EMAIL}, {"type": "phone", "value": PHONE}],
])
def test_an_opt_out_about_anyone_else_waits_for_the_officer(
        identities: list[dict[str, str]]) -> None:
    request = parse(rights=["limit_sensitive"], jurisdiction="US-CA", identities=identities)
    assert recipient(request, []) is None


# Whatever the request -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(well_formed(), st.sampled_from([None, Method.MANUAL]), st.booleans())
def test_the_recipient_is_always_one_the_rule_vouches_for(
        submitted: dict[str, Any], by: Method | None, confirmed: bool) -> None:
    request = parse_request(submitted, now=NOW)
    targets = verified(request, by)
    account = contact_account(request, targets)
    found = verified_recipient(request, targets, REGISTERED if account else None, confirmed)
    if found is None:
        assert not confirmed
        return
    if found.email == REGISTERED:
        assert found.basis in (RecipientBasis.CONTROLLER_CONTACT, RecipientBasis.ACCOUNT_CONTACT)
        assert account is not None
        return
    assert found.email == request.requester.email
    if found.basis is RecipientBasis.OFFICER_CONFIRMED:
        assert confirmed
    else:  # the requester's own address is an identity the request is about
        emails = {i.value.lower() for i in request.identities if i.type.value == "email"}
        assert request.requester.email.lower() in emails
    assert verified_recipient(request, targets, REGISTERED if account else None,
                              confirmed) == found, "deterministic"
