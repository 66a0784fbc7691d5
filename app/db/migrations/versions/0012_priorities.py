"""priorities: a model's launch priority and each job's (higher launches first)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 08:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'tb_model_master',
        sa.Column('priority', sa.Integer(), server_default='0', nullable=False),
    )
    op.add_column(
        'tb_model_train_job',
        sa.Column('priority', sa.Integer(), server_default='0', nullable=False),
    )


def downgrade() -> None:
    op.drop_column('tb_model_train_job', 'priority')
    op.drop_column('tb_model_master', 'priority')
