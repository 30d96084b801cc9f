"""The initial schema: what ``create_all`` made before the migrations existed.

The request register and its milestones, confirmations, legal holds, the audit ledger and its
head row, officer sessions and package links. ``UtcDateTime`` columns are plain
``DateTime(timezone=True)`` here (TIMESTAMP WITH TIME ZONE on PostgreSQL, text on SQLite):
the type decorator only converts values.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64  # dsr.ledger.GENESIS: the head of an empty ledger


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("rights", sa.JSON(), nullable=False),
        sa.Column("jurisdiction", sa.String(length=8), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("requester_kind", sa.String(length=20), nullable=False),
        sa.Column("customer_account", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("subject_hashes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("due_at", _utc(), nullable=True),
        sa.Column("extended", sa.Boolean(), nullable=False),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("affiliates", sa.JSON(), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=True),
        sa.Column("outcome", sa.String(length=200), nullable=True),
        sa.Column("closed_at", _utc(), nullable=True),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_requests_due_at", "requests", ["due_at"])
    op.create_index("ix_requests_jurisdiction", "requests", ["jurisdiction"])
    op.create_index("ix_requests_status", "requests", ["status"])

    op.create_table(
        "milestones",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("step", sa.String(length=40), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.request_id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "key"),
    )
    op.create_index("ix_milestones_request_id", "milestones", ["request_id"])

    op.create_table(
        "confirmations",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("sent_at", _utc(), nullable=False),
        sa.Column("retain_until", _utc(), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_confirmations_retain_until", "confirmations", ["retain_until"])

    op.create_table(
        "legal_holds",
        sa.Column("hold_id", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("identity_hash", sa.String(length=64), nullable=True),
        sa.Column("customer_account", sa.String(length=64), nullable=True),
        sa.Column("product", sa.String(length=80), nullable=True),
        sa.Column("category", sa.String(length=80), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(length=80), nullable=False),
        sa.Column("placed_at", _utc(), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("released_at", _utc(), nullable=True),
        sa.Column("released_by", sa.String(length=80), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("hold_id"),
    )
    op.create_index("ix_legal_holds_identity_hash", "legal_holds", ["identity_hash"])
    op.create_index("ix_legal_holds_released_at", "legal_holds", ["released_at"])

    op.create_table(
        "ledger",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_mac", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_ledger_request_id", "ledger", ["request_id"])

    ledger_head = op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # The one head row appenders lock (dsr.ledger._lock_head), as create_all's event made it.
    op.bulk_insert(ledger_head, [{"id": 1, "seq": 0, "mac": GENESIS}])

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

    op.create_table(
        "package_links",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.Column("purged_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_package_links_expires_at", "package_links", ["expires_at"])


def downgrade() -> None:
    for table in (
        "package_links",
        "officer_sessions",
        "ledger_head",
        "ledger",
        "legal_holds",
        "confirmations",
        "milestones",
        "requests",
    ):
        op.drop_table(table)  # their indexes go with them
