"""The request subjects: each registered request's subject hashes, one row each, indexed by
hash and receipt time, so that an intake finds possible duplicates by lookup instead of
reading every request of the window. Backfilled from ``requests.subject_hashes`` (kept).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000  # rows per bulk insert of the backfill


def upgrade() -> None:
    request_subjects = op.create_table(
        "request_subjects",
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.request_id"]),
        sa.PrimaryKeyConstraint("subject_hash", "request_id"),
    )
    op.create_index(
        "ix_request_subjects_subject_hash_received_at",
        "request_subjects",
        ["subject_hash", "received_at"],
    )
    op.create_index("ix_request_subjects_request_id", "request_subjects", ["request_id"])
    # The JSON is parsed in Python (sa.JSON's result processing), alike on SQLite and PostgreSQL.
    requests = sa.table(
        "requests",
        sa.column("request_id", sa.String()),
        sa.column("subject_hashes", sa.JSON()),
        sa.column("received_at", sa.DateTime(timezone=True)),
    )
    registered = (
        op.get_bind()
        .execute(
            sa.select(requests.c.request_id, requests.c.subject_hashes, requests.c.received_at)
        )
        .all()
    )
    rows = [
        {
            "subject_hash": subject_hash,
            "request_id": request.request_id,
            "received_at": request.received_at,
        }
        for request in registered
        for subject_hash in sorted(set(request.subject_hashes or ()))
    ]
    for start in range(0, len(rows), BATCH):
        op.bulk_insert(request_subjects, rows[start : start + BATCH])


def downgrade() -> None:
    op.drop_table("request_subjects")  # its index goes with it
