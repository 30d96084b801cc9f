"""CDP connector: the profiles customers build of their end users, and the profiles' events.

The customer is the controller of its end users' data and the group its processor, so every
lookup is confined to one customer account: without ``scope.customer_account`` the connector
finds nothing, and it never searches across customers. The subject is found by email address
(case-insensitive).

Records per category:
- ``profile``: one per profile (name, email address, job title, IP address, traits), dated by
  its last update;
- ``events``: one per event of the subject's profiles (name, time, IP address, properties).

Erasure:
- ``events``: the events dated before the cutoff are deleted;
- ``profile``: a profile updated before the cutoff is anonymised (name, email address, job
  title, IP address, the customer's user id and traits cleared, ``anonymised_at`` set) and
  every event left on it is deleted: no request could find them again, and their IP
  addresses and properties could still identify the person. Erasing the profile up to a date
  also deletes the events before that date, as an erasure of the person's profile data.

Restriction, objection: flags on the profile (``processing_restricted``, ``objected_at``) that
the customer's segments and enrichment honour. Only a restriction can be lifted. Being on
the profile, a restriction stays with it when its email address is rectified.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    CursorResult,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.cutoffs import id_chunks
from connectors.kit.errors import ConnectorInputError
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    FlagInput,
    FlagResult,
    Operation,
    Scope,
    Strategy,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.models import EMAIL, IdentityType

PROFILE = "profile"
EVENTS = "events"
CATEGORIES = (PROFILE, EVENTS)
CORRECTABLE = ("name", "email", "job_title")
PROFILE_IDENTIFIERS = ("external_id", "name", "email", "job_title", "ip", "traits")
TREATMENTS = (
    *(
        Treatment(category=category, table="events", column="*", strategy=Strategy.DELETE_ROW)
        for category in CATEGORIES
    ),
    *(
        Treatment(category=PROFILE, table="profiles", column=column, strategy=Strategy.NULL)
        for column in PROFILE_IDENTIFIERS
    ),
    Treatment(category=PROFILE, table="profiles", column="anonymised_at", strategy=Strategy.MARK),
)


class CdpBase(DeclarativeBase):
    pass


class Profile(CdpBase):
    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(64))  # the customer's user id
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    job_title: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(45))
    traits: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    processing_restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    objected_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    # Locating the controllers of an address, across customers (case-insensitively).
    __table_args__ = (Index("ix_profiles_locate_email", func.lower(text("email"))),)


# Case-insensitive lookups within one customer need an expression index.
Index("ix_profiles_subject", Profile.customer_account, func.lower(Profile.email))


class ProfileEvent(CdpBase):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id"))
    customer_account: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ip: Mapped[str | None] = mapped_column(String(45))
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_events_profile", "profile_id", "occurred_at"),)


class CdpOperationLog(OperationLogMixin, CdpBase):
    pass


# --- the subject ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """One end user of one customer, by email address (lower case)."""

    customer_account: str
    emails: tuple[str, ...]
    # A sweep's filter in place of the addresses: the profiles it names, any customer's.
    where: tuple[ColumnElement[bool], ...] = ()


def locate_holders(scope: Scope) -> Select[str] | None:
    """The customers holding profiles of these addresses, across customers (served by
    ``ix_profiles_locate_email``); none without an email address."""
    emails = sorted({i.value.lower() for i in scope.identities if i.type is IdentityType.EMAIL})
    if not emails:
        return None
    return (
        select(Profile.customer_account)
        .where(func.lower(Profile.email).in_(emails), Profile.anonymised_at.is_(None))
        .distinct()
        .order_by(Profile.customer_account)
    )


def resolve_subject(scope: Scope) -> Subject | None:
    """The subject, or None without a customer account (never cross-customer) or email."""
    emails = sorted({i.value.lower() for i in scope.identities if i.type is IdentityType.EMAIL})
    if scope.customer_account is None or not emails:
        return None
    return Subject(scope.customer_account, tuple(emails))


def profile_where(subject: Subject) -> list[ColumnElement[bool]]:
    """The subject's profiles (served by ``ix_profiles_subject``)."""
    if subject.where:
        return [*subject.where, Profile.anonymised_at.is_(None)]
    return [
        Profile.customer_account == subject.customer_account,
        func.lower(Profile.email).in_(subject.emails),
        Profile.anonymised_at.is_(None),
    ]


def subject_profiles(subject: Subject) -> Select[Profile]:
    return select(Profile).where(*profile_where(subject))


def subject_events(subject: Subject) -> Select[ProfileEvent]:
    return (
        select(ProfileEvent)
        .join(Profile, ProfileEvent.profile_id == Profile.id)
        .where(*profile_where(subject))
    )


def _profile_ids(subject: Subject, *conditions: ColumnElement[bool]) -> Select[int]:
    return select(Profile.id).where(*profile_where(subject), *conditions)


# --- the connector -------------------------------------------------------------------------


class CdpConnector(CutoffConnector[Subject]):
    name: ClassVar[str] = "cdp"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = (
        "discover",
        "access",
        "erase",
        "rectify",
        "restrict",
        "object",
        "locate",
        "sweep",
    )

    schema = CdpBase
    operation_log = CdpOperationLog
    correctable = CORRECTABLE

    subject = staticmethod(resolve_subject)
    holders = staticmethod(locate_holders)

    def holding(self, session: Session, subject: Subject, category: str) -> CategoryHolding | None:
        return _holding(session, subject, category)

    def export_chunks(self, session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
        return _export_chunks(session, subject)

    def corrected(self, field: str, value: str) -> str:
        return _corrected(field, value)

    def object(self, call: FlagInput) -> FlagResult:
        if call.lift:
            raise ConnectorInputError("cdp lifts restrictions only, not objections")
        values = {"objected_at": call.scope.as_of}
        return self.flag(
            call,
            Operation.OBJECT,
            lambda session, subject: _update(session, profile_where(subject), values),
        )

    def is_restricted(self, customer_account: str, email: str) -> bool:
        """Whether processing of this end user's profile is restricted for this customer (the
        flag is on the profile, so a rectified address keeps it)."""
        subject = Subject(customer_account, (email.lower(),))
        restricted = _profile_ids(subject, Profile.processing_restricted.is_(True))
        with self.store.reading() as session:
            return session.scalars(restricted.limit(1)).first() is not None

    # --- inside the operation's transaction ------------------------------------------------

    def erase_now(
        self, session: Session, subject: Subject, cutoffs: dict[str, datetime], scope: Scope
    ) -> EraseResult:
        as_of = scope.as_of
        erased: dict[str, int] = {}
        events_cutoff = _widest(cutoffs, CATEGORIES)
        if events_cutoff is not None:
            erased[EVENTS] = _delete_events(session, subject, events_cutoff)
        if PROFILE in cutoffs:
            anonymised = _profile_ids(subject, Profile.updated_at < cutoffs[PROFILE])
            ids = list(session.scalars(anonymised))
            erased[EVENTS] += _delete_events_of(session, ids)
            values = {**dict.fromkeys(PROFILE_IDENTIFIERS), "anonymised_at": as_of}
            erased[PROFILE] = _update(session, [Profile.id.in_(ids)], values)
        retained = {category: _count(session, subject, category) for category in cutoffs}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The erase of every profile created before the widest cutoff (with its events), a
        chunk of profiles at a time: no event predates its profile."""
        scope = sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        if cutoffs:
            pending: list[ColumnElement[bool]] = [
                Profile.anonymised_at.is_(None),
                Profile.created_at < max(cutoffs.values()),
            ]
            for ids in id_chunks(session, Profile.id, pending):
                chunk = Subject("", (), (Profile.id.in_(ids),))
                anonymised.update(self.erase_now(session, chunk, cutoffs, scope).erased)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def rectify_now(
        self, session: Session, subject: Subject, values: dict[str, str], scope: Scope
    ) -> dict[str, int]:
        if not values:
            return {}
        changed = _update(session, profile_where(subject), {**values, "updated_at": scope.as_of})
        return dict.fromkeys(values, changed)

    def restrict_now(self, session: Session, subject: Subject, call: FlagInput) -> int:
        return _update(session, profile_where(subject), {"processing_restricted": not call.lift})


# --- queries -------------------------------------------------------------------------------


def _holding(session: Session, subject: Subject, category: str) -> CategoryHolding | None:
    if category == PROFILE:
        dated = Profile.updated_at
        statement = select(func.count(), func.min(dated), func.max(dated)).where(
            *profile_where(subject)
        )
    else:
        occurred = ProfileEvent.occurred_at
        statement = (
            select(func.count(), func.min(occurred), func.max(occurred))
            .join(Profile, ProfileEvent.profile_id == Profile.id)
            .where(*profile_where(subject))
        )
    records, earliest, latest = session.execute(statement).one()
    if not records:
        return None
    return CategoryHolding(category=category, records=records, earliest=earliest, latest=latest)


def _count(session: Session, subject: Subject, category: str) -> int:
    holding = _holding(session, subject, category)
    return holding.records if holding is not None else 0


def _delete_events(session: Session, subject: Subject, before: datetime) -> int:
    statement = (
        delete(ProfileEvent)
        .where(
            ProfileEvent.profile_id.in_(_profile_ids(subject)),
            ProfileEvent.occurred_at < before,
        )
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _delete_events_of(session: Session, profile_ids: list[int]) -> int:
    statement = (
        delete(ProfileEvent)
        .where(ProfileEvent.profile_id.in_(profile_ids))
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _update(session: Session, where: Sequence[ColumnElement[bool]], values: dict[str, Any]) -> int:
    statement = (
        update(Profile).where(*where).values(values).execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


# --- export --------------------------------------------------------------------------------


def _export_chunks(session: Session, subject: Subject) -> Iterator[list[dict[str, Any]]]:
    profiles = subject_profiles(subject).order_by(Profile.id)
    for partition in _partitions(session, profiles):
        yield [_profile_record(profile) for profile in partition]
    events = subject_events(subject).order_by(ProfileEvent.occurred_at, ProfileEvent.id)
    for partition in _partitions(session, events):
        yield [_event_record(event) for event in partition]


def _partitions(session: Session, statement: Select[Any]) -> Iterator[list[Any]]:
    rows = session.scalars(statement.execution_options(yield_per=EXPORT_CHUNK_ROWS))
    for partition in rows.partitions():
        yield list(partition)


def _profile_record(profile: Profile) -> dict[str, Any]:
    return {
        "category": PROFILE,
        "profile_id": profile.id,
        "customer_account": profile.customer_account,
        "external_id": profile.external_id,
        "name": profile.name,
        "email": profile.email,
        "job_title": profile.job_title,
        "ip": profile.ip,
        "traits": profile.traits,
        "created_at": profile.created_at,
        "updated_at": profile.updated_at,
        "processing_restricted": profile.processing_restricted,
        "objected_at": profile.objected_at,
    }


def _event_record(event: ProfileEvent) -> dict[str, Any]:
    return {
        "category": EVENTS,
        "event_id": event.id,
        "profile_id": event.profile_id,
        "customer_account": event.customer_account,
        "name": event.name,
        "occurred_at": event.occurred_at,
        "ip": event.ip,
        "properties": event.properties,
    }


# --- rules and corrections -----------------------------------------------------------------


def _widest(cutoffs: dict[str, datetime], categories: Iterable[str]) -> datetime | None:
    return max((cutoffs[c] for c in categories if c in cutoffs), default=None)


def _corrected(field: str, value: str) -> str:
    """A corrected value; an email address is checked. An error names the field, never the
    value."""
    if field == "email" and not EMAIL.fullmatch(value):
        raise ConnectorInputError("corrected email is malformed")
    return value
