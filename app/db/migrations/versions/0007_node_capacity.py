"""node capacity: the limits each node runs under, written with its heartbeat

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 05:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tb_node', sa.Column('max_jobs', sa.Integer(), nullable=True))
    op.add_column('tb_node', sa.Column('memory_mb', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('tb_node', 'memory_mb')
    op.drop_column('tb_node', 'max_jobs')
