"""model runtime settings: shm size, environment, network opt-in, optional dataset

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 08:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Server defaults: the models that exist keep what they had (the default dataset, no env,
    # no network, the default shm).
    op.add_column(
        'tb_model_master',
        sa.Column('uses_dataset', sa.Boolean(), server_default='true', nullable=False),
    )
    op.add_column('tb_model_master', sa.Column('shm_size_mb', sa.Integer(), nullable=True))
    op.add_column(
        'tb_model_master',
        sa.Column(
            'env',
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
            server_default='{}',
            nullable=False,
        ),
    )
    op.add_column(
        'tb_model_master',
        sa.Column('network', sa.Boolean(), server_default='false', nullable=False),
    )


def downgrade() -> None:
    op.drop_column('tb_model_master', 'network')
    op.drop_column('tb_model_master', 'env')
    op.drop_column('tb_model_master', 'shm_size_mb')
    op.drop_column('tb_model_master', 'uses_dataset')
