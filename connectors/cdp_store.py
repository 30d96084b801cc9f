"""The CDP reference store: the profiles customers build of their end users (``profiles``) and
the profiles' events (``events``), as the CDP product keeps them. The demo seeds fill it; the
connector is the dataset connector of ``connectors/datasets/cdp.yaml`` (which states what
erasing, restricting and rectifying do to these tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connectors.kit.store import UtcDateTime


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
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)  # the sweep's date
    processing_restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    objected_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    # Locating the controllers of an address, across customers, on the expression the dataset
    # connector looks an email up by (lower case, no surrounding spaces).
    __table_args__ = (Index("ix_profiles_locate_email", func.lower(func.trim(text("email")))),)


# One subject's profiles at one customer, by the same expression.
Index("ix_profiles_subject", Profile.customer_account, func.lower(func.trim(Profile.email)))


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
