"""Officers and doors that sign without a person: the demo, the benchmarks and the tests act
as officers and stand in for the doors with these."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dsr.assertions import Role, public_key_text
from dsr.credentials import Signer, authority, load_action_roles
from dsr.database import make_engine
from dsr.models import Channel
from dsr.officers import OPERATOR, Registration, issue_credential, register, sign_login
from dsr.settings import Settings


def officer_signer(settings: Settings, officer_id: str, roles: Sequence[Role] = (Role.OFFICER,),
                   now: datetime | None = None) -> Signer:
    """An officer with a fresh key, registered by the operator (with the server secret) and
    logged in: for the demo, the benchmarks and the tests, which act as officers."""
    key = Ed25519PrivateKey.generate()
    engine = make_engine(settings.app_database_url)
    try:
        now = now or datetime.now(UTC)
        registration = Registration(officer_id=officer_id, roles=list(roles),
                                    public_key=public_key_text(key.public_key()))
        register(engine, settings.secret, registration, OPERATOR, now)
        namespace = settings.temporal_namespace
        login = sign_login(key, officer_id, namespace, now)
        credential = issue_credential(engine, settings.secret, login, namespace, now)
    finally:
        engine.dispose()
    return Signer(key, credential, namespace, load_action_roles(settings.policy_dir))


def door_signer(settings: Settings, channel: Channel, now: datetime | None = None) -> Signer:
    """One of the product's doors (the privacy center, the API), certified by the authority
    with the channel it verifies: for the demo, the benchmarks and the tests, which stand in
    for the doors."""
    key = Ed25519PrivateKey.generate()
    credential = authority(settings.secret).certify(
        f"door.{channel.value}", [Role.DOOR], key.public_key(), now or datetime.now(UTC),
        channel=channel.value)
    return Signer(key, credential, settings.temporal_namespace,
                  load_action_roles(settings.policy_dir))
