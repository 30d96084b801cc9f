"""Who a request names, as a connector looks them up: the values of the identities of some
types (only within the scope's customer where the customer is the controller), and an
identity built from a stored or given value, refused without quoting it."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError

from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import Scope
from dsr.models import Identity, IdentityType


def identity_values(identities: Iterable[Identity], *types: IdentityType) -> list[str]:
    """The distinct values of the identities of ``types``, sorted."""
    return sorted({i.value for i in identities if i.type in types})


def customer_identity_values(scope: Scope, *types: IdentityType) -> list[str]:
    """The values to look up at the scope's customer; none without a customer account (an
    end user's records are never searched across customers)."""
    if scope.customer_account is None:
        return []
    return identity_values(scope.identities, *types)


def identities_of(kind: IdentityType, values: Iterable[str]) -> list[Identity]:
    """Identities of one type, one per value, each checked (``checked_identity``)."""
    return [checked_identity(kind, value) for value in values]


def checked_identity(kind: IdentityType, value: str) -> Identity:
    """An identity; a malformed value is refused (``ConnectorInputError``) without quoting it."""
    try:
        return Identity(type=kind, value=value)
    except ValidationError:
        raise ConnectorInputError(f"{kind.value} is malformed") from None
