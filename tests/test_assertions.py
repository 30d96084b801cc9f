"""Signed assertions: what an officer's or a door's action must carry, and every way a forged,
expired, replayed, misdirected or under-privileged one is refused, naming why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from dsr.assertions import (
    Assertion,
    AssertionRefused,
    Authority,
    Expected,
    NonceBook,
    Role,
    sign_action,
    verify,
)
from workflows.models import Denial, OfficerNote

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
AUTHORITY = Authority("authority-2026", Ed25519PrivateKey.generate())
TAN = Ed25519PrivateKey.generate()
NOTE = OfficerNote(officer="officer.tan", note="identity checked on a video call")


def credential(roles: list[Role], key: Ed25519PrivateKey = TAN, who: str = "officer.tan",
               authority: Authority = AUTHORITY, now: datetime = NOW, **evidence: Any) -> str:
    return authority.certify(who, roles, key.public_key(), now, **evidence)


def signed(arguments: Any = NOTE, *, roles: tuple[Role, ...] = (Role.OFFICER,),
           role: Role = Role.OFFICER, key: Ed25519PrivateKey = TAN, cred: str | None = None,
           target: str = "dsr-R-1", action: str = "mark_verified", now: datetime = NOW,
           lifetime: timedelta = timedelta(minutes=5)) -> Assertion:
    return sign_action(key, cred or credential(list(roles)), namespace="default", target=target,
                       action=action, arguments=arguments, role=role, now=now, lifetime=lifetime)


def expected(arguments: Any = NOTE, *, action: str = "mark_verified",
             roles: frozenset[Role] = frozenset({Role.OFFICER}), now: datetime = NOW,
             target: str = "dsr-R-1", namespace: str = "default") -> Expected:
    return Expected(namespace=namespace, target=target, action=action, arguments=arguments,
                    roles=roles, now=now)


def refused(assertion: Assertion, wanted: Expected, book: NonceBook | None = None) -> str:
    with pytest.raises(AssertionRefused) as error:
        verify(assertion, AUTHORITY.public, wanted, book)
    message = str(error.value)
    tokens = [t for t in (assertion.credential, assertion.action) if len(t) > 8]
    assert not [t for t in tokens if t in message], message  # never the token itself
    return message


def test_an_officers_signed_action_proves_who_acted_and_in_which_role() -> None:
    principal = verify(signed(), AUTHORITY.public, expected())
    assert principal.principal_id == "officer.tan" and principal.role is Role.OFFICER
    assert principal.expires_at == NOW + timedelta(minutes=5)


def test_a_typed_name_proves_nothing_the_credential_names_the_officer() -> None:
    forged_name = NOTE.model_copy(update={"officer": "officer.lee"})
    principal = verify(signed(forged_name), AUTHORITY.public, expected(forged_name))
    assert principal.principal_id == "officer.tan"  # whoever signed, not whoever was typed


def test_a_key_other_than_the_certified_one_does_not_verify() -> None:
    intruder = Ed25519PrivateKey.generate()
    assert "signature that does not verify" in refused(signed(key=intruder), expected())


def test_a_credential_from_another_authority_is_refused() -> None:
    rogue = Authority("rogue", Ed25519PrivateKey.generate())
    assert "not signed by the product's authority" in refused(
        signed(cred=credential([Role.OFFICER], authority=rogue)), expected())
    same_id = Authority("authority-2026", Ed25519PrivateKey.generate())
    assert "credential has a signature that does not verify" in refused(
        signed(cred=credential([Role.OFFICER], authority=same_id)), expected())


@pytest.mark.parametrize(("assertion", "reason"), [
    (lambda: signed(now=NOW - timedelta(minutes=6)), "the action has expired"),
    (lambda: signed(lifetime=timedelta(minutes=30)), "lives longer than 0:05:00"),
    (lambda: signed(now=NOW + timedelta(minutes=2)), "the action is issued in the future"),
    (lambda: signed(cred=credential([Role.OFFICER], now=NOW - timedelta(hours=13))),
     "the credential has expired"),
])
def test_expired_or_overlong_assertions_are_refused(assertion: Any, reason: str) -> None:
    assert reason in refused(assertion(), expected())


@pytest.mark.parametrize(("wanted", "reason"), [
    (expected(target="dsr-R-2"), "another request"),
    (expected(action="cancel"), "another action"),
    (expected(namespace="affiliate"), "another namespace"),
    (expected(NOTE.model_copy(update={"note": "verified, no doubt at all"})), "other arguments"),
])
def test_an_assertion_is_good_only_for_its_own_request_action_and_arguments(
        wanted: Expected, reason: str) -> None:
    assert reason in refused(signed(), wanted)


def test_a_role_the_credential_lacks_or_the_action_does_not_allow_is_refused() -> None:
    denial = Denial(officer="officer.tan", reason="manifestly unfounded, a repeat request")
    needs_approver = expected(denial, action="deny", roles=frozenset({Role.APPROVER}))
    as_officer = signed(denial, action="deny")
    assert "deny needs the role approver, not 'officer'" in refused(as_officer, needs_approver)
    claimed = signed(denial, action="deny", role=Role.APPROVER)  # credential: officer only
    assert "does not grant the role 'approver'" in refused(claimed, needs_approver)
    approver = signed(denial, action="deny", role=Role.APPROVER,
                      roles=(Role.OFFICER, Role.APPROVER))
    assert verify(approver, AUTHORITY.public, needs_approver).role is Role.APPROVER


def test_a_replayed_assertion_is_refused_by_its_nonce() -> None:
    book = NonceBook()
    assertion = signed()
    principal = verify(assertion, AUTHORITY.public, expected(), book)
    book.spend(principal, NOW)
    assert "already used (a replay)" in refused(assertion, expected(), book)
    assert verify(signed(), AUTHORITY.public, expected(), book)  # a new one is fine
    later = NOW + timedelta(minutes=10)
    book.spend(verify(signed(now=later), AUTHORITY.public, expected(now=later)), later)
    assert principal.nonce not in book.spent  # expired ones are forgotten


def test_a_door_vouches_for_what_it_verified() -> None:
    door = Ed25519PrivateKey.generate()
    cred = credential([Role.DOOR], key=door, who="door.privacy-panel",
                      login_at="2026-12-07T08:58:00+00:00", account="acct-7781")
    start = {"request_id": "R-1", "channel": "privacy_panel"}
    assertion = signed(start, key=door, cred=cred, role=Role.DOOR, action="start")
    principal = verify(assertion, AUTHORITY.public,
                       expected(start, action="start", roles=frozenset({Role.DOOR})))
    assert principal.evidence == {"login_at": "2026-12-07T08:58:00+00:00", "account": "acct-7781"}


@pytest.mark.parametrize("garbage", ["", "not-a-token", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_malformed_tokens_are_refused(garbage: str) -> None:
    assert "credential" in refused(Assertion(credential=garbage, action=garbage), expected())
    assert "the action" in refused(Assertion(credential=credential([Role.OFFICER]),
                                             action=garbage), expected())


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4),
       st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4))
def test_any_change_of_the_arguments_is_refused(signed_for: dict[str, Any],
                                                sent: dict[str, Any]) -> None:
    assertion = signed(signed_for)
    if signed_for == sent:
        assert verify(assertion, AUTHORITY.public, expected(sent))
    else:
        with pytest.raises(AssertionRefused, match="other arguments"):
            verify(assertion, AUTHORITY.public, expected(sent))
