"""Leases (cti.leader): which cti instance runs the sweeps, the callbacks and the webhooks' delivery, when several
read the same PBX nodes and database.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("leases",
                    sa.Column("name", sa.String(length=32), nullable=False),
                    sa.Column("holder", sa.String(length=128), nullable=False),
                    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
                    sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint("name"))


def downgrade() -> None:
    op.drop_table("leases")
