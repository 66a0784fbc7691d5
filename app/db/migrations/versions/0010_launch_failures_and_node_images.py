"""launch failures named for what they are; the trainer images each node reports

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 08:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: the node runs any image reference (process runtime) or reports none (older worker).
    op.add_column('tb_node', sa.Column(
        'images',
        sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
        nullable=True,
    ))
    # "IMAGE_NOT_FOUND: image 'x' is not on node n1": why no container could run (the launcher's
    # words, never the container's), judged instead of the exit code 125.
    op.add_column('tb_model_train_job', sa.Column('launch_error', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('tb_model_train_job', 'launch_error')
    op.drop_column('tb_node', 'images')
