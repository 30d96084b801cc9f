"""Numbers connector: the customers' own phone numbers (local numbers, short codes and numbers
bought through the Programmable Numbers API).

Numbers holds no end-user personal data of its own (privacy statement, the end-user data per
product: "none"); the end users' data used with a number lives in the SMS and Voice
connectors. So, for any subject:
- discovery returns no holdings (an empty list): there is no category to report;
- access returns an empty export (no blob);
- erasure and restriction change nothing and report zero.

The store still exists (the numbers each customer has provisioned) so that the claim is
checked against real data, not assumed: a number here belongs to a customer, never to an end
user, and no lookup by an end user's identity is ever made.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import CheckConstraint, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from connectors.kit.connector import CutoffConnector
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import (
    AccessInput,
    AccessResult,
    Discovery,
    EraseResult,
    FlagInput,
    Scope,
    SweepInput,
    SweepResult,
    Treatment,
)

CATEGORIES: tuple[str, ...] = ()  # no end-user personal data of its own
KINDS = ("local", "short_code", "programmable")


class NumbersBase(DeclarativeBase):
    pass


class PhoneNumber(NumbersBase):
    """A number provisioned to a customer (the customer's, not an end user's)."""

    __tablename__ = "numbers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(20))  # E.164, or the short code's digits
    kind: Mapped[str] = mapped_column(String(16))
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166 alpha-2
    provisioned_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_numbers_customer", "customer_account", "number"),
        CheckConstraint("kind IN ('local', 'short_code', 'programmable')", name="ck_numbers_kind"),
    )


class NumbersOperationLog(OperationLogMixin, NumbersBase):
    pass


# --- the connector -------------------------------------------------------------------------


class NumbersConnector(CutoffConnector[str]):
    name: ClassVar[str] = "numbers"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = ()  # nothing of a subject to anonymise
    activities: ClassVar[tuple[str, ...]] = (
        "discover",
        "access",
        "erase",
        "restrict",
        "sweep",
    )

    schema = NumbersBase
    operation_log = NumbersOperationLog

    def subject(self, scope: Scope) -> str | None:
        """The customer account: erase and restrict are recorded for any subject of one."""
        return scope.customer_account

    def discover(self, scope: Scope) -> Discovery:
        """No holdings, for any subject: Numbers holds no end-user personal data of its own
        (look at the SMS and Voice connectors for the data used with a number)."""
        return Discovery(connector=self.name, holdings=[])

    def access(self, call: AccessInput) -> AccessResult:
        """An empty export: there is nothing of the subject's to export (no blob)."""
        return AccessResult(connector=self.name, records={}, blob_ref=None)

    def erase_now(
        self, session: Session, subject: str, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        """Nothing to erase; recorded, so a retry says ``already_done`` like any connector."""
        return EraseResult(connector=self.name)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """Nothing past its retention here; recorded, so a retry says ``already_done``."""
        return SweepResult(connector=self.name)

    def restrict_now(self, session: Session, subject: str, call: FlagInput) -> int:
        """Nothing to restrict: zero records, recorded like any connector's restriction."""
        return 0
