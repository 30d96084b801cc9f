"""Omnichannel Widget connector: the chat widget sessions end users start on a customer's
website, held for the customers that embed the widget.

The customer is the controller of its end users' data and the group its processor, so every
lookup is confined to one customer account: without ``scope.customer_account`` the connector
finds nothing, and it never searches across customers. A session is found by the email address
(case-insensitively), phone number or channel id the visitor gave.

Both categories live in one row, a session, so erasing either cuts the session loose from the
person (as SMS does with its number and traffic data): email, phone, channel id, preferred
channel, IP and the pages visited are cleared, ``started_at`` is cut to the day and the row
gets ``anonymised_at``. Day, duration and page count stay, for the customer's statistics.

Restriction is by keyed hash of each identity; a rectified address or number stays restricted
(the corrected identity is restricted too).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar, cast

from pydantic import ValidationError
from sqlalchemy import ColumnElement, CursorResult, func, select, update
from sqlalchemy.orm import Session

from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.cutoffs import id_chunks
from connectors.kit.errors import ConnectorInputError
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from connectors.kit.restrictions import is_restricted
from connectors.widget_store import (
    CATEGORIES,
    CONTACT_IDENTIFIERS,
    IDENTIFIER_FIELDS,
    IDENTITY_FIELDS,
    PREFERRED_CHANNELS,
    RECTIFIABLE,
    TRAFFIC_DATA,
    TREATMENTS,
    Restriction,
    WidgetBase,
    WidgetOperationLog,
    WidgetSession,
    WidgetSubject,
    locate_holders,
    session_where,
    widget_subject,
)
from dsr.connector_contract import (
    CategoryHolding,
    Discovery,
    EraseResult,
    FlagInput,
    Scope,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.models import Identity

# --- the connector -------------------------------------------------------------------------


class WidgetConnector(CutoffConnector[WidgetSubject]):
    name: ClassVar[str] = "widget"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = (
        "discover",
        "access",
        "erase",
        "rectify",
        "restrict",
        "locate",
        "sweep",
    )

    schema = WidgetBase
    operation_log = WidgetOperationLog
    restriction_model = Restriction
    correctable = RECTIFIABLE

    subject = staticmethod(widget_subject)
    holders = staticmethod(locate_holders)

    def export_chunks(
        self, session: Session, subject: WidgetSubject
    ) -> Iterator[list[dict[str, Any]]]:
        return _export_chunks(session, subject)

    def corrected(self, field: str, value: str) -> str:
        return _corrected(field, value)

    def discover(self, scope: Scope) -> Discovery:
        discovery = Discovery(connector=self.name)
        subject = widget_subject(scope)
        if subject is None:
            return discovery
        with self.store.reading() as session:
            count, earliest, latest = session.execute(
                select(
                    func.count(),
                    func.min(WidgetSession.started_at),
                    func.max(WidgetSession.started_at),
                ).where(*session_where(subject))
            ).one()
        if count:
            discovery.holdings = [
                CategoryHolding(category=c, records=count, earliest=earliest, latest=latest)
                for c in CATEGORIES
            ]
        return discovery

    def is_restricted(self, customer_account: str, identity: Identity) -> bool:
        """Whether processing of this end user's widget data is restricted for this customer."""
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- erase, rectify and restrict, inside the operation's transaction -------------------

    def erase_now(
        self, session: Session, subject: WidgetSubject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        as_of = scope.as_of
        before = max(cutoffs.values(), default=None)
        unlinked = _unlink(session, subject, before, as_of) if before is not None else 0
        erased = dict.fromkeys(CATEGORIES, unlinked) if cutoffs else {}
        retained = {category: _count(session, subject) for category in cutoffs}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The erase of every session started before the widest cutoff, a chunk at a time."""
        scope = sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        if cutoffs:
            pending: list[ColumnElement[bool]] = [
                WidgetSession.anonymised_at.is_(None),
                WidgetSession.started_at < max(cutoffs.values()),
            ]
            for ids in id_chunks(session, WidgetSession.id, pending):
                chunk = WidgetSubject("", (), (WidgetSession.id.in_(ids),))
                anonymised.update(self.erase_now(session, chunk, cutoffs, scope).erased)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def rectify_now(
        self, session: Session, subject: WidgetSubject, values: dict[str, str], scope: Scope
    ) -> dict[str, int]:
        """Correct the subject's sessions; a corrected address or number stays restricted if
        the subject was."""
        updated = _correct(session, subject, values)
        for name, value in values.items():
            if name in IDENTITY_FIELDS:
                corrected = _corrected_identity(name, value)
                self.restrictions.carry_over(session, subject.customer_account, scope, corrected)
        return updated

    def restrict_now(self, session: Session, subject: WidgetSubject, call: FlagInput) -> int:
        customer = subject.customer_account
        self.restrictions.place_or_lift(session, customer, call, subject.identities)
        return _count(session, subject)


# --- queries -------------------------------------------------------------------------------


def _count(session: Session, subject: WidgetSubject) -> int:
    statement = select(func.count()).select_from(WidgetSession).where(*session_where(subject))
    return session.scalar(statement) or 0


def _changed(session: Session, statement: Any) -> int:
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _unlink(session: Session, subject: WidgetSubject, before: datetime, as_of: datetime) -> int:
    rows = session.execute(
        select(WidgetSession.id, WidgetSession.started_at).where(
            *session_where(subject), WidgetSession.started_at < before
        )
    ).all()
    changes = [
        {
            "id": row.id,
            **dict.fromkeys(IDENTIFIER_FIELDS),
            "pages": None,
            "started_at": row.started_at.replace(hour=0, minute=0, second=0, microsecond=0),
            "anonymised_at": as_of,
        }
        for row in rows
    ]
    if changes:
        session.execute(update(WidgetSession), changes)
    return len(changes)


def _correct(session: Session, subject: WidgetSubject, values: dict[str, str]) -> dict[str, int]:
    """Correct each field where the subject's sessions hold it (they are found first, so that
    correcting an identity does not lose them)."""
    ids = list(session.scalars(select(WidgetSession.id).where(*session_where(subject))))
    updated = {}
    for name, value in values.items():
        column = getattr(WidgetSession, name)
        statement = (
            update(WidgetSession)
            .where(WidgetSession.id.in_(ids), column.is_not(None))
            .values({name: value})
            .execution_options(synchronize_session=False)
        )
        updated[name] = _changed(session, statement)
    return updated


# --- export --------------------------------------------------------------------------------


def _export_chunks(session: Session, subject: WidgetSubject) -> Iterator[list[dict[str, Any]]]:
    statement = (
        select(WidgetSession)
        .where(*session_where(subject))
        .order_by(WidgetSession.started_at, WidgetSession.id)
        .execution_options(yield_per=EXPORT_CHUNK_ROWS)
    )
    for partition in session.scalars(statement).partitions():
        yield [record for row in partition for record in _records(row)]


def _records(row: WidgetSession) -> Iterator[dict[str, Any]]:
    """One export record per category, joined by ``session_id``."""
    ids = {"session_id": row.id, "customer_account": row.customer_account}
    yield {
        "category": CONTACT_IDENTIFIERS,
        **ids,
        **{name: getattr(row, name) for name in IDENTIFIER_FIELDS},
    }
    yield {
        "category": TRAFFIC_DATA,
        **ids,
        "started_at": row.started_at,
        "duration_seconds": row.duration_seconds,
        "page_count": row.page_count,
        "pages": row.pages,
    }


# --- rules ---------------------------------------------------------------------------------


def _corrected(field: str, value: str) -> str:
    """A corrected value; identities and the preferred channel are checked. An error names
    the field."""
    if field in IDENTITY_FIELDS:
        _corrected_identity(field, value)
    if field == "preferred_channel" and value not in PREFERRED_CHANNELS:
        raise ConnectorInputError(
            f"corrected preferred_channel must be one of: {', '.join(PREFERRED_CHANNELS)}"
        )
    return value


def _corrected_identity(name: str, value: str) -> Identity:
    """A corrected address or number as an identity; an error names the field, never the
    value."""
    try:
        return Identity(type=IDENTITY_FIELDS[name], value=value)
    except ValidationError:
        raise ConnectorInputError(f"corrected {name} is malformed") from None
