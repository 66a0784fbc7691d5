"""stall timeout: a model's jobs that print nothing and make no progress this long are ended

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-30 08:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tb_model_master', sa.Column('stall_timeout_s', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('tb_model_master', 'stall_timeout_s')
