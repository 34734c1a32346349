"""Release 0.1.0: the tables as cti 0.1.0 made them with create_all (commit 439a0d5), the baseline every later
revision builds on. A database 0.1.0 made has no version table: cti.store.migrations recognises its tables and
records it as this revision before upgrading it.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('call_tallies',
    sa.Column('grouping', sa.String(length=8), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('hour', sa.String(length=2), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('asked', sa.Integer(), nullable=False),
    sa.Column('short_abandons', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Integer(), nullable=False),
    sa.Column('answered_in_15s', sa.Integer(), nullable=False),
    sa.Column('wait_ms', sa.BigInteger(), nullable=False),
    sa.Column('max_wait_ms', sa.Integer(), nullable=True),
    sa.Column('answer_wait_ms', sa.BigInteger(), nullable=False),
    sa.Column('talk_sum', sa.Double(), nullable=False),
    sa.Column('talked', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('grouping', 'starts_at', 'key')
    )
    op.create_table('call_tally_zone',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('built_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('linkedid', sa.String(length=64), nullable=False),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('caller_number', sa.String(length=64), nullable=False),
    sa.Column('caller_name', sa.String(length=128), nullable=False),
    sa.Column('dialled_number', sa.String(length=64), nullable=False),
    sa.Column('unit', sa.String(length=128), nullable=False),
    sa.Column('unit_id', sa.String(length=64), nullable=False),
    sa.Column('treatment', sa.String(length=32), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=False),
    sa.Column('arrived_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('queue_wait', sa.Double(), nullable=True),
    sa.Column('talk_time', sa.Double(), nullable=True),
    sa.Column('answered_by', sa.String(length=128), nullable=False),
    sa.Column('answered_by_name', sa.String(length=128), nullable=False),
    sa.Column('answered_channel', sa.String(length=128), nullable=False),
    sa.Column('transfers', sa.JSON(), nullable=False),
    sa.Column('legs', sa.JSON(), nullable=False),
    sa.Column('hangup_cause', sa.Integer(), nullable=True),
    sa.Column('hangup_cause_text', sa.String(length=128), nullable=False),
    sa.Column('recording', sa.String(length=512), nullable=False),
    sa.Column('estimated', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('linkedid')
    )
    op.create_index('ix_calls_arrived', 'calls', ['arrived_at'], unique=False)
    op.create_index('ix_calls_caller_arrived', 'calls', ['caller_number', 'arrived_at'], unique=False)
    op.create_index('ix_calls_dialled_arrived', 'calls', ['dialled_number', 'arrived_at'], unique=False)
    op.create_index('ix_calls_unit_arrived', 'calls', ['unit_id', 'arrived_at'], unique=False)
    op.create_table('calls_in_progress',
    sa.Column('linkedid', sa.String(length=64), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('linkedid')
    )
    op.create_table('cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('caller_number', sa.String(length=64), nullable=False),
    sa.Column('caller_name', sa.String(length=128), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('location', sa.String(length=256), nullable=False),
    sa.Column('legacy_number', sa.String(length=64), nullable=False),
    sa.Column('confidential', sa.Boolean(), nullable=False),
    sa.Column('auto', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('extension_days', sa.Integer(), nullable=False),
    sa.Column('extension_request', sa.JSON(), nullable=True),
    sa.Column('reply', sa.Text(), nullable=False),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('on_time', sa.Boolean(), nullable=True),
    sa.Column('satisfaction', sa.String(length=16), nullable=False),
    sa.Column('rehandled', sa.Integer(), nullable=False),
    sa.Column('reminded', sa.Boolean(), nullable=False),
    sa.Column('overdue_notices', sa.Integer(), nullable=False),
    sa.Column('last_notice_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('callback_attempts', sa.Integer(), nullable=False),
    sa.Column('next_callback_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('merged_into', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_cases_caller', 'cases', ['caller_number', 'created_at'], unique=False)
    op.create_index('ix_cases_created', 'cases', ['created_at'], unique=False)
    op.create_index('ix_cases_state_due', 'cases', ['state', 'due_at'], unique=False)
    op.create_index('ix_cases_unit_created', 'cases', ['unit', 'created_at'], unique=False)
    op.create_table('missed_calls',
    sa.Column('linkedid', sa.String(length=64), nullable=False),
    sa.Column('caller_number', sa.String(length=64), nullable=False),
    sa.Column('caller_name', sa.String(length=128), nullable=False),
    sa.Column('dialled_number', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('waited', sa.Double(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=64), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('linkedid')
    )
    op.create_index('ix_missed_at', 'missed_calls', ['at'], unique=False)
    op.create_index('ix_missed_state_at', 'missed_calls', ['state', 'at'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=True),
    sa.Column('agent_id', sa.String(length=64), nullable=True),
    sa.Column('unit_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('webhook_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('destination', sa.Text(), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dead_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key'),
    sqlite_autoincrement=True
    )
    op.create_index('ix_webhook_outbox_dead', 'webhook_outbox', ['unit'], unique=False,
                    sqlite_where=sa.text('dead_at IS NOT NULL'), postgresql_where=sa.text('dead_at IS NOT NULL'))
    op.create_index('ix_webhook_outbox_delivered', 'webhook_outbox', ['delivered_at'], unique=False)
    op.create_index('ix_webhook_outbox_pending', 'webhook_outbox', ['destination', 'next_attempt_at'], unique=False,
                    sqlite_where=sa.text('delivered_at IS NULL AND dead_at IS NULL'),
                    postgresql_where=sa.text('delivered_at IS NULL AND dead_at IS NULL'))
    op.create_table('api_tokens',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('digest')
    )
    op.create_index(op.f('ix_api_tokens_user_id'), 'api_tokens', ['user_id'], unique=False)
    op.create_table('call_events',
    sa.Column('linkedid', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['linkedid'], ['calls.linkedid'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('linkedid', 'seq')
    )
    op.create_table('case_calls',
    sa.Column('linkedid', sa.String(length=64), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('linkedid')
    )
    op.create_index(op.f('ix_case_calls_case_id'), 'case_calls', ['case_id'], unique=False)
    op.create_table('case_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=False),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_case_events_action', 'case_events', ['action', 'case_id'], unique=False)
    op.create_index(op.f('ix_case_events_case_id'), 'case_events', ['case_id'], unique=False)


def downgrade() -> None:
    raise NotImplementedError("0.1.0 is the first release: there is nothing to go down to")
