"""A node's heartbeat does not depend on how busy its supervisor is.

The fault is real: the test's own transaction takes an exclusive lock on the jobs table, so
the supervisor's reconcile (which reads this node's jobs every interval) waits on PostgreSQL
as it would behind a slow lock or a long sweep. The heartbeat must keep beating meanwhile;
a node that looks silent while it is only busy would have its jobs ended as node-lost.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Node
from tests.workers.conftest import wait_until

HOLD_S = 6.0
INTERVAL_S = 0.5


def _last_beat(db: sessionmaker[Session], node: str):  # type: ignore[no-untyped-def]
    with db() as session:
        return session.scalar(select(Node.last_seen_dttm).where(Node.name == node))


def test_heartbeat_goes_on_while_the_supervisor_waits_on_a_lock(
    workers, db: sessionmaker[Session], pg_engine: Engine, tmp_path: Path
) -> None:
    workers(
        "node-a",
        WORKER_RUNTIME="process",
        PROCESS_STATE_DIR=str(tmp_path / "state"),
        SUPERVISE_INTERVAL_S=str(INTERVAL_S),
    )
    wait_until(lambda: _last_beat(db, "node-a"), 30, "a first heartbeat")

    beats = set()
    with pg_engine.connect() as conn, conn.begin():
        conn.execute(text("LOCK TABLE tb_model_train_job IN ACCESS EXCLUSIVE MODE"))
        time.sleep(1.0)  # the supervisor is now stuck in its reconcile
        deadline = time.monotonic() + HOLD_S
        while time.monotonic() < deadline:
            beats.add(_last_beat(db, "node-a"))
            time.sleep(INTERVAL_S / 2)
    # At one beat per 0.5 s, a free heartbeat writes ~12 times in 6 s; a blocked one at most
    # the single beat that was in flight when the lock was taken.
    assert len(beats) >= HOLD_S / INTERVAL_S / 2, f"only {len(beats)} heartbeats during the hold"
