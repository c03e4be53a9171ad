"""the compliance officer's desk: users, sessions, reviews, four-eyes reversals, saved filters

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'users',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('password_hash', sa.Text(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('failed_logins', sa.Integer(), nullable=False),
        sa.Column('locked_until', TZ, nullable=True),
        sa.Column('created_at', TZ, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
        sa.UniqueConstraint('username', name=op.f('uq_users_username')),
    )
    op.create_table(
        'web_sessions',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', Id, nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=True),
        sa.Column('created_at', TZ, nullable=False),
        sa.Column('expires_at', TZ, nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_web_sessions_user_id_users')),
        sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_web_sessions')),
    )
    op.create_index('ix_web_sessions_user_id', 'web_sessions', ['user_id'])
    op.create_table(
        'finding_reviews',
        sa.Column('finding_id', sa.String(length=36), nullable=False),
        sa.Column('assignee', sa.String(length=64), nullable=True),
        sa.Column('assigned_by', sa.String(length=64), nullable=True),
        sa.Column('assigned_at', TZ, nullable=True),
        sa.Column('escalated', sa.Boolean(), nullable=False),
        sa.Column('decision', sa.String(length=16), nullable=True),
        sa.Column('decided_by', sa.String(length=64), nullable=True),
        sa.Column('decided_at', TZ, nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['finding_id'], ['findings.finding_id'],
                                name=op.f('fk_finding_reviews_finding_id_findings')),
        sa.PrimaryKeyConstraint('finding_id', name=op.f('pk_finding_reviews')),
    )
    op.create_index('ix_finding_reviews_assignee', 'finding_reviews', ['assignee'])
    op.create_table(
        'reversal_requests',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('finding_id', sa.String(length=36), nullable=False),
        sa.Column('requested_by', sa.String(length=64), nullable=False),
        sa.Column('requested_at', TZ, nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('decided_by', sa.String(length=64), nullable=True),
        sa.Column('decided_at', TZ, nullable=True),
        sa.ForeignKeyConstraint(['finding_id'], ['findings.finding_id'],
                                name=op.f('fk_reversal_requests_finding_id_findings')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reversal_requests')),
    )
    op.create_index('ix_reversal_requests_finding_id', 'reversal_requests', ['finding_id'])
    op.create_table(
        'saved_filters',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('user_id', Id, nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('query', sa.JSON(), nullable=False),
        sa.Column('created_at', TZ, nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_saved_filters_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_saved_filters')),
        sa.UniqueConstraint('user_id', 'name', name=op.f('uq_saved_filters_user_id_name')),
    )
    op.create_index('ix_findings_status_first_seen', 'findings', ['status', 'first_seen'])
    op.create_index('ix_findings_employer_id', 'findings', ['employer_id'])


def downgrade() -> None:
    op.drop_index('ix_findings_employer_id', table_name='findings')
    op.drop_index('ix_findings_status_first_seen', table_name='findings')
    op.drop_table('saved_filters')
    op.drop_index('ix_reversal_requests_finding_id', table_name='reversal_requests')
    op.drop_table('reversal_requests')
    op.drop_index('ix_finding_reviews_assignee', table_name='finding_reviews')
    op.drop_table('finding_reviews')
    op.drop_index('ix_web_sessions_user_id', table_name='web_sessions')
    op.drop_table('web_sessions')
    op.drop_table('users')
