"""employer notifications

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'notifications',
        sa.Column('notification_id', sa.String(length=36), nullable=False),
        sa.Column('digest_id', sa.String(length=36), nullable=False),
        sa.Column('employer_id', sa.String(length=20), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('recipient', sa.Text(), nullable=False),
        sa.Column('language', sa.String(length=2), nullable=False),
        sa.Column('digest', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('notification_id', name=op.f('pk_notifications')),
    )
    op.create_index('ix_notifications_status_next_attempt_at', 'notifications',
                    ['status', 'next_attempt_at'], unique=False)
    op.create_table(
        'notified_findings',
        sa.Column('finding_id', sa.String(length=36), nullable=False),
        sa.Column('digest_id', sa.String(length=36), nullable=False),
        sa.Column('employer_id', sa.String(length=20), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('notified_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['finding_id'], ['findings.finding_id'],
                                name=op.f('fk_notified_findings_finding_id_findings')),
        sa.PrimaryKeyConstraint('finding_id', name=op.f('pk_notified_findings')),
    )


def downgrade() -> None:
    op.drop_table('notified_findings')
    op.drop_index('ix_notifications_status_next_attempt_at', table_name='notifications')
    op.drop_table('notifications')
