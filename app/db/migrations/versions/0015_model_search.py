"""model search: trigram indexes on modelVer and memo (the list's `q=`, PostgreSQL only)

The list's search is `model_ver ILIKE '%x%' OR memo ILIKE '%x%'`; a B-tree cannot serve a
pattern that starts with %, a pg_trgm GIN index can (for 3 characters or more; shorter terms
scan). pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it.
Where it cannot be created the indexes are skipped and search still works, by a scan.
SQLite (the embedded default) has no such index: its search scans, fine at its scale.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 12:00:00.000000
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)
_INDEXES = {"ix_model_model_ver_trgm": "model_ver", "ix_model_memo_trgm": "memo"}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        log.warning("pg_trgm not available (%s): model search will scan, unindexed", exc)
        return
    savepoint.commit()
    for name, column in _INDEXES.items():
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON tb_model_master "
            f"USING gin ({column} gin_trgm_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in _INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
