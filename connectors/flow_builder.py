"""Flow Builder connector: the invocations of the automation flows a customer builds, each
started by a trigger on a channel for one end user.

The customer is the controller of its end users' data and the group its processor, so every
lookup is confined to one customer account: without ``scope.customer_account`` the connector
finds nothing, and it never searches across customers. An invocation names its end user by
email address (stored and matched in lower case), phone number or channel id; those
identifiers of the invocation payload are kept in their own indexed columns, and ``payload``
keeps the rest of what the trigger carried. Each step's name and status are kept in
``step_results`` and what it produced, apart, in ``step_outputs``.

Categories:
- ``invocation_identifiers``: the email address, phone number or channel id the invocation was
  made for;
- ``channel_data``: what the channel carried and the flow produced (the trigger's payload,
  such as message text and profile name, and each step's output).

Erasure, per category:
- ``channel_data``: the payload and the step outputs are cleared; each step's name and status
  stay (the customer's flow statistics);
- ``invocation_identifiers``: the invocation is cut loose from the person. Its identifiers are
  cleared and its channel data goes too (an invocation that can no longer be found for its
  subject must not keep what could identify them). Flow, time, trigger channel and step
  outcomes stay; the invocation gets ``anonymised_at``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    CursorResult,
    Index,
    Integer,
    Select,
    String,
    and_,
    false,
    func,
    or_,
    select,
    true,
    union,
    update,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, Session, mapped_column

from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.cutoffs import id_chunks
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from connectors.kit.restrictions import RestrictionMixin, is_restricted
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    FlagInput,
    Scope,
    Strategy,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.models import Identity, IdentityType

INVOCATION_IDENTIFIERS = "invocation_identifiers"
CHANNEL_DATA = "channel_data"
CATEGORIES = (INVOCATION_IDENTIFIERS, CHANNEL_DATA)
IDENTIFIER_COLUMNS = ("contact_email", "contact_phone", "contact_channel_id")
CHANNEL_COLUMNS = ("payload", "step_outputs")
TREATMENTS = tuple(
    Treatment(category=category, table="invocations", column=column, strategy=strategy)
    for category, treatments in (
        (
            INVOCATION_IDENTIFIERS,
            (
                *((column, Strategy.NULL) for column in IDENTIFIER_COLUMNS + CHANNEL_COLUMNS),
                ("anonymised_at", Strategy.MARK),
            ),
        ),
        (CHANNEL_DATA, tuple((column, Strategy.NULL) for column in CHANNEL_COLUMNS)),
    )
    for column, strategy in treatments
)


class FlowBuilderBase(DeclarativeBase):
    pass


class Invocation(FlowBuilderBase):
    __tablename__ = "invocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    flow_id: Mapped[str] = mapped_column(String(64))
    invoked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    trigger_channel: Mapped[str] = mapped_column(String(16))
    contact_email: Mapped[str | None] = mapped_column(String(254))  # lower case
    contact_phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    contact_channel_id: Mapped[str | None] = mapped_column(String(170))  # "whatsapp:..."
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    step_results: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # each step and status
    # What each step produced, in the order of ``step_results`` (None: no output).
    step_outputs: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_invocations_email", "customer_account", "contact_email", "invoked_at"),
        Index("ix_invocations_phone", "customer_account", "contact_phone", "invoked_at"),
        Index("ix_invocations_channel_id", "customer_account", "contact_channel_id"),
        # locating the controllers of an identity, across customers
        Index("ix_invocations_locate_email", "contact_email"),
        Index("ix_invocations_locate_phone", "contact_phone"),
        Index("ix_invocations_locate_channel_id", "contact_channel_id"),
    )


class Restriction(RestrictionMixin, FlowBuilderBase):
    pass


class FlowBuilderOperationLog(OperationLogMixin, FlowBuilderBase):
    pass


# --- the subject ---------------------------------------------------------------------------

IDENTITY_COLUMNS: dict[IdentityType, InstrumentedAttribute[str | None]] = {
    IdentityType.EMAIL: Invocation.contact_email,
    IdentityType.PHONE: Invocation.contact_phone,
    IdentityType.CHANNEL_ID: Invocation.contact_channel_id,
}


@dataclass(frozen=True)
class Subject:
    """One customer's end user, by every identity the request names that Flow Builder matches."""

    customer_account: str
    identities: tuple[Identity, ...]

    def values(self, kind: IdentityType) -> list[str]:
        return identity_values(self.identities, kind)


def identity_values(identities: Iterable[Identity], kind: IdentityType) -> list[str]:
    """The values of one identity type to look up, as Flow Builder stores them (emails in
    lower case)."""
    found = {i.value for i in identities if i.type is kind}
    return sorted(v.lower() for v in found) if kind is IdentityType.EMAIL else sorted(found)


def locate_holders(scope: Scope) -> Select[str] | None:
    """The customers holding invocations of these identities, across customers: one lookup per
    identity type, each by its identity-first ``ix_invocations_locate_*`` index; none without an
    identity Flow Builder matches."""
    lookups = [
        select(Invocation.customer_account).where(
            column.in_(values), Invocation.anonymised_at.is_(None)
        )
        for kind, column in IDENTITY_COLUMNS.items()
        if (values := identity_values(scope.identities, kind))
    ]
    if not lookups:
        return None
    held = union(*lookups).subquery()
    return select(held.c.customer_account).order_by(held.c.customer_account)


def subject_of(scope: Scope) -> Subject | None:
    """The subject to look up; none without a customer account (never cross-customer)."""
    identities = tuple(i for i in scope.identities if i.type in IDENTITY_COLUMNS)
    if scope.customer_account is None or not identities:
        return None
    return Subject(scope.customer_account, identities)


def subject_where(subject: Subject) -> list[ColumnElement[bool]]:
    """The subject's invocations: one index lookup per identity type (customer first)."""
    matches = [
        and_(Invocation.customer_account == subject.customer_account, column.in_(values))
        for kind, column in IDENTITY_COLUMNS.items()
        if (values := subject.values(kind))
    ]
    return [or_(false(), *matches), Invocation.anonymised_at.is_(None)]


def subject_invocations(subject: Subject) -> Select[Invocation]:
    """The subject lookup every operation uses (served by the ``ix_invocations_*`` indexes)."""
    return select(Invocation).where(*subject_where(subject))


def holds(category: str) -> ColumnElement[bool]:
    """Whether a (not anonymised) invocation still holds data of ``category``."""
    if category == CHANNEL_DATA:
        return or_(Invocation.payload.is_not(None), Invocation.step_outputs.is_not(None))
    return true()


# --- the connector -------------------------------------------------------------------------


class FlowBuilderConnector(CutoffConnector[Subject]):
    name: ClassVar[str] = "flow_builder"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = (
        "discover",
        "access",
        "erase",
        "restrict",
        "locate",
        "sweep",
    )

    schema = FlowBuilderBase
    operation_log = FlowBuilderOperationLog
    restriction_model = Restriction

    subject = staticmethod(subject_of)
    holders = staticmethod(locate_holders)

    def holding(self, session: Session, subject: Subject, category: str) -> CategoryHolding | None:
        return _holding(session, subject_where(subject), category)

    def export_chunks(self, session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
        return _export_chunks(session, subject_where(subject))

    def is_restricted(self, customer_account: str, identity: Identity) -> bool:
        """Whether flows may no longer process this end user's data for this customer."""
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- inside the operation's transaction ------------------------------------------------

    def erase_now(
        self, session: Session, subject: Subject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        return self._erase(session, subject_where(subject), cutoffs, scope)

    def _erase(
        self,
        session: Session,
        where: list[ColumnElement[bool]],
        cutoffs: dict[str, datetime],
        scope: Scope,
    ) -> EraseResult:
        erased: dict[str, int] = {}
        channel = _widest(cutoffs, CATEGORIES)
        cleared = _clear_channel_data(session, where, channel) if channel else 0
        if CHANNEL_DATA in cutoffs or cleared:
            erased[CHANNEL_DATA] = cleared
        link = cutoffs.get(INVOCATION_IDENTIFIERS)
        if link is not None:
            erased[INVOCATION_IDENTIFIERS] = _unlink(session, where, link, scope.as_of)
        retained = {category: _count(session, where, category) for category in cutoffs}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        scope = sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        if cutoffs:
            pending = [
                Invocation.anonymised_at.is_(None),
                Invocation.invoked_at < max(cutoffs.values()),
            ]
            for ids in id_chunks(session, Invocation.id, pending):
                where: list[ColumnElement[bool]] = [
                    Invocation.id.in_(ids),
                    Invocation.anonymised_at.is_(None),
                ]
                anonymised.update(self._erase(session, where, cutoffs, scope).erased)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def restrict_now(self, session: Session, subject: Subject, call: FlagInput) -> int:
        customer_account = subject.customer_account
        self.restrictions.place_or_lift(session, customer_account, call, subject.identities)
        return _count(session, subject_where(subject), INVOCATION_IDENTIFIERS)


# --- queries -------------------------------------------------------------------------------


def _holding(
    session: Session, where: list[ColumnElement[bool]], category: str
) -> CategoryHolding | None:
    count, earliest, latest = session.execute(
        select(
            func.count(), func.min(Invocation.invoked_at), func.max(Invocation.invoked_at)
        ).where(*where, holds(category))
    ).one()
    if not count:
        return None
    return CategoryHolding(category=category, records=count, earliest=earliest, latest=latest)


def _count(session: Session, where: list[ColumnElement[bool]], category: str) -> int:
    statement = select(func.count()).select_from(Invocation).where(*where, holds(category))
    return session.scalar(statement) or 0


def _clear_channel_data(
    session: Session, where: list[ColumnElement[bool]], before: datetime
) -> int:
    statement = (
        update(Invocation)
        .where(*where, Invocation.invoked_at < before, holds(CHANNEL_DATA))
        .values(dict.fromkeys(CHANNEL_COLUMNS))
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _unlink(
    session: Session, where: list[ColumnElement[bool]], before: datetime, as_of: datetime
) -> int:
    rows = session.scalars(select(Invocation.id).where(*where, Invocation.invoked_at < before))
    changes = [
        {"id": number, **dict.fromkeys(IDENTIFIER_COLUMNS), "anonymised_at": as_of}
        for number in rows
    ]
    if changes:
        session.execute(update(Invocation), changes)
    return len(changes)


def _export_chunks(
    session: Session, where: list[ColumnElement[bool]]
) -> Iterator[list[dict[str, Any]]]:
    statement = (
        select(Invocation)
        .where(*where)
        .order_by(Invocation.invoked_at, Invocation.id)
        .execution_options(yield_per=EXPORT_CHUNK_ROWS)
    )
    for partition in session.scalars(statement).partitions():
        yield [record for invocation in partition for record in _records(invocation)]


def _records(invocation: Invocation) -> Iterator[dict[str, Any]]:
    """One export record per category the invocation holds, joined by ``invocation_id``."""
    ids = {"invocation_id": invocation.id, "customer_account": invocation.customer_account}
    yield {
        "category": INVOCATION_IDENTIFIERS,
        **ids,
        "flow_id": invocation.flow_id,
        "invoked_at": invocation.invoked_at,
        "trigger_channel": invocation.trigger_channel,
        "email": invocation.contact_email,
        "phone_number": invocation.contact_phone,
        "channel_id": invocation.contact_channel_id,
    }
    if invocation.payload is not None or invocation.step_outputs is not None:
        yield {
            "category": CHANNEL_DATA,
            **ids,
            "payload": invocation.payload,
            "step_results": _with_outputs(invocation.step_results, invocation.step_outputs),
        }


def _with_outputs(steps: list[dict[str, Any]], outputs: list[Any] | None) -> list[dict[str, Any]]:
    """Each step with what it produced, as the flow ran it."""
    padded = [*(outputs or []), *([None] * len(steps))]
    return [
        step if out is None else {**step, "output": out}
        for step, out in zip(steps, padded, strict=False)
    ]


# --- rules ---------------------------------------------------------------------------------


def _widest(cutoffs: dict[str, datetime], categories: Iterable[str]) -> datetime | None:
    return max((cutoffs[c] for c in categories if c in cutoffs), default=None)
