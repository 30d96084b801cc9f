"""The officer authority, the roles each action needs, and an officer's signing side.

The authority's Ed25519 key is derived from the server secret for this one purpose
(``dsr.purposes``): only processes holding the server secret certify officers, and its public
key (with its id) is all a workflow needs to check an assertion. An officer holds only their
own key (a private file, made by ``starter.py officers keygen``) and the credential the
directory issued for it (``starter.py login``, good for hours): a :class:`Signer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError

from dsr.assertions import Assertion, Authority, Role, sign_action
from dsr.files import open_private, private_folder
from dsr.purposes import OFFICER_AUTHORITY, key_id, purpose_key

ROLES_FILE = "roles.yaml"


class CredentialError(Exception):
    """An officer's key or credential is missing or unusable; says what to run."""


def authority(secret: bytes) -> Authority:
    """The product's officer authority, from the server secret."""
    seed = purpose_key(secret, OFFICER_AUTHORITY)
    return Authority(key_id(seed), Ed25519PrivateKey.from_private_bytes(seed))


class RolesTable(BaseModel):
    version: str
    actions: dict[str, list[Role]]


def load_action_roles(policy_dir: Path) -> dict[str, list[Role]]:
    """Which roles may take each action (``roles.yaml``), checked: a role that does not exist
    or an action with no role is refused, naming it."""
    path = policy_dir / ROLES_FILE
    try:
        table = RolesTable.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise CredentialError(f"{path}: {_first_line(error)}") from None
    empty = [action for action, roles in table.actions.items() if not roles]
    if empty:
        raise CredentialError(f"{path}: no role may take {', '.join(empty)}; list at least one")
    return table.actions


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


# The officer's side -----------------------------------------------------------------------


def generate_key(path: Path) -> Ed25519PrivateKey:
    """A new officer key in a private file (refused if one is there: it is not replaced)."""
    if path.exists():
        raise CredentialError(f"{path} already holds a key; use it, or remove it first")
    key = Ed25519PrivateKey.generate()
    private_folder(path.parent)
    with open_private(path) as file:
        file.write(key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise CredentialError(f"no officer key at {path}: make one with "
                              "python starter.py officers keygen") from None
    except ValueError:
        raise CredentialError(f"{path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CredentialError(f"{path} is not an Ed25519 key")
    return key


def credential_claims(credential: str) -> dict[str, Any]:
    """What a credential says (unchecked: the workflows and the directory check it)."""
    try:
        claims: dict[str, Any] = jwt.decode(credential, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise CredentialError("the saved credential is not a credential: log in again with "
                              "python starter.py login") from None
    return claims


@dataclass(frozen=True)
class Signer:
    """An officer ready to act: their key and the credential certifying it."""

    key: Ed25519PrivateKey
    credential: str
    namespace: str
    action_roles: dict[str, list[Role]]

    @classmethod
    def from_files(cls, key_file: Path, credential_file: Path, namespace: str,
                   policy_dir: Path) -> Signer:
        key = load_key(key_file)
        try:
            credential = credential_file.read_text().strip()
        except FileNotFoundError:
            raise CredentialError("no officer credential: log in with "
                                  "python starter.py login") from None
        claims = credential_claims(credential)
        if datetime.fromtimestamp(int(claims.get("exp", 0)), UTC) <= datetime.now(UTC):
            raise CredentialError("your credential has expired: log in again with "
                                  "python starter.py login")
        return cls(key, credential, namespace, load_action_roles(policy_dir))

    @property
    def officer_id(self) -> str:
        return str(credential_claims(self.credential)["sub"])

    @property
    def roles(self) -> list[Role]:
        return [Role(role) for role in credential_claims(self.credential).get("roles", [])]

    def role_for(self, action: str) -> Role:
        """The role to act in: the first one ``action`` allows that the credential grants."""
        allowed = self.action_roles.get(action, [])
        if not allowed:
            raise CredentialError(f"{action} is in no row of {ROLES_FILE}: no one may take it")
        granted = [role for role in allowed if role in self.roles]
        if not granted:
            needed = " or ".join(allowed)
            raise CredentialError(f"{action} needs the role {needed}; your credential grants "
                                  f"{', '.join(self.roles) or 'none'}")
        return granted[0]

    def sign(self, target: str, action: str, arguments: Any,
             now: datetime | None = None) -> Assertion:
        return sign_action(self.key, self.credential, namespace=self.namespace, target=target,
                           action=action, arguments=arguments, role=self.role_for(action),
                           now=now or datetime.now(UTC))
