"""A customer's end user found by the identity columns of one table (phone number, email address
in lower case, channel id...): the subject a scope names, its rows, and the customers holding
rows of an identity (``locate``), each by an index that starts with the customer (or, across
customers, with the identity)."""

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


@dataclass(frozen=True)
class EndUser:
    """One customer's end user, by every identity the request names that the table matches."""

    customer_account: str
    identities: tuple[Identity, ...]
    # A sweep's filter in place of the identities: the rows it names, any customer's.
    where: tuple[ColumnElement[bool], ...] = ()

    def values(self, kind: IdentityType) -> list[str]:
        return identity_values(self.identities, kind)


def identity_values(identities: Iterable[Identity], kind: IdentityType) -> list[str]:
    """The values of one identity type to look up, as they are stored (emails lower case)."""
    found = {i.value for i in identities if i.type is kind}
    return sorted(v.lower() for v in found) if kind is IdentityType.EMAIL else sorted(found)


def corrected_identity(field: str, kind: IdentityType, value: str) -> Identity:
    """A corrected address or number as an identity; an error names the field, never the
    value."""
    try:
        return Identity(type=kind, value=value)
    except ValidationError:
        raise ConnectorInputError(f"corrected {field} is malformed") from None


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
            if (values := identity_values(scope.identities, kind))
        ]
        if not lookups:
            return None
        held = union(*lookups).subquery()
        return select(held.c[0]).order_by(held.c[0])
