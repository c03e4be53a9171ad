"""the scheduler lease (one leader across replicas) and the record of connector pulls

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'scheduler_lease',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=200), nullable=False),
        sa.Column('epoch', sa.BigInteger(), nullable=False),
        sa.Column('acquired_at', TZ, nullable=False),
        sa.Column('renewed_at', TZ, nullable=False),
        sa.Column('expires_at', TZ, nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduler_lease')),
    )
    op.create_table(
        'pull_runs',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('connector', sa.String(length=64), nullable=False),
        sa.Column('trigger', sa.String(length=16), nullable=False),
        sa.Column('holder', sa.String(length=200), nullable=False),
        sa.Column('epoch', sa.BigInteger(), nullable=False),
        sa.Column('started_at', TZ, nullable=False),
        sa.Column('finished_at', TZ, nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('deliveries', sa.Integer(), nullable=False),
        sa.Column('rows_new', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pull_runs')),
    )
    op.create_index('ix_pull_runs_connector_started_at', 'pull_runs',
                    ['connector', 'started_at'])


def downgrade() -> None:
    op.drop_index('ix_pull_runs_connector_started_at', table_name='pull_runs')
    op.drop_table('pull_runs')
    op.drop_table('scheduler_lease')
