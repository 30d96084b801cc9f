"""The officers' directory on a real SQLite file: the operator registers the first
administrator, administrators register and revoke officers with signed assertions, officers
log in with their own key; every forged, replayed, under-privileged or revoked attempt is
refused naming why, changes nothing, and the ledger credits who was proven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from dsr import authorization, officers
from dsr.assertions import Assertion, AssertionRefused, Role, public_key_text, sign_action
from dsr.credentials import CredentialError, Signer, credential_claims, load_action_roles
from dsr.database import make_engine
from dsr.ledger import LedgerEntry
from dsr.settings import Settings
from dsr.signers import officer_signer

ROLES = load_action_roles(Settings().policy_dir)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, hmac_key="directory-test-key-4e8a2f6c1b9d7e3a5f0c8b2d")


def registration(officer_id: str, key: Ed25519PrivateKey,
                 roles: list[Role] | None = None) -> officers.Registration:
    return officers.Registration(officer_id=officer_id, roles=roles or [Role.OFFICER],
                                 public_key=public_key_text(key.public_key()))


def act(settings: Settings, signer: Signer, action: str, arguments: object,
        assertion: Assertion | None = None) -> officers.Officer:
    """What ``officers register`` and ``officers revoke`` do: check, then change."""
    engine = make_engine(settings.app_database_url)
    now = datetime.now(UTC)
    principal = authorization.check(
        engine, settings.secret, ROLES, namespace="default", target=officers.DIRECTORY,
        action=action, arguments=arguments,
        assertion=assertion or signer.sign(officers.DIRECTORY, action, arguments), now=now)
    if isinstance(arguments, officers.Registration):
        return officers.register(engine, settings.secret, arguments, principal, now)
    assert isinstance(arguments, officers.Revocation)
    return officers.revoke(engine, settings.secret, arguments, principal, now)


def ledger_kinds(settings: Settings) -> list[tuple[str, str]]:
    with Session(make_engine(settings.app_database_url)) as session:
        return [(e.kind, e.actor) for e in session.scalars(select(LedgerEntry)
                                                           .order_by(LedgerEntry.seq))]


def test_an_administrator_registers_an_officer_who_logs_in_with_their_own_key(
        settings: Settings) -> None:
    admin = officer_signer(settings, "admin.lee", [Role.ADMINISTRATOR])
    key = Ed25519PrivateKey.generate()
    act(settings, admin, "register_officer", registration("officer.tan", key))
    engine = make_engine(settings.app_database_url)
    now = datetime.now(UTC)
    credential = officers.issue_credential(
        engine, settings.secret, officers.sign_login(key, "officer.tan", "default", now),
        "default", now)
    claims = credential_claims(credential)
    assert (claims["sub"], claims["roles"]) == ("officer.tan", ["officer"])
    assert claims["exp"] - claims["iat"] == 12 * 3600
    assert ledger_kinds(settings) == [
        ("officer_registered", "operator"), ("credential_issued", "admin.lee"),
        ("officer_registered", "admin.lee"), ("credential_issued", "officer.tan")]


def test_an_officer_without_the_administrator_role_cannot_register_anyone(
        settings: Settings) -> None:
    tan = officer_signer(settings, "officer.tan", [Role.OFFICER, Role.APPROVER])
    promotion = registration("officer.tan", tan.key, [Role.ADMINISTRATOR])
    with pytest.raises(CredentialError, match="register_officer needs the role administrator"):
        tan.sign(officers.DIRECTORY, "register_officer", promotion)  # the CLI says so first
    before = officers.officers(make_engine(settings.app_database_url))
    for role, reason in ((Role.OFFICER, "needs the role administrator, not 'officer'"),
                         (Role.ADMINISTRATOR, "does not grant the role 'administrator'")):
        forced = sign_action(tan.key, tan.credential, namespace="default",
                             target=officers.DIRECTORY, action="register_officer",
                             arguments=promotion, role=role, now=datetime.now(UTC))
        with pytest.raises(AssertionRefused, match=reason):
            act(settings, tan, "register_officer", promotion, forced)
    assert officers.officers(make_engine(settings.app_database_url)) == before


def test_a_replayed_a_misdirected_and_a_revoked_administrators_action_are_refused(
        settings: Settings) -> None:
    admin = officer_signer(settings, "admin.lee", [Role.ADMINISTRATOR])
    other = officer_signer(settings, "admin.kim", [Role.ADMINISTRATOR])
    first = registration("officer.tan", Ed25519PrivateKey.generate())
    assertion = admin.sign(officers.DIRECTORY, "register_officer", first)
    act(settings, admin, "register_officer", first, assertion)
    with pytest.raises(AssertionRefused, match="already used"):
        act(settings, admin, "register_officer", first, assertion)
    swapped = registration("officer.tan", Ed25519PrivateKey.generate(), [Role.ADMINISTRATOR])
    with pytest.raises(AssertionRefused, match="other arguments"):
        act(settings, admin, "register_officer", swapped, assertion)
    act(settings, other, "revoke_officer", officers.Revocation(officer_id="admin.lee"))
    with pytest.raises(AssertionRefused, match=r"admin\.lee is no longer a registered officer"):
        act(settings, admin, "register_officer", swapped)
    listed = {o.officer_id: o for o in officers.officers(make_engine(settings.app_database_url))}
    assert listed["officer.tan"].roles == [Role.OFFICER]
    assert listed["admin.lee"].revoked_at is not None


def test_a_login_needs_the_registered_key_and_an_active_officer(settings: Settings) -> None:
    engine = make_engine(settings.app_database_url)
    now = datetime.now(UTC)
    key, intruder = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    officers.register(engine, settings.secret, registration("officer.tan", key),
                      officers.OPERATOR, now)
    refusals = {
        "not signed by the key registered": officers.sign_login(intruder, "officer.tan",
                                                                "default", now),
        "officer.kim is not a registered officer": officers.sign_login(key, "officer.kim",
                                                                       "default", now),
        "another officer or namespace": officers.sign_login(key, "officer.tan", "affiliate", now),
        "too old": officers.sign_login(key, "officer.tan", "default",
                                       now - timedelta(minutes=20)),
    }
    entries = len(ledger_kinds(settings))
    for reason, login in refusals.items():
        with pytest.raises(officers.DirectoryError, match=reason):
            officers.issue_credential(engine, settings.secret, login, "default", now)
    assert len(ledger_kinds(settings)) == entries


def test_a_revoked_officer_gets_no_new_credential(settings: Settings) -> None:
    admin = officer_signer(settings, "admin.lee", [Role.ADMINISTRATOR])
    key = Ed25519PrivateKey.generate()
    act(settings, admin, "register_officer", registration("officer.tan", key))
    act(settings, admin, "revoke_officer", officers.Revocation(officer_id="officer.tan"))
    now = datetime.now(UTC)
    with pytest.raises(officers.DirectoryError, match="not a registered officer"):
        officers.issue_credential(make_engine(settings.app_database_url), settings.secret,
                                  officers.sign_login(key, "officer.tan", "default", now),
                                  "default", now)
    with pytest.raises(officers.DirectoryError, match="cannot revoke themselves"):
        act(settings, admin, "revoke_officer", officers.Revocation(officer_id="admin.lee"))


def test_the_roles_table_is_checked(tmp_path: Path) -> None:
    (tmp_path / "roles.yaml").write_text("version: x\nactions:\n  approve: [approver, judge]\n")
    with pytest.raises(CredentialError, match=r"roles\.yaml"):
        load_action_roles(tmp_path)
    (tmp_path / "roles.yaml").write_text("version: x\nactions:\n  approve: []\n")
    with pytest.raises(CredentialError, match="no role may take approve"):
        load_action_roles(tmp_path)
