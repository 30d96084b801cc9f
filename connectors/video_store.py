"""The Video reference store (24sessions): video meetings between a customer's staff and its
end users (``meetings``), and the visitors who joined them (``visitors``), as the video product
keeps them. The demo seeds fill it; the connector is the dataset connector of
``connectors/datasets/video.yaml`` (which states what erasing, restricting and rectifying do)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connectors.dataset.matching import unformatted
from connectors.kit.store import UtcDateTime


class VideoBase(DeclarativeBase):
    pass


class Meeting(VideoBase):
    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    scheduled_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)  # the sweep's
    description: Mapped[str | None] = mapped_column(Text)
    review: Mapped[str | None] = mapped_column(Text)  # optional
    summary: Mapped[str | None] = mapped_column(Text)  # optional
    recording_ref: Mapped[str | None] = mapped_column(String(200))  # optional


class Visitor(VideoBase):
    """One person who joined a meeting; ``customer_account`` repeats the meeting's, so that
    one subject's visits at one customer are found by index."""

    __tablename__ = "visitors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))  # optional
    ip: Mapped[str | None] = mapped_column(String(45))
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    # Locating the controllers of an identity, across customers, on the expressions the
    # dataset connector looks them up by (an address in lower case without surrounding
    # spaces, a number without its formatting).
    __table_args__ = (
        Index("ix_visitors_locate_email", func.lower(func.trim(text("email")))),
        Index("ix_visitors_locate_phone", unformatted(text("phone"))),
    )


# One subject's visits at one customer, by the same expressions.
Index("ix_visitors_email", Visitor.customer_account, func.lower(func.trim(Visitor.email)))
Index("ix_visitors_phone", Visitor.customer_account, unformatted(Visitor.phone))
