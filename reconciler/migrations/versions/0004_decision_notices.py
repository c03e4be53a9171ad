"""decision notices: what the desk decided, waiting to be told to the employer

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'decision_notices',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('finding_id', sa.String(length=36), nullable=False),
        sa.Column('employer_id', sa.String(length=20), nullable=False),
        sa.Column('decision', sa.String(length=16), nullable=False),
        sa.Column('outcome', sa.Text(), nullable=False),
        sa.Column('decided_at', TZ, nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('digest_id', sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(['finding_id'], ['findings.finding_id'],
                                name=op.f('fk_decision_notices_finding_id_findings')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_decision_notices')),
    )
    op.create_index('ix_decision_notices_status', 'decision_notices', ['status'])


def downgrade() -> None:
    op.drop_index('ix_decision_notices_status', table_name='decision_notices')
    op.drop_table('decision_notices')
