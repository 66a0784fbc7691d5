"""node drain in the database: set through the API or `trainyard drain`, read by the node

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 08:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tb_node', sa.Column('drain_dttm', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tb_node', sa.Column('drain_by', sa.String(length=128), nullable=True))
    op.add_column(
        'tb_node',
        sa.Column('drain_flag_file', sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column('tb_node', 'drain_flag_file')
    op.drop_column('tb_node', 'drain_by')
    op.drop_column('tb_node', 'drain_dttm')
