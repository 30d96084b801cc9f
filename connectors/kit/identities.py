"""Who a request names, as a connector looks them up: the values of the identities of some
types (only within the scope's customer where the customer is the controller), identities
checked without quoting their value, and a customer's end user found by the identity columns
of one table (``IdentityColumns``: the subject, its rows, and the customers holding rows of
an identity for ``locate``, each by an index that starts with the customer or the identity)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Select, and_, false, or_, select, union
from sqlalchemy.orm import InstrumentedAttribute

from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import Scope
from dsr.models import Identity, IdentityType


def identity_values(identities: Iterable[Identity], *types: IdentityType) -> list[str]:
    """The distinct values of the identities of ``types``, sorted."""
    return sorted({i.value for i in identities if i.type in types})


def stored_values(identities: Iterable[Identity], kind: IdentityType) -> list[str]:
    """The values of one identity type as they are stored (emails in lower case), sorted."""
    found = identity_values(identities, kind)
    return sorted({v.lower() for v in found}) if kind is IdentityType.EMAIL else found


def customer_identity_values(scope: Scope, *types: IdentityType) -> list[str]:
    """The values to look up at the scope's customer; none without a customer account (an
    end user's records are never searched across customers)."""
    if scope.customer_account is None:
        return []
    return identity_values(scope.identities, *types)


def identities_of(kind: IdentityType, values: Iterable[str]) -> list[Identity]:
    """Identities of one type, one per value, each checked (``checked_identity``)."""
    return [checked_identity(kind, value) for value in values]


def checked_identity(kind: IdentityType, value: str, field: str | None = None) -> Identity:
    """An identity; a malformed value is refused (``ConnectorInputError``) naming its type, or
    the corrected ``field`` it was given for, never the value."""
    try:
        return Identity(type=kind, value=value)
    except ValidationError:
        named = f"corrected {field}" if field else kind.value
        raise ConnectorInputError(f"{named} is malformed") from None


@dataclass(frozen=True)
class EndUser:
    """One customer's end user, by every identity the request names that the table matches."""

    customer_account: str
    identities: tuple[Identity, ...]
    # A sweep's filter in place of the identities: the rows it names, any customer's.
    where: tuple[ColumnElement[bool], ...] = ()

    def values(self, kind: IdentityType) -> list[str]:
        return stored_values(self.identities, kind)


class IdentityColumns:
    """Where a table keeps each identity type, whose customer a row is and whether it has been
    anonymised (an anonymised row is no one's)."""

    def __init__(
        self,
        columns: Mapping[IdentityType, InstrumentedAttribute[str | None]],
        customer: InstrumentedAttribute[str],
        anonymised_at: InstrumentedAttribute[Any],
    ) -> None:
        self.columns = dict(columns)
        self.customer = customer
        self.anonymised_at = anonymised_at

    def subject(self, scope: Scope) -> EndUser | None:
        """The subject to look up; none without a customer account (never cross-customer)."""
        identities = tuple(i for i in scope.identities if i.type in self.columns)
        if scope.customer_account is None or not identities:
            return None
        return EndUser(scope.customer_account, identities)

    def where(self, subject: EndUser) -> list[ColumnElement[bool]]:
        """The subject's rows: one index lookup per identity type (customer first)."""
        if subject.where:
            return [*subject.where, self.anonymised_at.is_(None)]
        matches = [
            and_(self.customer == subject.customer_account, column.in_(values))
            for kind, column in self.columns.items()
            if (values := subject.values(kind))
        ]
        return [or_(false(), *matches), self.anonymised_at.is_(None)]

    def holders(self, scope: Scope) -> Select[Any] | None:
        """The customers holding rows of these identities, across customers: one lookup per
        identity type, each by its identity-first index; none without an identity matched."""
        lookups = [
            select(self.customer).where(column.in_(values), self.anonymised_at.is_(None))
            for kind, column in self.columns.items()
            if (values := stored_values(scope.identities, kind))
        ]
        if not lookups:
            return None
        held = union(*lookups).subquery()
        return select(held.c[0]).order_by(held.c[0])
