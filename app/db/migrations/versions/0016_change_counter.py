"""change counter: a sequence every commit that changes a model or a job advances

The list's answers are kept per API process until a model or a job changes
(app/api/answer_cache.py). A deferred constraint trigger on each of the two tables takes the
next value of `tb_change_seq` as the writing transaction commits (a TRUNCATE, at once): reading
`last_value` tells whether anything the list shows has changed, in one cheap round trip, and a
sequence takes no lock, so writers never wait for each other on it. Heartbeats and other
tables do not move it. SQLite (the embedded default) keeps no answers: nothing to add there.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 19:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("tb_model_master", "tb_model_train_job")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SEQUENCE IF NOT EXISTS tb_change_seq")
    op.execute(
        "CREATE OR REPLACE FUNCTION trainyard_note_change() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN PERFORM nextval('tb_change_seq'); RETURN NULL; END $$"
    )
    for table in _TABLES:
        # At commit (deferred), so the counter moves as late as possible before the rows
        # become visible; app/api/answer_cache.py covers the moment in between.
        op.execute(
            f"CREATE CONSTRAINT TRIGGER tg_{table}_changed "
            f"AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION trainyard_note_change()"
        )
        op.execute(
            f"CREATE TRIGGER tg_{table}_truncated AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION trainyard_note_change()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS tg_{table}_changed ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS tg_{table}_truncated ON {table}")
    op.execute("DROP FUNCTION IF EXISTS trainyard_note_change()")
    op.execute("DROP SEQUENCE IF EXISTS tb_change_seq")
