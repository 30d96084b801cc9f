"""Download links for access packages: the answer email carries a link, never the data.

The link opens a landing page under the deployment's public base URL (``DSR_PUBLIC_BASE_URL``);
the package downloads only by a POST from that page, so a mail scanner that follows links
consumes nothing. The token in the link is derived from the request and the moment the link
was issued under the download links' own key (``dsr.serverkeys``), so a retried answer carries
the same link; the table keeps only its keyed hash, tagged with the key's id, and links issued
before a change of server secret open until they expire. A link works to the end (UTC) of
the last of its days (``DSR_PACKAGE_LINK_DAYS``, default 5) and can be revoked; the package is
purged once its link has expired or was revoked. Every download, revocation and purge is in
the audit ledger.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from sqlalchemy import Engine, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from dsr import ledger
from dsr.blobstore import BlobStore
from dsr.orm import Base, UtcDateTime
from dsr.purposes import DOWNLOAD_LINKS
from dsr.serverkeys import PurposeKeys, ServerKeys

PURPOSE = "package-link"
MAX_TOKEN_CHARS = 100


class PackageLinkRecord(Base):
    __tablename__ = "package_links"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LinkRefusal(StrEnum):
    """Why a link downloads nothing; each value is what the landing page tells the person."""

    UNKNOWN = "This link is not valid. Check that you copied the whole link from our email."
    EXPIRED = "This link has expired, and the package it pointed to has been deleted."
    REVOKED = "This link was withdrawn."
    UNREADABLE = ("This package cannot be downloaded: it did not pass our integrity check. "
                  "Please reply to our email so that we can look into it.")


@dataclass(frozen=True)
class PackageLink:
    request_id: str
    token: str
    expires_at: datetime


def package_key(request_id: str) -> str:
    return f"packages/{request_id}.zip"


def landing_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}/packages/{token}"


def public_origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) address as a browser writes it in ``Origin``
    (lowercase, default port left out); None for anything else (``null``, say)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        return None
    host = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _end_of_day(last_day: date) -> datetime:
    """A link works through the whole of its last day (UTC)."""
    return datetime.combine(last_day + timedelta(days=1), time(), tzinfo=UTC)


def last_day(link: PackageLink) -> date:
    return (link.expires_at - timedelta(days=1)).date()


def _token(key: bytes, request_id: str, issued_at: datetime) -> str:
    message = f"{PURPOSE}|{request_id}|{issued_at.astimezone(UTC).isoformat()}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _links(keys: ServerKeys) -> PurposeKeys:
    return keys.purpose(DOWNLOAD_LINKS, PURPOSE)


def _token_of(keys: ServerKeys, record: PackageLinkRecord) -> str:
    """The token of a link issued before (a retried answer sends the same link): made with
    the key its stored hash names, or, before key ids, with the secret that matches."""
    links = _links(keys)
    key = links.key_of(record.token_hash)
    made_with = [key.key] if key is not None else keys.secrets
    for candidate in made_with:
        token = _token(candidate, record.request_id, record.issued_at)
        if links.matches(token, record.token_hash):
            return token
    raise LookupError(f"the download link of {record.request_id} was made under a server "
                      "secret no longer held (DSR_HMAC_KEY_PREVIOUS)")


def issue(
    engine: Engine, keys: ServerKeys, request_id: str, issued_at: datetime, days: int
) -> PackageLink:
    """The request's link, issued now or (on a retry) the one issued before."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        record = session.get(PackageLinkRecord, request_id)
        if record is None:
            links = _links(keys)
            token = _token(links.current.key, request_id, issued_at)
            record = PackageLinkRecord(
                request_id=request_id, issued_at=issued_at.astimezone(UTC),
                expires_at=_end_of_day(issued_at.astimezone(UTC).date() + timedelta(days=days)),
                token_hash=links.tag(token), revoked_at=None, purged_at=None,
            )
            session.add(record)
    return PackageLink(request_id, _token_of(keys, record), record.expires_at)


def find(
    engine: Engine, keys: ServerKeys, token: str, now: datetime
) -> PackageLinkRecord | LinkRefusal:
    """The live link ``token`` opens, or why it opens nothing."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return LinkRefusal.UNKNOWN
    with Session(engine, expire_on_commit=False) as session:
        record = session.scalar(select(PackageLinkRecord).where(
            PackageLinkRecord.token_hash.in_(_links(keys).candidates(token))))
    if record is None:
        return LinkRefusal.UNKNOWN
    if record.revoked_at is not None:
        return LinkRefusal.REVOKED
    if record.expires_at <= now or record.purged_at is not None:
        return LinkRefusal.EXPIRED
    return record


def record_download(engine: Engine, secret: bytes, request_id: str, size: int,
                    now: datetime) -> None:
    with Session(engine) as session, session.begin():
        ledger.append(session, "package_downloaded", "requester", now, request_id,
                      {"bytes": size, "via": "download link"}, ledger.ledger_key(secret))


def revoke(engine: Engine, secret: bytes, request_id: str, officer: str, reason: str,
           now: datetime) -> bool:
    """Withdraw the request's link; False if it has none that still works."""
    with Session(engine) as session, session.begin():
        record = session.get(PackageLinkRecord, request_id)
        if record is None or record.revoked_at is not None or record.purged_at is not None:
            return False
        record.revoked_at = now
        ledger.append(session, "package_link_revoked", officer, now, request_id,
                      {"reason": reason}, ledger.ledger_key(secret))
    return True


def purge_packages(
    session: Session, blobs: BlobStore, now: datetime, key: bytes, actor: str
) -> list[str]:
    """Delete the packages whose link has expired or was revoked; returns their requests."""
    due = session.scalars(
        select(PackageLinkRecord).where(
            PackageLinkRecord.purged_at.is_(None),
            (PackageLinkRecord.expires_at <= now) | PackageLinkRecord.revoked_at.is_not(None),
        ).order_by(PackageLinkRecord.request_id)
    ).all()
    for record in due:
        blobs.delete(blobs.ref(package_key(record.request_id)))
        record.purged_at = now
        ledger.append(session, "purge", actor, now, record.request_id,
                      {"purged": "package", "reason": "download link ended"}, key)
    return [record.request_id for record in due]
