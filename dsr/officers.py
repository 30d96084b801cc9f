"""The officers' directory: who may act, in which roles, with which key.

An administrator registers an officer's public key and roles (their own signed assertion,
``register_officer``), or revokes the officer (``revoke_officer``). The first administrator is
registered by the operator, who holds the server secret (``officers bootstrap``). An officer
logs in by signing a login with their registered key; the directory, which holds the authority
(``dsr.credentials``), answers with a credential good for hours. A revoked officer gets no new
credential, so whatever they hold stops working within :data:`CREDENTIAL_LIFETIME`.

Every change is in the audit ledger under the authenticated identity that made it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, StringConstraints, field_validator
from sqlalchemy import Engine, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from dsr import ledger
from dsr.assertions import (
    ACTION,
    CREDENTIAL_LIFETIME,
    MAX_LIFETIME,
    AssertionRefused,
    Principal,
    Role,
    arguments_digest,
    public_key_from_text,
)
from dsr.credentials import authority
from dsr.orm import Base, UtcDateTime

DIRECTORY = "officers"  # the target named by directory actions and logins
OPERATOR = "operator"  # who registers the first administrator, with the server secret
OfficerId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{1,62}$")]


class OfficerRecord(Base):
    __tablename__ = "officers"

    officer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    roles: Mapped[str] = mapped_column(String(200))  # comma-separated
    public_key: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    registered_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(64))


class Registration(BaseModel):
    """An administrator's ``register_officer``: who, in which roles, with which public key."""

    model_config = {"hide_input_in_errors": True}

    officer_id: OfficerId
    roles: list[Role]
    public_key: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]

    @field_validator("roles")
    @classmethod
    def _officers_roles(cls, roles: list[Role]) -> list[Role]:
        if not roles:
            raise ValueError("give at least one role")
        if Role.DOOR in roles:
            raise ValueError("door is a door's role, not an officer's")
        return sorted(set(roles))

    @field_validator("public_key")
    @classmethod
    def _ed25519(cls, text: str) -> str:
        try:
            public_key_from_text(text)
        except AssertionRefused:
            raise ValueError("not an Ed25519 public key (as officers keygen prints it)") from None
        return text


class Revocation(BaseModel):
    model_config = {"hide_input_in_errors": True}

    officer_id: OfficerId


class Login(BaseModel):
    """An officer asking for a credential: a login action signed with their registered key."""

    officer_id: OfficerId
    token: Annotated[str, StringConstraints(max_length=2000)]


class Officer(BaseModel):
    officer_id: str
    roles: list[Role]
    public_key: str
    registered_at: datetime
    registered_by: str
    revoked_at: datetime | None = None


class DirectoryError(Exception):
    """A directory action refused, saying why (never quoting a key or a token)."""


def register(engine: Engine, secret: bytes, registration: Registration, by: Principal | str,
             now: datetime) -> Officer:
    """Register (or re-register with new roles or key) an officer; ``by`` is the administrator
    proven by their assertion, or :data:`OPERATOR`."""
    actor = by if isinstance(by, str) else by.principal_id
    with Session(engine) as session, session.begin():
        record = session.get(OfficerRecord, registration.officer_id, with_for_update=True)
        if record is None:
            record = OfficerRecord(officer_id=registration.officer_id)
            session.add(record)
        record.roles = ",".join(registration.roles)
        record.public_key = registration.public_key
        record.registered_at, record.registered_by = now, actor
        record.revoked_at = record.revoked_by = None
        ledger.append(session, "officer_registered", actor, now, None,
                      {"officer": registration.officer_id, "roles": list(registration.roles)},
                      ledger.ledger_key(secret))
        return _officer(record)


def revoke(engine: Engine, secret: bytes, revocation: Revocation, by: Principal,
           now: datetime) -> Officer:
    with Session(engine) as session, session.begin():
        record = session.get(OfficerRecord, revocation.officer_id, with_for_update=True)
        if record is None or record.revoked_at is not None:
            raise DirectoryError(f"no registered officer {revocation.officer_id}")
        if record.officer_id == by.principal_id:
            raise DirectoryError("an administrator cannot revoke themselves; ask another")
        record.revoked_at, record.revoked_by = now, by.principal_id
        ledger.append(session, "officer_revoked", by.principal_id, now, None,
                      {"officer": record.officer_id}, ledger.ledger_key(secret))
        return _officer(record)


def officers(engine: Engine) -> list[Officer]:
    with Session(engine) as session:
        rows = session.scalars(select(OfficerRecord).order_by(OfficerRecord.officer_id))
        return [_officer(record) for record in rows]


def issue_credential(engine: Engine, secret: bytes, login: Login, namespace: str,
                     now: datetime) -> str:
    """A credential for a registered officer whose login verifies against their key."""
    with Session(engine) as session:
        record = session.get(OfficerRecord, login.officer_id)
        if record is None or record.revoked_at is not None:
            raise DirectoryError(f"{login.officer_id} is not a registered officer; an "
                                 "administrator registers officers (officers register)")
        key = public_key_from_text(record.public_key)
        _check_login(login, key, namespace, now)
        roles = [Role(role) for role in record.roles.split(",")]
        credential = authority(secret).certify(record.officer_id, roles, key, now)
        ledger.append(session, "credential_issued", record.officer_id, now, None,
                      {"roles": list(roles), "hours": CREDENTIAL_LIFETIME.total_seconds() / 3600},
                      ledger.ledger_key(secret))
        session.commit()
        return credential


def login_claims(officer_id: str, namespace: str, now: datetime) -> dict[str, object]:
    """What an officer signs to log in (``sign_login``)."""
    return {"typ": ACTION, "ns": namespace, "target": DIRECTORY, "action": "login",
            "args": arguments_digest({"officer_id": officer_id}), "iat": now,
            "exp": now + MAX_LIFETIME}


def sign_login(key: Ed25519PrivateKey, officer_id: str, namespace: str, now: datetime) -> Login:
    return Login(officer_id=officer_id,
                 token=jwt.encode(login_claims(officer_id, namespace, now), key, "EdDSA"))


def _check_login(login: Login, key: object, namespace: str, now: datetime) -> None:
    try:
        claims = jwt.decode(login.token, key, algorithms=["EdDSA"],  # type: ignore[arg-type]
                            options={"verify_exp": False, "verify_iat": False})
    except jwt.InvalidTokenError:
        raise DirectoryError("the login is not signed by the key registered for "
                             f"{login.officer_id}") from None
    wanted = login_claims(login.officer_id, namespace, now)
    if any(claims.get(name) != wanted[name] for name in ("typ", "ns", "target", "action", "args")):
        raise DirectoryError("the login was made for another officer or namespace")
    issued = datetime.fromtimestamp(int(claims.get("iat", 0)), now.tzinfo)
    if not now - MAX_LIFETIME <= issued <= now + MAX_LIFETIME:
        raise DirectoryError("the login is too old or from the future; check your clock")


def _officer(record: OfficerRecord) -> Officer:
    return Officer(officer_id=record.officer_id, roles=[Role(r) for r in record.roles.split(",")],
                   public_key=record.public_key, registered_at=record.registered_at,
                   registered_by=record.registered_by, revoked_at=record.revoked_at)
