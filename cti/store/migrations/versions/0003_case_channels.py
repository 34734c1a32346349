"""Cases from SMS and the web (cti.cases.channels): a case's channel (the cases already there came by phone), the
case number a citizen quotes (none for those), when a person first answered it; the SMS gateway's messages by id
(one case however often a message is reported); the case tallies' count of SMS and web cases answered within 3
minutes (0 for the cases already there: none came by SMS or the web).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("channel", sa.String(length=8), server_default=sa.text("'phone'"),
                                     nullable=False))
    op.add_column("cases", sa.Column("reference", sa.String(length=16), nullable=True))
    op.add_column("cases", sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("cases", sa.Column("taken_by", sa.String(length=64), server_default=sa.text("''"),
                                     nullable=False))
    op.create_index("ix_cases_reference", "cases", ["reference"], unique=True)
    op.add_column("case_tallies", sa.Column("media_cases", sa.Integer(), server_default=sa.text("0"),
                                            nullable=False))
    op.add_column("case_tallies", sa.Column("answered_3min", sa.Integer(), server_default=sa.text("0"),
                                            nullable=False))
    op.create_table("sms_inbound",
                    sa.Column("message_id", sa.String(length=128), nullable=False),
                    sa.Column("sender", sa.String(length=64), nullable=False),
                    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
                    sa.Column("outcome", sa.String(length=16), nullable=False),
                    sa.Column("case_id", sa.Integer(), nullable=True),
                    sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="SET NULL"),
                    sa.PrimaryKeyConstraint("message_id"))


def downgrade() -> None:
    op.drop_table("sms_inbound")
    with op.batch_alter_table("case_tallies") as table:
        table.drop_column("answered_3min")
        table.drop_column("media_cases")
    op.drop_index("ix_cases_reference", table_name="cases")
    with op.batch_alter_table("cases") as table:
        for name in ("taken_by", "taken_at", "reference", "channel"):
            table.drop_column(name)
