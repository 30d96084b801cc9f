"""SMS connector: end users' messages, held for the customers that sent or received them.

The customer is the controller of its end users' data and the group its processor, so every
lookup is confined to one customer account: without ``scope.customer_account`` the connector
finds nothing, and it never searches across customers.

Erasure anonymises rather than deletes, per category:
- ``message_content``: the content is cleared;
- ``location_data``: cell id, latitude and longitude are cleared;
- ``phone_number`` and ``traffic_data``: the record is cut loose from the person. The number is
  replaced by a keyed-hash pseudonym (statistics still count distinct numbers), the operator
  and route are cleared, ``sent_at`` is cut to the day, and content and location go too (a
  record that can no longer be found for its subject must not keep what could identify them).
  Day, direction, status, segments, sender and country ended stay, for statistics and the
  records of the customer. The row gets ``anonymised_at`` and is no longer the subject's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    CursorResult,
    Float,
    Index,
    Integer,
    Select,
    String,
    Text,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from connectors.kit.connector import SubjectConnector, sweep_scope
from connectors.kit.cutoffs import country_conditions, id_chunks
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from connectors.kit.restrictions import RestrictionMixin, is_restricted
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    EraseRule,
    FlagInput,
    Scope,
    Strategy,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.hashing import keyed_hash
from dsr.models import Identity, IdentityType

PHONE_NUMBER = "phone_number"
TRAFFIC_DATA = "traffic_data"
LOCATION_DATA = "location_data"
MESSAGE_CONTENT = "message_content"
CATEGORIES = (PHONE_NUMBER, TRAFFIC_DATA, LOCATION_DATA, MESSAGE_CONTENT)
# Erasing either cuts the record loose from the person (see the module docstring).
LINK_CATEGORIES = frozenset({PHONE_NUMBER, TRAFFIC_DATA})
CONTENT_COLUMNS = ("content",)
LOCATION_COLUMNS = ("cell_id", "latitude", "longitude")
UNLINK = (
    ("end_user_phone", Strategy.PSEUDONYM),
    ("sent_at", Strategy.TO_DAY),
    *((column, Strategy.NULL) for column in ("operator", "route")),
    *((column, Strategy.NULL) for column in CONTENT_COLUMNS + LOCATION_COLUMNS),
    ("anonymised_at", Strategy.MARK),
)
TREATMENTS = (
    *(
        Treatment(category=category, table="messages", column=column, strategy=strategy)
        for category in sorted(LINK_CATEGORIES)
        for column, strategy in UNLINK
    ),
    *(
        Treatment(category=MESSAGE_CONTENT, table="messages", column=column, strategy=Strategy.NULL)
        for column in CONTENT_COLUMNS
    ),
    *(
        Treatment(category=LOCATION_DATA, table="messages", column=column, strategy=Strategy.NULL)
        for column in LOCATION_COLUMNS
    ),
)


class SmsBase(DeclarativeBase):
    pass


class Message(SmsBase):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    end_user_phone: Mapped[str] = mapped_column(String(64))  # E.164, or pseudonym once anonymised
    direction: Mapped[str] = mapped_column(String(8))
    sender_id: Mapped[str] = mapped_column(String(20))  # the customer's number or alphanumeric
    content: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16))
    operator: Mapped[str | None] = mapped_column(String(64))
    route: Mapped[str | None] = mapped_column(String(64))
    segments: Mapped[int] = mapped_column(Integer)
    country_ended: Mapped[str] = mapped_column(String(2))  # ISO 3166 alpha-2
    cell_id: Mapped[str | None] = mapped_column(String(64))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_messages_subject", "customer_account", "end_user_phone", "sent_at"),
        Index("ix_messages_phone", "end_user_phone"),  # locating the controllers of a number
        CheckConstraint("direction IN ('inbound', 'outbound')", name="ck_messages_direction"),
    )


class Restriction(RestrictionMixin, SmsBase):
    pass


class SmsOperationLog(OperationLogMixin, SmsBase):
    pass


# --- the subject ---------------------------------------------------------------------------

Where = list[ColumnElement[bool]]  # the subject's messages (or a chunk of a sweep)
Reached = dict[str, ColumnElement[bool]]  # per category, the messages erase rules reach


def subject_phones(scope: Scope) -> list[str]:
    """The phone numbers to look up; none without a customer account (never cross-customer)."""
    if scope.customer_account is None:
        return []
    return sorted({i.value for i in scope.identities if i.type is IdentityType.PHONE})


def subject_where(customer_account: str, phones: Iterable[str]) -> list[ColumnElement[bool]]:
    return [
        Message.customer_account == customer_account,
        Message.end_user_phone.in_(list(phones)),
        Message.anonymised_at.is_(None),
    ]


def subject_messages(customer_account: str, phones: Iterable[str]) -> Select[Message]:
    """The subject lookup every operation uses (served by ``ix_messages_subject``)."""
    return select(Message).where(*subject_where(customer_account, phones))


def holds(category: str) -> ColumnElement[bool]:
    """Whether a (not anonymised) message still holds data of ``category``."""
    if category == LOCATION_DATA:
        return or_(
            Message.cell_id.is_not(None),
            Message.latitude.is_not(None),
            Message.longitude.is_not(None),
        )
    if category == MESSAGE_CONTENT:
        return Message.content.is_not(None)
    return true()


# --- the connector -------------------------------------------------------------------------


class SmsConnector(SubjectConnector[Where, Reached]):
    name: ClassVar[str] = "sms"
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
    schema = SmsBase
    operation_log = SmsOperationLog
    restriction_model = Restriction
    sweeps_countries = True

    def subject(self, scope: Scope) -> Where | None:
        phones = subject_phones(scope)
        if not phones or scope.customer_account is None:
            return None
        return subject_where(scope.customer_account, phones)

    def holding(self, session: Session, subject: Where, category: str) -> CategoryHolding | None:
        return _holding(session, subject, category)

    def export_chunks(self, session: Session, subject: Where) -> Iterator[list[dict[str, Any]]]:
        return _export_chunks(session, subject)

    def reach(self, rules: list[EraseRule]) -> Reached:
        return _reached(rules)

    def holders(self, scope: Scope) -> Select[str]:
        """The customers holding messages of these numbers (an end user wrote to us directly:
        each of them is the controller to refer the request to)."""
        phones = sorted({i.value for i in scope.identities if i.type is IdentityType.PHONE})
        return (
            select(Message.customer_account)
            .where(Message.end_user_phone.in_(phones))
            .distinct()
            .order_by(Message.customer_account)
        )

    def is_restricted(self, customer_account: str, phone: str) -> bool:
        """Whether processing of this end user's messages is restricted for this customer."""
        identity = Identity(type=IdentityType.PHONE, value=phone)
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- erase, sweep and restrict, inside the operation's transaction ---------------------

    def erase_now(
        self, session: Session, where: Where, reached: Reached, scope: Scope
    ) -> EraseResult:
        erased: dict[str, int] = {}
        for category, columns in (
            (MESSAGE_CONTENT, CONTENT_COLUMNS),
            (LOCATION_DATA, LOCATION_COLUMNS),
        ):
            condition = _any(reached, LINK_CATEGORIES | {category})
            cleared = (
                0 if condition is None else _clear(session, where, category, condition, columns)
            )
            if category in reached or cleared:
                erased[category] = cleared
        link = _any(reached, LINK_CATEGORIES)
        if link is not None:
            unlinked = self._unlink(session, where, link, scope.as_of)
            erased.update(dict.fromkeys(sorted(LINK_CATEGORIES), unlinked))
        retained = {category: _count(session, where, category) for category in reached}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """Anonymise every customer's messages past their retention, as ``erase`` would."""
        reached = _reached(call.rules)
        scope = sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        pending: list[ColumnElement[bool]] = [Message.anonymised_at.is_(None)]
        if cutoffs:
            pending.append(Message.sent_at < max(cutoffs.values()))
        for ids in id_chunks(session, Message.id, pending) if cutoffs else ():
            where: list[ColumnElement[bool]] = [
                Message.id.in_(ids),
                Message.anonymised_at.is_(None),
            ]
            anonymised.update(self.erase_now(session, where, reached, scope).erased)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def _unlink(
        self,
        session: Session,
        where: list[ColumnElement[bool]],
        reached: ColumnElement[bool],
        as_of: datetime,
    ) -> int:
        rows = session.execute(
            select(Message.id, Message.end_user_phone, Message.sent_at).where(*where, reached)
        ).all()
        changes = [
            {
                "id": row.id,
                "end_user_phone": keyed_hash(self.secret, row.end_user_phone, "pseudonym"),
                "sent_at": row.sent_at.replace(hour=0, minute=0, second=0, microsecond=0),
                "operator": None,
                "route": None,
                "content": None,
                "cell_id": None,
                "latitude": None,
                "longitude": None,
                "anonymised_at": as_of,
            }
            for row in rows
        ]
        if changes:
            session.execute(update(Message), changes)
        return len(changes)

    def restrict_now(self, session: Session, where: Where, call: FlagInput) -> int:
        customer_account = cast(str, call.scope.customer_account)
        phones = subject_phones(call.scope)
        identities = [Identity(type=IdentityType.PHONE, value=phone) for phone in phones]
        self.restrictions.place_or_lift(session, customer_account, call, identities)
        return _count(session, where, PHONE_NUMBER)


# --- queries -------------------------------------------------------------------------------


def _holding(
    session: Session, where: list[ColumnElement[bool]], category: str
) -> CategoryHolding | None:
    rows = session.execute(
        select(
            Message.country_ended,
            func.count(),
            func.min(Message.sent_at),
            func.max(Message.sent_at),
        )
        .where(*where, holds(category))
        .group_by(Message.country_ended)
    ).all()
    if not rows:
        return None
    return CategoryHolding(
        category=category,
        records=sum(row[1] for row in rows),
        earliest=min(row[2] for row in rows),
        latest=max(row[3] for row in rows),
        countries_ended=sorted(row[0] for row in rows),
        latest_by_country={row[0]: row[3] for row in rows},
    )


def _count(session: Session, where: list[ColumnElement[bool]], category: str) -> int:
    statement = select(func.count()).select_from(Message).where(*where, holds(category))
    return session.scalar(statement) or 0


def _clear(
    session: Session,
    where: list[ColumnElement[bool]],
    category: str,
    reached: ColumnElement[bool],
    columns: tuple[str, ...],
) -> int:
    statement = (
        update(Message)
        .where(*where, reached, holds(category))
        .values(dict.fromkeys(columns))
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _export_chunks(
    session: Session, where: list[ColumnElement[bool]]
) -> Iterator[list[dict[str, Any]]]:
    statement = (
        select(Message)
        .where(*where)
        .order_by(Message.sent_at, Message.id)
        .execution_options(yield_per=EXPORT_CHUNK_ROWS)
    )
    for partition in session.scalars(statement).partitions():
        yield [record for message in partition for record in _records(message)]


def _records(message: Message) -> Iterator[dict[str, Any]]:
    """One export record per category the message holds, joined by ``message_id``."""
    ids = {"message_id": message.id, "customer_account": message.customer_account}
    yield {"category": PHONE_NUMBER, **ids, "phone_number": message.end_user_phone}
    yield {
        "category": TRAFFIC_DATA,
        **ids,
        "direction": message.direction,
        "sender_id": message.sender_id,
        "sent_at": message.sent_at,
        "status": message.status,
        "operator": message.operator,
        "route": message.route,
        "segments": message.segments,
        "country_ended": message.country_ended,
    }
    if any(v is not None for v in (message.cell_id, message.latitude, message.longitude)):
        yield {
            "category": LOCATION_DATA,
            **ids,
            "cell_id": message.cell_id,
            "latitude": message.latitude,
            "longitude": message.longitude,
        }
    if message.content is not None:
        yield {"category": MESSAGE_CONTENT, **ids, "content": message.content}


# --- rules ---------------------------------------------------------------------------------


def _reached(rules: list[EraseRule]) -> dict[str, ColumnElement[bool]]:
    """Per category, the messages its rules reach (by date, and by country where confined)."""
    return country_conditions("sms", rules, CATEGORIES, Message.sent_at, Message.country_ended)


def _any(
    reached: dict[str, ColumnElement[bool]], categories: Iterable[str]
) -> ColumnElement[bool] | None:
    conditions = [reached[c] for c in sorted(categories) if c in reached]
    return or_(*conditions) if conditions else None
