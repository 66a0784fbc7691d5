"""bounded retries: attempt counts on jobs, backoff and give-up on outbox rows

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 05:00:00

Launch and completion attempts are counted in the job row so that a worker restart does not
reset them (issue 10, item 4); the outbox relay's backoff and give-up are in its rows too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB = "tb_model_train_job"
OUTBOX = "tb_outbox"


def upgrade() -> None:
    for column in ("launch_attempts", "completion_attempts"):
        op.add_column(JOB, sa.Column(column, sa.Integer(), server_default="0", nullable=False))
    op.add_column(JOB, sa.Column("last_attempt_dttm", sa.DateTime(timezone=True), nullable=True))
    op.add_column(JOB, sa.Column("last_attempt_error", sa.Text(), nullable=True))
    op.add_column(OUTBOX, sa.Column("next_attempt_dttm", sa.DateTime(timezone=True), nullable=True))
    op.add_column(OUTBOX, sa.Column("given_up_dttm", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in ("given_up_dttm", "next_attempt_dttm"):
        op.drop_column(OUTBOX, column)
    for column in ("last_attempt_error", "last_attempt_dttm"):
        op.drop_column(JOB, column)
    for column in ("completion_attempts", "launch_attempts"):
        op.drop_column(JOB, column)
