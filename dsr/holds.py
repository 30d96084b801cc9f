"""Legal holds: data a court case or a government disclosure request says to keep.

A hold is placed by an officer or counsel on a scope: a subject's identity (stored only as a
keyed hash), a customer account, a product, a data category, or a combination; every field
given must match. While it is active, the hold check of every erasure keeps what it covers
"until released"; releasing it (with a reason) lets the deferred erasure take what only that
hold was keeping.

The reasons an officer gives (on placing and on releasing) may name a person: they are stored
sealed as officers' notes are (``dsr.notes``), bound to the hold and the column, and the ledger
keeps only their keyed hashes. Reasons stored before that are shown as they are.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, StringConstraints, model_validator
from sqlalchemy import ColumnElement, Date, Engine, String, Text, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from dsr import ledger, notes
from dsr.models import Identity
from dsr.orm import Base, UtcDateTime
from dsr.serverkeys import ServerKeys

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]


class HoldKind(StrEnum):
    LITIGATION = "litigation"
    GOVERNMENT = "government"  # a government disclosure request


class LegalHoldRecord(Base):
    __tablename__ = "legal_holds"

    hold_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    identity_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    customer_account: Mapped[str | None] = mapped_column(String(64))
    product: Mapped[str | None] = mapped_column(String(80))
    category: Mapped[str | None] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(80))
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    until: Mapped[date | None] = mapped_column(Date)
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    released_by: Mapped[str | None] = mapped_column(String(80))
    release_reason: Mapped[str | None] = mapped_column(Text)


class HoldSpec(BaseModel):
    """What an officer asks to hold. The identity is hashed before it is stored."""

    model_config = {"hide_input_in_errors": True}

    kind: HoldKind
    reason: Reason
    placed_by: Name
    identity: Identity | None = None
    customer_account: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = (
        None
    )
    product: Name | None = None
    category: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,79}$")] | None = None
    until: date | None = None

    @model_validator(mode="after")
    def _scoped(self) -> HoldSpec:
        if not (self.identity or self.customer_account or self.product or self.category):
            raise ValueError(
                "a hold needs a scope: give an identity, a customer account, a product or a "
                "category (or several)"
            )
        return self


SCOPE = {"identity_hash", "customer_account", "product", "category"}
TABLE = LegalHoldRecord.__tablename__


class Hold(BaseModel):
    """An active hold as the hold check sees it (no identity, only its keyed hash)."""

    hold_id: str
    kind: HoldKind
    identity_hash: str | None = None
    customer_account: str | None = None
    product: str | None = None
    category: str | None = None
    until: date | None = None

    def covers(
        self, subject_hashes: set[str], customers: set[str], products: list[str], category: str
    ) -> bool:
        """Whether the hold keeps this category of this connector for this subject, whose
        data is held for ``customers`` (its controller, or its own customer account)."""
        return (
            (self.identity_hash is None or self.identity_hash in subject_hashes)
            and (self.customer_account is None or self.customer_account in customers)
            and (self.product is None or self.product in products)
            and (self.category is None or self.category == category)
        )


class HoldListing(Hold):
    """A hold as an officer reads it (``hold list``): its reasons opened, or UNREADABLE."""

    reason: str
    placed_by: str
    placed_at: datetime
    released_at: datetime | None = None
    released_by: str | None = None
    release_reason: str | None = None


class HoldError(ValueError):
    """A hold that cannot be placed or released; the message says why and how to fix it."""


def place_hold(engine: Engine, secret: bytes, spec: HoldSpec, at: datetime) -> Hold:
    if spec.until is not None and spec.until <= at.date():
        raise HoldError("--until must be a date after today, or left out for an open hold")
    keys = notes.NoteKeys.from_secret(secret)
    record = _record(spec, f"HOLD-{secrets.token_hex(4).upper()}", secret, keys, at)
    with Session(engine) as session, session.begin():
        session.add(record)
        hold = _hold(record)
        detail = {
            "hold_id": hold.hold_id,
            "kind": hold.kind.value,
            "until": str(hold.until),
            "scope": hold.model_dump(include=SCOPE, exclude_none=True, exclude={"identity_hash"}),
            "subject": hold.identity_hash is not None,
            "reason": notes.note_hash(keys, spec.reason),
        }
        ledger.append(
            session, "hold_placed", spec.placed_by, at, None, detail, ledger.ledger_key(secret)
        )
        return hold


def _record(
    spec: HoldSpec, hold_id: str, secret: bytes, keys: notes.NoteKeys, at: datetime
) -> LegalHoldRecord:
    """The row for a new hold: the identity as its keyed hash, the reason sealed to the row."""
    return LegalHoldRecord(
        hold_id=hold_id,
        kind=spec.kind.value,
        identity_hash=(ServerKeys(secret).identities.tag(spec.identity.normalised)
                       if spec.identity else None),
        customer_account=spec.customer_account,
        product=spec.product,
        category=spec.category,
        reason=notes.sealed_text(keys, TABLE, hold_id, "reason", spec.reason),
        placed_by=spec.placed_by,
        placed_at=at,
        until=spec.until,
    )


def release_hold(
    engine: Engine, secret: bytes, hold_id: str, officer: str, reason: str, at: datetime
) -> Hold:
    reason = reason.strip()
    if len(reason) < 3:
        raise HoldError("releasing a hold needs a reason: give --reason")
    keys = notes.NoteKeys.from_secret(secret)
    with Session(engine) as session, session.begin():
        record = session.get(LegalHoldRecord, hold_id)
        if record is None:
            raise HoldError(f"no hold {hold_id}: see `hold list` for the active holds")
        if record.released_at is not None:
            raise HoldError(f"hold {hold_id} was already released")
        record.released_at, record.released_by = at, officer
        record.release_reason = notes.sealed_text(keys, TABLE, hold_id, "release_reason", reason)
        ledger.append(
            session,
            "hold_released",
            officer,
            at,
            None,
            {"hold_id": hold_id, "reason": notes.note_hash(keys, reason)},
            ledger.ledger_key(secret),
        )
        return _hold(record)


def active_holds(engine: Engine, at: datetime) -> list[Hold]:
    """Holds not released and not past their ``until`` date."""
    statement = select(LegalHoldRecord).where(*_active(at)).order_by(LegalHoldRecord.placed_at)
    with Session(engine) as session:
        return [_hold(record) for record in session.scalars(statement)]


def list_holds(
    engine: Engine, secret: bytes, at: datetime, everything: bool = False,
    previous: Sequence[bytes] = (),
) -> list[HoldListing]:
    """The active holds (with ``everything``, released and ended ones too) as an officer reads
    them: their reasons opened."""
    statement = select(LegalHoldRecord).order_by(LegalHoldRecord.placed_at)
    if not everything:
        statement = statement.where(*_active(at))
    keys = notes.NoteKeys.from_secret(secret, previous)
    with Session(engine) as session:
        return [_listing(record, keys) for record in session.scalars(statement)]


def _active(at: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        LegalHoldRecord.released_at.is_(None),
        or_(LegalHoldRecord.until.is_(None), LegalHoldRecord.until >= at.date()),
    )


def _hold(record: LegalHoldRecord) -> Hold:
    return Hold(
        hold_id=record.hold_id,
        kind=HoldKind(record.kind),
        identity_hash=record.identity_hash,
        customer_account=record.customer_account,
        product=record.product,
        category=record.category,
        until=record.until,
    )


def _listing(record: LegalHoldRecord, keys: notes.NoteKeys) -> HoldListing:
    def opened(column: str, stored: str) -> str:
        return notes.opened_text(keys, TABLE, record.hold_id, column, stored)

    release = record.release_reason
    return HoldListing(
        **_hold(record).model_dump(),
        reason=opened("reason", record.reason),
        placed_by=record.placed_by,
        placed_at=record.placed_at,
        released_at=record.released_at,
        released_by=record.released_by,
        release_reason=None if release is None else opened("release_reason", release),
    )
