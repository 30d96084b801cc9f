"""The Marketing store: its tables (``prospects``, ``subscriptions``, ``consent_records`` and
``suppressions``), the categories and their treatments, whose rows a subject's are and each
category's records as exported (``connectors.marketing`` is the connector that works on it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    Index,
    Integer,
    Select,
    String,
    Text,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connectors.kit.queries import fields
from connectors.kit.restrictions import RestrictionMixin
from connectors.kit.shares import Share
from connectors.kit.store import OperationLogMixin, UtcDateTime
from connectors.kit.suppressions import SuppressionMixin
from dsr.connector_contract import Strategy, Treatment

PROSPECT_PROFILE = "prospect_profile"
SUBSCRIPTIONS = "subscriptions"
CONSENT_PROOF = "consent_proof"
CATEGORIES = (PROSPECT_PROFILE, SUBSCRIPTIONS, CONSENT_PROOF)
CORRECTABLE = ("name", "company", "job_title")
IMPORT_CHUNK_ROWS = 500
GROUP = "-"  # restrictions of the group's own data belong to no customer
TREATMENTS = tuple(
    Treatment(category=category, table=table, column="*", strategy=Strategy.DELETE_ROW)
    for category, table in (
        (PROSPECT_PROFILE, "prospects"),
        (SUBSCRIPTIONS, "subscriptions"),
        (CONSENT_PROOF, "consent_records"),
    )
)


class MarketingBase(DeclarativeBase):
    pass


class Prospect(MarketingBase):
    __tablename__ = "prospects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    job_title: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    source_detail: Mapped[str] = mapped_column(String(200))  # the form, or the provider
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_contacted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    objected_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("source IN ('web_form', 'enrichment')", name="ck_prospects_source"),
    )


class Subscription(MarketingBase):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    list_name: Mapped[str] = mapped_column(String(64))
    subscribed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ConsentRecord(MarketingBase):
    """Proof of a consent given (and perhaps withdrawn), for one purpose (a list's name)."""

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(64))
    given_at: Mapped[datetime] = mapped_column(UtcDateTime)
    evidence: Mapped[str] = mapped_column(Text)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    withdrawal_evidence: Mapped[str | None] = mapped_column(Text)


class Suppression(SuppressionMixin, MarketingBase):
    """Whoever is erased, objects or opts out: never contacted or imported again."""


class Restriction(RestrictionMixin, MarketingBase):
    """Restrictions of the group's own data: customer ``GROUP``."""


class MarketingOperationLog(OperationLogMixin, MarketingBase):
    pass


# Case-insensitive lookups need expression indexes.
Index("ix_prospects_email", func.lower(Prospect.email))
Index("ix_subscriptions_email", func.lower(Subscription.email))


class ProspectRow(BaseModel):
    """One prospect to import (from a web form or an enrichment provider's file)."""

    model_config = ConfigDict(hide_input_in_errors=True)

    email: str
    name: str | None = None
    company: str | None = None
    job_title: str | None = None
    source: Literal["web_form", "enrichment"]
    source_detail: str
    created_at: datetime
    last_contacted_at: datetime | None = None


# --- the subject ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    emails: tuple[str, ...]  # lower case
    # The normalised identities' keyed hashes in every form records may hold them in (under
    # each key held, and bare): what matching looks for.
    hashes: tuple[str, ...]
    # Each email's hash under the current key (what a new entry holds), with all its forms.
    entries: tuple[tuple[str, tuple[str, ...]], ...] = ()
    everyone: bool = False  # a sweep's: every row, whoever it is about


EVERYONE = Subject((), (), everyone=True)


def proof_dated() -> ColumnElement[datetime]:
    """A consent proof's date: its withdrawal, else the consent."""
    return func.coalesce(ConsentRecord.withdrawn_at, ConsentRecord.given_at)


def sources(subject: Subject) -> dict[str, Share]:
    """Each category's rows for the subject (``ix_prospects_email``, ``ix_subscriptions_email``
    and the consent records' ``email_hash`` index)."""
    emails = list(subject.emails)

    def of_subject(condition: ColumnElement[bool]) -> list[ColumnElement[bool]]:
        return [] if subject.everyone else [condition]

    return {
        PROSPECT_PROFILE: Share(
            Prospect.created_at,
            of_subject(func.lower(Prospect.email).in_(emails)),
            PROSPECT_PROFILE,
            _prospect_record,
        ),
        SUBSCRIPTIONS: Share(
            Subscription.subscribed_at,
            of_subject(func.lower(Subscription.email).in_(emails)),
            SUBSCRIPTIONS,
            _subscription_record,
        ),
        CONSENT_PROOF: Share(
            proof_dated(),
            of_subject(ConsentRecord.email_hash.in_(list(subject.hashes))),
            CONSENT_PROOF,
            _consent_record,
            joined=ConsentRecord,
        ),
    }


def subject_rows(source: Share) -> Select[Any]:
    return select(source.model).where(*source.where)


def prospects(subject: Subject) -> list[ColumnElement[bool]]:
    return [func.lower(Prospect.email).in_(list(subject.emails))]


def active_subscriptions(subject: Subject) -> list[ColumnElement[bool]]:
    return [
        func.lower(Subscription.email).in_(list(subject.emails)),
        Subscription.unsubscribed_at.is_(None),
    ]


def consents_given(subject: Subject) -> list[ColumnElement[bool]]:
    return [
        ConsentRecord.email_hash.in_(list(subject.hashes)),
        ConsentRecord.withdrawn_at.is_(None),
    ]


# --- export records ------------------------------------------------------------------------


def _prospect_record(prospect: Prospect) -> dict[str, Any]:
    return fields(prospect, ("prospect_id", "id"), "email", "name", "company", "job_title",
                  "source", "source_detail", "created_at", "last_contacted_at", "objected_at")


def _subscription_record(subscription: Subscription) -> dict[str, Any]:
    return fields(subscription, ("subscription_id", "id"), "email", ("list", "list_name"),
                  "subscribed_at", "unsubscribed_at")


def _consent_record(consent: ConsentRecord) -> dict[str, Any]:
    return fields(consent, ("consent_id", "id"), "purpose", "given_at", "evidence",
                  "withdrawn_at", "withdrawal_evidence")
