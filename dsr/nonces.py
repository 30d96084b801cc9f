"""Assertions spent outside a workflow (the officers' directory, the officer service): each
nonce once, kept until its action expires, in the application database so that every
process and replica refuses the same replay."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from dsr.assertions import CLOCK_SKEW, AssertionRefused, Principal
from dsr.orm import Base, UtcDateTime


class SpentNonce(Base):
    __tablename__ = "spent_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


def spend(session: Session, principal: Principal, now: datetime) -> None:
    """Record the principal's nonce in ``session``'s transaction (it is spent only if that
    commits); a nonce already spent is a replay."""
    session.execute(delete(SpentNonce).where(SpentNonce.expires_at < now - CLOCK_SKEW))
    try:
        with session.begin_nested():
            session.add(SpentNonce(nonce=principal.nonce, expires_at=principal.expires_at))
    except IntegrityError:
        raise AssertionRefused("the assertion was already used (a replay)") from None
