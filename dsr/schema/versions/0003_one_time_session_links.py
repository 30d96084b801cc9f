"""One-time session links: an officer session has an id (to end it by), the keyed hash of its
link and, once the link is opened, the keyed hash of the fresh cookie it was exchanged for.

Before, the link's token was itself the cookie. Those sessions are not carried over (the
table is made again): they last hours, and keeping them would keep their reusable links
working. Officers open a new session with ``python starter.py ui-session``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_table("officer_sessions")  # its index goes with it
    op.create_table(
        "officer_sessions",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("officer", sa.String(length=80), nullable=False),
        sa.Column("link_hash", sa.String(length=64), nullable=False),
        sa.Column("cookie_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("link_used_at", _utc(), nullable=True),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("session_id"),
        sa.UniqueConstraint("link_hash"),
        sa.UniqueConstraint("cookie_hash"),
    )
    op.create_index("ix_officer_sessions_expires_at", "officer_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("officer_sessions")
    op.create_table(
        "officer_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("officer", sa.String(length=80), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_officer_sessions_expires_at", "officer_sessions", ["expires_at"])
