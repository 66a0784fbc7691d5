"""retry policy: a model's automatic retry policy and sub-status, each attempt's retry facts

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    op.add_column('tb_model_master', sa.Column('retry_policy', _JSON, nullable=True))
    op.add_column('tb_model_master', sa.Column('retry_status', sa.Text(), nullable=True))
    op.add_column('tb_model_train_job', sa.Column('retry_number', sa.Integer(), nullable=True))
    op.add_column('tb_model_train_job', sa.Column('end_cause', sa.String(32), nullable=True))
    op.add_column('tb_model_train_job', sa.Column('retry_note', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('tb_model_train_job', 'retry_note')
    op.drop_column('tb_model_train_job', 'end_cause')
    op.drop_column('tb_model_train_job', 'retry_number')
    op.drop_column('tb_model_master', 'retry_status')
    op.drop_column('tb_model_master', 'retry_policy')
