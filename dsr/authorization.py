"""An officer's action checked outside a workflow (the officers' directory, the officer
service): the assertion verifies against the product's authority, grants a role the action
allows (``roles.yaml``), its officer is still registered (a revocation counts at once here,
not only when the credential expires), and its nonce is spent in the database (or by the
workflow the action goes to)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dsr import nonces
from dsr.assertions import Assertion, AssertionRefused, Expected, Principal, Role, verify
from dsr.credentials import authority
from dsr.officers import OfficerRecord


def check(engine: Engine, secret: bytes, action_roles: dict[str, list[Role]], *,
          namespace: str, target: str, action: str, arguments: Any,
          assertion: Assertion | None, now: datetime, spend: bool = True) -> Principal:
    """The proven principal, or :class:`AssertionRefused` naming the fault. An assertion is
    spent once checked, whether or not what it asks is then refused. ``spend=False``
    where the target spends the nonce itself (a request's workflow, in its Update handler):
    an action it then refuses leaves nothing behind here either."""
    if assertion is None:
        raise AssertionRefused("the action carries no assertion; log in with "
                               "python starter.py login")
    expected = Expected(namespace=namespace, target=target, action=action, arguments=arguments,
                        roles=frozenset(action_roles.get(action, [])), now=now)
    principal = verify(assertion, authority(secret).public, expected)
    with Session(engine) as session, session.begin():
        record = session.get(OfficerRecord, principal.principal_id)
        if principal.role is not Role.DOOR and (record is None or record.revoked_at is not None):
            raise AssertionRefused(f"{principal.principal_id} is no longer a registered officer")
        if spend:
            nonces.spend(session, principal, now)
    return principal
