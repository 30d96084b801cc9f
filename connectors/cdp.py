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
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import ColumnElement, CursorResult, Select, delete, func, select, update
from sqlalchemy.orm import Session

from connectors.cdp_store import (
    CATEGORIES,
    CORRECTABLE,
    EVENTS,
    PROFILE,
    PROFILE_IDENTIFIERS,
    TREATMENTS,
    CdpBase,
    CdpOperationLog,
    Profile,
    ProfileEvent,
    Subject,
    locate_holders,
    profile_ids,
    profile_where,
    resolve_subject,
    subject_events,
    subject_profiles,
)
from connectors.kit.connector import CutoffConnector, sweep_scope
from connectors.kit.cutoffs import id_chunks
from connectors.kit.errors import ConnectorInputError
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    FlagInput,
    FlagResult,
    Operation,
    Scope,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.models import EMAIL

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
        restricted = profile_ids(subject, Profile.processing_restricted.is_(True))
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
            anonymised = profile_ids(subject, Profile.updated_at < cutoffs[PROFILE])
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
            ProfileEvent.profile_id.in_(profile_ids(subject)),
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
