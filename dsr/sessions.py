"""Officer sessions for the Temporal Web UI's codec server.

The Web UI sends a bearer token to the codec server only when it signs officers in with OIDC.
On the embedded stack an officer opens a session from the CLI instead (``python starter.py
ui-session``), which prints a session id and a link to open in the browser used for the Web UI.

The link works once: opening it exchanges it for a fresh random cookie value, and from then
on the link opens nothing (a second opening is refused, so a link that leaked after use is
worthless, and one opened by someone else first shows up as "already used"). The link token
and the cookie are stored only as keyed hashes under the sessions' own key, tagged with its
id (``dsr.serverkeys``), so the table cannot be replayed from a database copy, and sessions
opened before a change of server secret stay open until they expire. Each session expires,
and can be ended by its id (``ui-session --revoke``) or all at once (``--revoke-all``).
Opening and ending sessions are recorded in the audit ledger (session id, officer, expiry;
never a token or a cookie).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, Select, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from dsr import ledger
from dsr.orm import Base, UtcDateTime
from dsr.purposes import SESSIONS
from dsr.serverkeys import ServerKeys

LINK_PURPOSE = "ui-session-link"
COOKIE_PURPOSE = "ui-session-cookie"
TOKEN_BYTES = 32
SESSION_ID_BYTES = 8
MAX_TOKEN_CHARS = 200


class OfficerSessionRecord(Base):
    __tablename__ = "officer_sessions"

    session_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    officer: Mapped[str] = mapped_column(String(80))
    link_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Set when the link is opened (exchanged for the cookie); None until then.
    cookie_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    link_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class SessionLink:
    """A session just opened: its id (not a secret) and the link's token (shown once)."""

    session_id: str
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class OfficerSession:
    """A live session: which, who, until when, and whether its link was opened."""

    session_id: str
    officer: str
    expires_at: datetime
    link_used: bool = False


@dataclass(frozen=True)
class Exchanged:
    """A link opened: the session, and the cookie value that stands for it from now on."""

    session: OfficerSession
    cookie: str


class LinkRefusal(StrEnum):
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class LinkRefused:
    reason: LinkRefusal
    session_id: str | None = None


def _stored(keys: ServerKeys, token: str, label: str) -> str:
    """How a link or cookie is stored: its keyed hash, tagged with the key's id."""
    return keys.purpose(SESSIONS, label).tag(token)


def _forms(keys: ServerKeys, token: str, label: str) -> list[str]:
    """Every way it may be stored: under the current key, a previous secret's, or bare."""
    return keys.purpose(SESSIONS, label).candidates(token)


def _plausible(token: str) -> bool:
    return bool(token) and len(token) <= MAX_TOKEN_CHARS


def open_session(
    engine: Engine, keys: ServerKeys, officer: str, hours: int, now: datetime | None = None
) -> SessionLink:
    """A new session for ``officer`` lasting ``hours``: its id and its link's token."""
    if not officer.strip():
        raise ValueError("the officer's name is empty")
    if hours < 1:
        raise ValueError("a session lasts at least one hour")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    opened = SessionLink(
        secrets.token_hex(SESSION_ID_BYTES), secrets.token_urlsafe(TOKEN_BYTES),
        now + timedelta(hours=hours),
    )
    with Session(engine) as session, session.begin():
        session.add(OfficerSessionRecord(
            session_id=opened.session_id, officer=officer,
            link_hash=_stored(keys, opened.token, LINK_PURPOSE), cookie_hash=None,
            created_at=now, expires_at=opened.expires_at, link_used_at=None, revoked_at=None,
        ))  # fmt: skip
        ledger.append(
            session, "ui_session_opened", officer, now, None,
            {"session": opened.session_id, "expires_at": opened.expires_at.isoformat(),
             "hours": hours},
            ledger.ledger_key(keys.secret),
        )  # fmt: skip
    return opened


def exchange_link(
    engine: Engine, keys: ServerKeys, token: str, now: datetime | None = None
) -> Exchanged | LinkRefused:
    """Open the link ``token`` once: a fresh cookie for its session, or why not.

    The exchange is one conditional UPDATE, so two openings at once cannot both succeed."""
    if not _plausible(token):
        return LinkRefused(LinkRefusal.UNKNOWN)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    with Session(engine) as session, session.begin():
        record = session.scalars(select(OfficerSessionRecord).where(
            OfficerSessionRecord.link_hash.in_(_forms(keys, token, LINK_PURPOSE)))).one_or_none()
        refusal = _link_refusal(record, now)
        if refusal is not None or record is None:
            return LinkRefused(refusal or LinkRefusal.UNKNOWN,
                               record.session_id if record else None)
        cookie = secrets.token_urlsafe(TOKEN_BYTES)
        changed = session.execute(
            update(OfficerSessionRecord)
            .where(OfficerSessionRecord.session_id == record.session_id,
                   OfficerSessionRecord.link_used_at.is_(None),
                   OfficerSessionRecord.revoked_at.is_(None))
            .values(link_used_at=now, cookie_hash=_stored(keys, cookie, COOKIE_PURPOSE))
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if changed != 1:
            return LinkRefused(LinkRefusal.USED, record.session_id)
        opened = OfficerSession(record.session_id, record.officer, record.expires_at, True)
    return Exchanged(opened, cookie)


def _link_refusal(record: OfficerSessionRecord | None, now: datetime) -> LinkRefusal | None:
    if record is None:
        return LinkRefusal.UNKNOWN
    if record.revoked_at is not None:
        return LinkRefusal.REVOKED
    if record.expires_at <= now:
        return LinkRefusal.EXPIRED
    if record.link_used_at is not None:
        return LinkRefusal.USED
    return None


def session_for(
    engine: Engine, keys: ServerKeys, cookie: str, now: datetime | None = None
) -> OfficerSession | None:
    """The live session whose cookie is ``cookie``, or None if unknown, expired or revoked."""
    if not _plausible(cookie):
        return None
    now = now or datetime.now(UTC)
    with Session(engine) as session:
        record = session.scalars(select(OfficerSessionRecord).where(
            OfficerSessionRecord.cookie_hash.in_(_forms(keys, cookie, COOKIE_PURPOSE)),
            OfficerSessionRecord.revoked_at.is_(None),
            OfficerSessionRecord.expires_at > now,
        )).one_or_none()  # fmt: skip
        return None if record is None else _live(record)


def officer_for(
    engine: Engine, keys: ServerKeys, cookie: str, now: datetime | None = None
) -> str | None:
    """The officer whose live session's cookie is ``cookie``, or None."""
    found = session_for(engine, keys, cookie, now)
    return found.officer if found else None


def _live(record: OfficerSessionRecord) -> OfficerSession:
    return OfficerSession(record.session_id, record.officer, record.expires_at,
                          record.link_used_at is not None)


def live_sessions(
    engine: Engine, officer: str | None = None, now: datetime | None = None
) -> list[OfficerSession]:
    """The sessions not yet expired or revoked (of ``officer``, or everyone's), oldest first."""
    now = now or datetime.now(UTC)
    with Session(engine) as session:
        return [_live(record) for record in session.scalars(
            _live_query(officer, now).order_by(OfficerSessionRecord.created_at))]


def _live_query(officer: str | None, now: datetime) -> Select[OfficerSessionRecord]:
    query = select(OfficerSessionRecord).where(
        OfficerSessionRecord.revoked_at.is_(None), OfficerSessionRecord.expires_at > now)
    if officer is not None:
        query = query.where(OfficerSessionRecord.officer == officer)
    return query


def revoke(
    engine: Engine, keys: ServerKeys, session_id: str, by: str, now: datetime | None = None,
    officer: str | None = None,
) -> bool:
    """End the session ``session_id`` now (its link and its cookie); False if it was unknown,
    had already ended, or (``officer`` given) is someone else's. ``by`` is who ended it, for
    the ledger."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    with Session(engine) as session, session.begin():
        record = session.get(OfficerSessionRecord, session_id.strip()[:32])
        if record is None or record.revoked_at is not None or record.expires_at <= now:
            return False
        if officer is not None and record.officer != officer:
            return False
        record.revoked_at = now
        ledger.append(
            session, "ui_session_revoked", by, now, None,
            {"session": record.session_id, "officer": record.officer},
            ledger.ledger_key(keys.secret),
        )  # fmt: skip
    return True


def revoke_all(
    engine: Engine, keys: ServerKeys, by: str, officer: str | None = None,
    now: datetime | None = None,
) -> int:
    """End every live session (of ``officer``, or everyone's); returns how many."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    with Session(engine) as session, session.begin():
        live = session.scalars(_live_query(officer, now)).all()
        for record in live:
            record.revoked_at = now
        if live:
            ledger.append(
                session, "ui_session_revoked", by, now, None,
                {"sessions": sorted(r.session_id for r in live), "officer": officer or "*"},
                ledger.ledger_key(keys.secret),
            )  # fmt: skip
    return len(live)
