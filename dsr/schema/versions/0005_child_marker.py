"""The child marker: whether a registered request reports that its subject is a child
(privacy statement, section 10), for ``list --child``. A boolean, no age or date of birth;
requests registered before it are not child requests.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A database made by create_all before the migrations, adopted at 0001, has it already.
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("requests")}
    if "child" not in present:
        op.add_column("requests", sa.Column("child", sa.Boolean(), nullable=False,
                                            server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("requests", "child")
