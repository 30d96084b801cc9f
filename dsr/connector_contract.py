"""The connector contract: what the orchestrator asks of every affiliate system.

Each operation is a Temporal activity named ``"<connector>.<operation>"`` served on the
connector's own task queue. Inputs and outputs are these pydantic models, so fields can be
added without breaking running requests. Every operation is idempotent for a request id.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Protocol

from pydantic import BaseModel, Field

from dsr.models import Correction, Identity


class Operation(StrEnum):
    DISCOVER = "discover"
    ACCESS = "access"
    ERASE = "erase"
    RECTIFY = "rectify"
    RESTRICT = "restrict"
    OBJECT = "object"
    WITHDRAW_CONSENT = "withdraw_consent"
    MARKETING_OPT_OUT = "marketing_opt_out"
    LOCATE = "locate"
    SWEEP = "sweep"


def activity_name(connector: str, operation: Operation) -> str:
    return f"{connector}.{operation.value}"


class Scope(BaseModel):
    """Whose data, for which request, as of when.

    ``customer_account`` is set for end-user data: every lookup is confined to that
    customer's records. ``as_of`` comes from the workflow clock so skipped time stays honest.
    """

    request_id: str
    identities: list[Identity]
    customer_account: str | None = None
    as_of: datetime


class CategoryHolding(BaseModel):
    """Records of one category; the countries that decide their retention (for
    communications where they ended; for customer account records the contracting entity's,
    ``ZZ`` where none is recorded) and the newest record per country."""

    category: str
    records: int
    earliest: datetime | None = None
    latest: datetime | None = None
    countries_ended: list[str] = Field(default_factory=list)
    latest_by_country: dict[str, datetime] = Field(default_factory=dict)


class Discovery(BaseModel):
    connector: str
    holdings: list[CategoryHolding] = Field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(holding.records for holding in self.holdings)


class EraseRule(BaseModel):
    """Erase (or anonymise, as the connector declares) a category's records dated before
    ``before``; ``before=None`` erases all of the category. ``countries_ended`` confines the
    rule to communications that ended in those countries (their retention differs); a rule
    without it then reaches only the countries no other rule of its category names."""

    category: str
    before: datetime | None = None
    countries_ended: list[str] | None = None


class Strategy(StrEnum):
    """How a connector anonymises one field when its category is erased."""

    DELETE_ROW = "delete_row"  # the whole row goes (column "*")
    NULL = "null"
    PSEUDONYM = "pseudonym"  # a keyed hash (HMAC under the deployment's secret)
    REDACT = "redact"  # text replaced by REDACTED
    TO_DAY = "to_day"  # a timestamp cut to its day: statistics keep the date
    MARK = "mark"  # bookkeeping: set to the time of anonymisation


REDACTED = "[redacted]"


class Treatment(BaseModel):
    """A connector's declaration: erasing ``category`` applies ``strategy`` to
    ``table.column``. Columns not declared keep their values (they feed statistics)."""

    category: str
    table: str
    column: str
    strategy: Strategy


class EraseInput(BaseModel):
    scope: Scope
    rules: list[EraseRule]


class EraseResult(BaseModel):
    connector: str
    erased: dict[str, int] = Field(default_factory=dict)
    retained: dict[str, int] = Field(default_factory=dict)
    already_done: bool = False


class SweepInput(BaseModel):
    """Anonymise, across all customers and subjects, what is past its retention: each rule's
    category dated before its ``before`` (which a sweep requires). No request is involved:
    ``sweep_id`` makes it idempotent."""

    sweep_id: str
    as_of: datetime
    rules: list[EraseRule]


class SweepResult(BaseModel):
    connector: str
    anonymised: dict[str, int] = Field(default_factory=dict)
    already_done: bool = False


class AccessInput(BaseModel):
    scope: Scope


def export_area(request_id: str) -> str:
    """Where a request's exports live in the blob store. The workflow and the package step
    refuse an ``AccessResult`` whose blob lies anywhere else (another request's, a package)."""
    return f"exports/{request_id}/"


def in_export_area(blob_ref: str | None, request_id: str) -> bool:
    """Whether an export's blob reference is in the request's own area (or there is none):
    ``blob:exports/<request_id>/`` and no empty, '.' or '..' segment after it."""
    if blob_ref is None:
        return True
    prefix = "blob:" + export_area(request_id)
    rest = blob_ref.removeprefix(prefix)
    return rest != blob_ref and all(part not in ("", ".", "..") for part in rest.split("/"))


class AccessResult(BaseModel):
    """An export travels by reference: ``blob_ref`` names a JSON Lines file in the blob
    store, one record per line with its ``category``, under the request's
    :func:`export_area`."""

    connector: str
    records: dict[str, int] = Field(default_factory=dict)
    blob_ref: str | None = None
    sha256: str | None = None  # of the blob, checked when the package is assembled
    already_done: bool = False


class RectifyInput(BaseModel):
    scope: Scope
    corrections: list[Correction]


class RectifyResult(BaseModel):
    connector: str
    updated: dict[str, int] = Field(default_factory=dict)
    unsupported_fields: list[str] = Field(default_factory=list)
    already_done: bool = False


class FlagInput(BaseModel):
    """Restrict (or lift), object, withdraw consent, opt out of marketing."""

    scope: Scope
    lift: bool = False


class Located(BaseModel):
    """Which customers hold records of these identities: for referring an end user's direct
    request to the controllers. Customer account ids only, never the records."""

    connector: str
    customers: list[str] = Field(default_factory=list)


class FlagResult(BaseModel):
    connector: str
    operation: Operation
    records: int = 0
    already_done: bool = False


def treat(category: str, table: str, changes: Iterable[tuple[str, Strategy]]) -> list[Treatment]:
    """The treatments of one category on one table, from (column, strategy) pairs."""
    return [
        Treatment(category=category, table=table, column=column, strategy=strategy)
        for column, strategy in changes
    ]


class Connector(Protocol):
    """A connector object: its name and the methods served as activities.

    Each method takes one pydantic model and returns one; it is blocking (it talks to the
    store) and is run in a thread by its activity."""

    name: ClassVar[str]
    activities: ClassVar[tuple[str, ...]]
    categories: ClassVar[tuple[str, ...]]
    treatments: ClassVar[tuple[Treatment, ...]]  # how erasing each category anonymises
