"""The Omnichannel Widget reference store: the chat widget sessions end users start on a
customer's website (``widget_sessions``), as the widget product keeps them. The demo seeds fill
it; the connector is the dataset connector of ``connectors/datasets/widget.yaml`` (which states
what erasing, restricting and rectifying do to the sessions)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connectors.dataset.matching import unformatted
from connectors.kit.store import UtcDateTime


class WidgetBase(DeclarativeBase):
    pass


class WidgetSession(WidgetBase):
    __tablename__ = "widget_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_account: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))
    channel_id: Mapped[str | None] = mapped_column(String(161))  # "whatsapp:447700900123"
    preferred_channel: Mapped[str | None] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(String(45))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    page_count: Mapped[int] = mapped_column(Integer)
    pages: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_widget_sessions_channel", "customer_account", "channel_id", "started_at"),
        # locating the controllers of an identity, across customers
        Index("ix_widget_sessions_locate_channel", "channel_id"),
        Index("ix_widget_sessions_locate_phone", unformatted(text("phone"))),
    )


# One subject's sessions at one customer, and the customers holding an identity, on the
# expressions the dataset connector looks them up by: an address in lower case without
# surrounding spaces, a number without its formatting.
Index("ix_widget_sessions_email", WidgetSession.customer_account,
      func.lower(func.trim(WidgetSession.email)))
Index("ix_widget_sessions_phone", WidgetSession.customer_account, unformatted(WidgetSession.phone))
Index("ix_widget_sessions_locate_email", func.lower(func.trim(WidgetSession.email)))
