"""The case tallies (cti.stats.case_tallies: the case pages over a year within a second) and the risk alerts kept
in the database (cti.store.alerts). "If not exists": a database made by a development version between 0.1.0 and
this revision may have them already.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the tallies are made from the cases at the next start (cti.store.case_tallies.ensure: no zone row yet)
    op.create_table('alerts',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cleared_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    if_not_exists=True,
    )
    op.create_index('ix_alerts_cleared', 'alerts', ['cleared_at', 'raised_at'], unique=False, if_not_exists=True)
    op.create_table('case_tallies',
    sa.Column('grouping', sa.String(length=16), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('cases', sa.Integer(), nullable=False),
    sa.Column('closed', sa.Integer(), nullable=False),
    sa.Column('replied', sa.Integer(), nullable=False),
    sa.Column('on_time', sa.Integer(), nullable=False),
    sa.Column('late', sa.Integer(), nullable=False),
    sa.Column('satisfied', sa.Integer(), nullable=False),
    sa.Column('basically_satisfied', sa.Integer(), nullable=False),
    sa.Column('unsatisfied', sa.Integer(), nullable=False),
    sa.Column('unreachable', sa.Integer(), nullable=False),
    sa.Column('first_call_resolved', sa.Integer(), nullable=False),
    sa.Column('dispatched', sa.Integer(), nullable=False),
    sa.Column('returned', sa.Integer(), nullable=False),
    sa.Column('rehandled', sa.Integer(), nullable=False),
    sa.Column('escalated', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('grouping', 'day', 'key'),
    if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("case_tallies")
    op.drop_index("ix_alerts_cleared", table_name="alerts")
    op.drop_table("alerts")
