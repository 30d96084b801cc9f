"""The CDP store: its tables (``profiles`` and ``events``), the categories and their treatments, and
whose rows a subject's are (``connectors.cdp`` is the connector that works on it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    func,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connectors.kit.store import OperationLogMixin, UtcDateTime
from dsr.connector_contract import Scope, Strategy, Treatment
from dsr.models import IdentityType

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


def profile_ids(subject: Subject, *conditions: ColumnElement[bool]) -> Select[int]:
    return select(Profile.id).where(*profile_where(subject), *conditions)
