"""Officer sessions for the Temporal Web UI's codec server.

The Web UI sends a bearer token to the codec server only when it signs officers in with OIDC.
On the embedded stack an officer opens a session from the CLI instead (``python starter.py
ui-session``): a link that sets a cookie in the browser the officer uses for the Web UI. The
token is stored only as a keyed hash, so the table cannot be replayed from a database copy;
each session expires, and can be revoked. Opening one is recorded in the audit ledger (the
officer and the expiry, never the token).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from dsr import ledger
from dsr.database import Base, UtcDateTime
from dsr.hashing import keyed_hash

PURPOSE = "ui-session"
TOKEN_BYTES = 32


class OfficerSessionRecord(Base):
    __tablename__ = "officer_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    officer: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OfficerSession:
    """A live session: who, and until when."""

    __slots__ = ("expires_at", "officer")

    def __init__(self, officer: str, expires_at: datetime) -> None:
        self.officer = officer
        self.expires_at = expires_at


def _hash(secret: bytes, token: str) -> str:
    return keyed_hash(secret, token, purpose=PURPOSE)


def open_session(
    engine: Engine, secret: bytes, officer: str, hours: int, now: datetime | None = None
) -> str:
    """A new session for ``officer`` lasting ``hours``; returns the token (shown once)."""
    if not officer.strip():
        raise ValueError("the officer's name is empty")
    if hours < 1:
        raise ValueError("a session lasts at least one hour")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = now + timedelta(hours=hours)
    with Session(engine) as session, session.begin():
        session.add(
            OfficerSessionRecord(
                token_hash=_hash(secret, token),
                officer=officer,
                created_at=now,
                expires_at=expires_at,
                revoked_at=None,
            )
        )
        ledger.append(
            session,
            "ui_session_opened",
            officer,
            now,
            None,
            {"expires_at": expires_at.isoformat(), "hours": hours},
            ledger.ledger_key(secret),
        )
    return token


def session_for(
    engine: Engine, secret: bytes, token: str, now: datetime | None = None
) -> OfficerSession | None:
    """The live session ``token`` opens, or None if unknown, expired or revoked."""
    if not token or len(token) > 200:
        return None
    now = now or datetime.now(UTC)
    with Session(engine) as session:
        record = session.get(OfficerSessionRecord, _hash(secret, token))
        if record is None or record.revoked_at is not None or record.expires_at <= now:
            return None
        return OfficerSession(record.officer, record.expires_at)


def officer_for(
    engine: Engine, secret: bytes, token: str, now: datetime | None = None
) -> str | None:
    """The officer whose live session ``token`` is, or None."""
    found = session_for(engine, secret, token, now)
    return found.officer if found else None


def revoke(engine: Engine, secret: bytes, token: str, now: datetime | None = None) -> bool:
    """End the session ``token`` now; False if it was unknown or already ended."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    with Session(engine) as session, session.begin():
        record = session.get(OfficerSessionRecord, _hash(secret, token))
        if record is None or record.revoked_at is not None or record.expires_at <= now:
            return False
        record.revoked_at = now
        ledger.append(
            session, "ui_session_revoked", record.officer, now, None, {}, ledger.ledger_key(secret)
        )
    return True


def revoke_all(engine: Engine, secret: bytes, officer: str, now: datetime | None = None) -> int:
    """End every live session of ``officer``; returns how many."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    with Session(engine) as session, session.begin():
        live = session.scalars(
            select(OfficerSessionRecord).where(
                OfficerSessionRecord.officer == officer,
                OfficerSessionRecord.revoked_at.is_(None),
                OfficerSessionRecord.expires_at > now,
            )
        ).all()
        for record in live:
            record.revoked_at = now
        if live:
            ledger.append(
                session,
                "ui_session_revoked",
                officer,
                now,
                None,
                {"sessions": len(live)},
                ledger.ledger_key(secret),
            )
    return len(live)
