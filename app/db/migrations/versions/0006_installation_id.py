"""installation id

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 05:30:00

One row, made here with the schema: the id every container of this installation carries in its
name and labels. Containers of jobs that were live before this upgrade carry neither, so drain
the nodes before upgrading (docs/deployment.md).
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        'tb_installation',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('created_dttm', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.bulk_insert(table, [{'id': uuid.uuid4().hex, 'created_dttm': datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table('tb_installation')
