"""Who acts, proven: signed assertions for officers' actions and the doors' evidence.

Names are never trusted because they are typed. An action on a request carries an
:class:`Assertion`, made of two signed tokens (JWS, EdDSA over Ed25519, through PyJWT):

* a **credential**: the product's officer authority (a key the product service holds, never an
  officer) certifies a principal (an officer, or a door such as the privacy center), its roles
  and its public key, for a few hours; revoking an officer is not renewing their credential;
* the **action**: the principal, with its own key, signs one action: namespace, target (the
  workflow id), action name, a digest of the action's arguments, the role it acts in, when it
  was issued, an expiry of at most :data:`MAX_LIFETIME`, and a nonce.

Neither is a bearer token: the credential certifies a public key, and the action token is
good for one action on one request for minutes. Checking one needs only the authority's
public keys, so it runs where no I/O may (an Update's validator, against the keys in the
request's policy snapshot): signature, authority, role, target, action, arguments, time;
a replay is refused by its nonce (:class:`NonceBook`, kept in the workflow: the validator
checks it, the handler spends it, since a validator must change nothing and is not replayed).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import BaseModel, Field

ALGORITHM = "EdDSA"
CREDENTIAL = "dsr-credential"
ACTION = "dsr-action"
MAX_LIFETIME = timedelta(minutes=5)
CREDENTIAL_LIFETIME = timedelta(hours=12)
CLOCK_SKEW = timedelta(seconds=30)


def _load_native_errors() -> None:
    """Have cryptography's native code import the exception a bad signature raises, here
    (outside any workflow sandbox). It imports it lazily, once per process, the first time a
    signature fails; inside Temporal's sandbox that import fails and aborts the worker
    process, so a forged assertion sent to an Update validator would crash the worker."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    with contextlib.suppress(InvalidSignature):
        key.verify(bytes(64), b"")


_load_native_errors()


class Role(StrEnum):
    OFFICER = "officer"  # acts on requests
    APPROVER = "approver"  # approves and denies
    AUDITOR = "auditor"  # reads and decodes only
    ADMINISTRATOR = "administrator"  # holds, officers, keys
    LEGAL = "legal"  # confirms the policy's rules and texts (a lawyer of the group)
    DOOR = "door"  # a public door vouching for what it verified (panel login, API client)


class AssertionRefused(Exception):
    """Why an action is refused; names the fault, never a key or a signature."""


class Assertion(BaseModel):
    """What an action carries: the principal's credential and its signed action."""

    credential: str = Field(max_length=4000, repr=False)
    action: str = Field(max_length=4000, repr=False)


class Principal(BaseModel):
    """Who acted, as proven: recorded in the ledger instead of a typed name."""

    principal_id: str
    role: Role
    nonce: str
    expires_at: datetime
    evidence: dict[str, Any] = Field(default_factory=dict)  # a door's: what it verified


class Expected(BaseModel):
    """What the action must be about, from where it is checked."""

    namespace: str
    target: str
    action: str
    arguments: Any = None
    roles: frozenset[Role]
    now: datetime


def arguments_digest(arguments: Any) -> str:
    """SHA-256 of the arguments' canonical JSON (pydantic models dumped as JSON, keys sorted)."""
    if isinstance(arguments, BaseModel):
        arguments = arguments.model_dump(mode="json", exclude={"assertion"})
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.urlsafe_b64encode(key.public_bytes_raw()).decode()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(text))
    except ValueError:
        raise AssertionRefused("the public key is not an Ed25519 key") from None


class Authority:
    """The product's officer authority: certifies principals' keys and roles."""

    def __init__(self, key_id: str, key: Ed25519PrivateKey) -> None:
        self.key_id = key_id
        self._key = key

    @property
    def public(self) -> dict[str, str]:
        return {self.key_id: public_key_text(self._key.public_key())}

    def certify(self, principal_id: str, roles: list[Role], key: Ed25519PublicKey, now: datetime,
                lifetime: timedelta = CREDENTIAL_LIFETIME, **evidence: Any) -> str:
        claims = {"typ": CREDENTIAL, "sub": principal_id, "roles": sorted(roles),
                  "key": public_key_text(key), "iat": now, "exp": now + lifetime,
                  "evidence": evidence}
        return jwt.encode(claims, self._key, ALGORITHM, headers={"kid": self.key_id})


def sign_action(key: Ed25519PrivateKey, credential: str, *, namespace: str, target: str,
                action: str, arguments: Any, role: Role, now: datetime,
                lifetime: timedelta = MAX_LIFETIME) -> Assertion:
    claims = {"typ": ACTION, "ns": namespace, "target": target, "action": action,
              "args": arguments_digest(arguments), "role": role.value, "iat": now,
              "exp": now + lifetime, "nonce": secrets.token_urlsafe(16)}
    return Assertion(credential=credential, action=jwt.encode(claims, key, ALGORITHM))


def verify(assertion: Assertion, authorities: dict[str, str], expected: Expected,
           seen: NonceBook | None = None) -> Principal:
    """The proven principal, or :class:`AssertionRefused` saying what is wrong. Pure: the
    authorities' public keys (key id to key) and the time come from the caller."""
    credential = _credential(assertion.credential, authorities, expected.now)
    claims = _decode(assertion.action, public_key_from_text(credential["key"]), expected.now,
                     "the action")
    _check_action(claims, credential, expected)
    if seen is not None:
        seen.check(claims["nonce"])
    return Principal(principal_id=credential["sub"], role=Role(claims["role"]),
                     nonce=claims["nonce"], expires_at=_time(claims["exp"]),
                     evidence=credential.get("evidence") or {})


def _credential(token: str, authorities: dict[str, str], now: datetime) -> dict[str, Any]:
    try:
        key_id = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        raise AssertionRefused("the credential is not a signed token") from None
    if key_id not in authorities:
        raise AssertionRefused("the credential is not signed by the product's authority")
    claims = _decode(token, public_key_from_text(authorities[key_id]), now, "the credential")
    if claims.get("typ") != CREDENTIAL or not isinstance(claims.get("roles"), list):
        raise AssertionRefused("the credential is not an officer credential")
    return claims


def _decode(token: str, key: Ed25519PublicKey, now: datetime, what: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[ALGORITHM],
            # Times are checked below against the caller's clock (workflow time).
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                     "require": ["exp", "iat"]})
    except jwt.InvalidSignatureError:
        raise AssertionRefused(f"{what} has a signature that does not verify") from None
    except jwt.InvalidTokenError as error:
        raise AssertionRefused(f"{what} is malformed ({type(error).__name__})") from None
    if _time(claims["exp"]) <= now - CLOCK_SKEW:
        raise AssertionRefused(f"{what} has expired")
    if _time(claims["iat"]) > now + CLOCK_SKEW:
        raise AssertionRefused(f"{what} is issued in the future")
    return claims


def _check_action(claims: dict[str, Any], credential: dict[str, Any], expected: Expected) -> None:
    if claims.get("typ") != ACTION:
        raise AssertionRefused("the action token is not an action")
    if _time(claims["exp"]) - _time(claims["iat"]) > MAX_LIFETIME:
        raise AssertionRefused(f"the action lives longer than {MAX_LIFETIME}")
    wanted = {"ns": expected.namespace, "target": expected.target, "action": expected.action,
              "args": arguments_digest(expected.arguments)}
    names = {"ns": "another namespace", "target": "another request", "action": "another action",
             "args": "other arguments"}
    for claim, value in wanted.items():
        if claims.get(claim) != value:
            raise AssertionRefused(f"the assertion was made for {names[claim]}")
    role = claims.get("role")
    if role not in credential["roles"]:
        raise AssertionRefused(f"the credential does not grant the role {role!r}")
    if role not in expected.roles:
        allowed = ", ".join(sorted(expected.roles))
        raise AssertionRefused(f"{expected.action} needs the role {allowed}, not {role!r}")
    if not isinstance(claims.get("nonce"), str) or len(claims["nonce"]) < 16:
        raise AssertionRefused("the action has no nonce")


def _time(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


class NonceBook(BaseModel):
    """The nonces spent on one target, each until its action's expiry: a replay is refused."""

    spent: dict[str, datetime] = Field(default_factory=dict)

    def check(self, nonce: str) -> None:
        if nonce in self.spent:
            raise AssertionRefused("the assertion was already used (a replay)")

    def spend(self, principal: Principal, now: datetime) -> None:
        """Record the action's nonce (and forget those whose actions have expired)."""
        self.check(principal.nonce)
        self.spent = {n: at for n, at in self.spent.items() if at > now - CLOCK_SKEW}
        self.spent[principal.nonce] = principal.expires_at
