"""webhooks: a model's own endpoint, the events of status changes and their deliveries

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 12:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.add_column('tb_model_master', sa.Column('webhook_url', sa.String(length=2000), nullable=True))
    op.add_column('tb_model_master', sa.Column('webhook_format', sa.String(length=8), nullable=True))
    op.create_table(
        'tb_webhook_event',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('event_id', sa.Uuid(), nullable=False),
        sa.Column('model_id', _ID, nullable=False),
        sa.Column('job_id', _ID, nullable=True),
        sa.Column('payload', _JSON, nullable=False),
        sa.Column('created_dttm', sa.DateTime(timezone=True),
                  server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['tb_model_master.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id'),
    )
    op.create_table(
        'tb_webhook_delivery',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('event_id', _ID, nullable=False),
        sa.Column('model_id', _ID, nullable=False),
        sa.Column('target', sa.String(length=16), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('format', sa.String(length=8), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_attempt_dttm', sa.DateTime(timezone=True), nullable=True),
        sa.Column('enqueued_dttm', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_try_dttm', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('delivered_dttm', sa.DateTime(timezone=True), nullable=True),
        sa.Column('dead_dttm', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_dttm', sa.DateTime(timezone=True),
                  server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['tb_webhook_event.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_tb_webhook_delivery_event_id', 'tb_webhook_delivery', ['event_id'])
    op.create_index('ix_webhook_delivery_model', 'tb_webhook_delivery', ['model_id', 'id'])
    op.create_index(
        'ix_webhook_delivery_status_due', 'tb_webhook_delivery', ['status', 'next_attempt_dttm']
    )


def downgrade() -> None:
    op.drop_table('tb_webhook_delivery')
    op.drop_table('tb_webhook_event')
    op.drop_column('tb_model_master', 'webhook_format')
    op.drop_column('tb_model_master', 'webhook_url')
