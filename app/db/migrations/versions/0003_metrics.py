"""metrics: typed metric tables keyed by epoch, and their series headers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 10:15:58.938495

The three metric tables are recreated rather than altered: nothing wrote them before this
revision (ingest arrives with it), and the new primary key (model_id, epoch, step) replaces the
surrogate id. They carry no foreign keys on purpose (see app/db/models.py `_MetricRow`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

METRIC_SLOTS = 32  # app.db.models.METRIC_SLOTS at this revision
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TABLES = {
    "tb_model_metrics_train": ("model_id", "epoch", "step"),
    "tb_model_metrics_validation": ("model_id", "epoch", "step"),
    "tb_model_metrics_test": ("model_id", "job_id", "epoch", "step"),
}


def _metric_columns() -> list[sa.Column]:
    return [
        sa.Column("model_id", ID, autoincrement=False, nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), server_default="-1", nullable=False),
        sa.Column("job_id", ID, nullable=False),
        *(sa.Column(f"m{i:02d}", sa.Double(), nullable=True) for i in range(1, METRIC_SLOTS + 1)),
        sa.Column(
            "extra", sa.JSON().with_variant(sa.ARRAY(sa.Double()), "postgresql"), nullable=True
        ),
    ]


def upgrade() -> None:
    for table, key in TABLES.items():
        op.drop_index(op.f(f"ix_{table}_model_id"), table_name=table)
        op.drop_table(table)
        op.create_table(table, *_metric_columns(), sa.PrimaryKeyConstraint(*key))
    op.create_table(
        "tb_model_metric_series",
        sa.Column("model_id", ID, nullable=False),
        sa.Column("split", sa.String(length=8), nullable=False),
        sa.Column("job_id", ID, autoincrement=False, nullable=False),
        sa.Column("metric_names", JSON, nullable=False),
        sa.Column("has_step", sa.Boolean(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("summary", JSON, nullable=True),
        sa.Column("source_bytes", ID, nullable=True),
        sa.Column("source_lines", sa.Integer(), nullable=True),
        sa.Column("source_digest", sa.String(length=64), nullable=True),
        sa.Column(
            "updated_dttm",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["model_id"], ["tb_model_master.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id", "split", "job_id"),
    )


def downgrade() -> None:
    """Back to the 0002 shape (one JSON `metrics` column per row); metric rows are dropped."""
    op.drop_table("tb_model_metric_series")
    for table in TABLES:
        op.drop_table(table)
        op.create_table(
            table,
            sa.Column("id", ID, autoincrement=True, nullable=False),
            sa.Column("model_id", ID, nullable=False),
            sa.Column("job_id", ID, nullable=False),
            sa.Column("epoch", sa.Integer(), nullable=False),
            sa.Column("step", sa.Integer(), nullable=True),
            sa.Column("metrics", JSON, nullable=False),
            sa.ForeignKeyConstraint(["job_id"], ["tb_model_train_job.id"], ondelete="CASCADE"),
            sa.ForeignKeyConstraint(["model_id"], ["tb_model_master.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f(f"ix_{table}_model_id"), table, ["model_id"], unique=False)
