"""Redis killed (SIGKILL, by PID) and started again empty while a worker runs training jobs and
has launch tasks in flight: the worker stays up, reconnects, and every job ends once.

Issue 12's redis_lost finding (tests/chaos): under load the worker exited. The cause was in the
consumer's clean-up of the lost connection (workers/celery_app.py, `_RedisChannel`): it fails
when the channel still holds unacknowledged messages, i.e. while tasks run (`task_acks_late`).
To have tasks running at the instant Redis dies, not only by luck of timing, this test holds
the lock every claim takes on the node's row (workers/capacity.py `lock_node`): the launch
tasks of the last jobs wait inside their claim, their messages unacknowledged, while Redis is
killed and started again. The lock is then released and those launches go on.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.session import make_engine
from app.services.publisher import CeleryPublisher
from tests.conftest import TEST_DATABASE_URL
from tests.integration.helpers import create_model
from tests.integration.test_outbox import RedisServer
from tests.workers.conftest import wait_for_status, wait_running, wait_until

NODE = "node-a"
PARAMS = {"total_epoch": 8, "val_interval": 2, "epoch_seconds": 1}
RUNNING_FIRST = 2  # jobs whose containers run when Redis dies
LAUNCHING = 2  # jobs whose launch tasks are inside their claim when Redis dies


@pytest.fixture
def spare_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def _claims_waiting(conn) -> int:
    """Claims of the worker blocked on the node row's lock (`SELECT … FOR UPDATE`)."""
    return int(
        conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query ILIKE '%FROM tb_node%' AND query ILIKE '%FOR UPDATE%'"
            )
        ).scalar_one()
    )


def test_worker_survives_redis_killed_and_restarted_empty_with_tasks_running(
    client: FlaskClient,
    app: Flask,
    db: sessionmaker[Session],
    workers,
    trainer_image: str,
    spare_redis: RedisServer,
    settings: Settings,
) -> None:
    app.extensions["trainyard"].publisher = CeleryPublisher(spare_redis.url, timeout_s=2)
    worker = workers(
        NODE,
        BROKER_URL=spare_redis.url,
        NODE_MAX_JOBS="8",
        DEFAULT_JOB_MEMORY_MB="256",
        DB_LOCK_TIMEOUT_S="30",  # the claims wait out the test's hold of the node row
    )
    runs: dict[str, int] = {}
    for _ in range(RUNNING_FIRST):
        uid = create_model(client, params=PARAMS)["uuid"]
        runs[uid] = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]["id"]
    for uid in runs:
        wait_running(client, uid)

    engine = make_engine(TEST_DATABASE_URL)
    try:
        observer = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        with engine.connect() as holder, observer:  # autocommit: a fresh pg_stat_activity
            holder.execute(text("SELECT 1 FROM tb_node WHERE name = :n FOR UPDATE"), {"n": NODE})
            for _ in range(LAUNCHING):
                uid = create_model(client, params=PARAMS)["uuid"]
                runs[uid] = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]["id"]
            wait_until(
                lambda: _claims_waiting(observer) >= LAUNCHING, 30, "the launches inside claims"
            )

            assert spare_redis.process is not None
            before = len(worker.log())
            os.kill(spare_redis.process.pid, signal.SIGKILL)  # by PID; comes back empty
            spare_redis.process.wait(10)
            time.sleep(2)
            spare_redis.start()
            time.sleep(3)  # the consumer has noticed and is reconnecting
            holder.rollback()  # the claims go on
    finally:
        engine.dispose()

    assert worker.process is not None
    # Before the fix the consumer's clean-up raised ("Unrecoverable error") and the worker
    # shut down (slowly: its tasks were still running); now it connects to the new Redis.
    wait_until(
        lambda: any(
            line in worker.log()[before:] for line in ("Connected to", "Unrecoverable error")
        )
        or worker.process.poll() is not None,
        60,
        "the worker to reconnect (or to fail)",
    )
    after = worker.log()[before:]
    assert "Unrecoverable error" not in after, after[after.index("Unrecoverable") :][:1500]
    assert worker.process.poll() is None, f"the worker exited ({worker.process.returncode})"
    for uid in runs:
        done = wait_for_status(client, uid, "statusCd", "COMPLETED", 120)
        assert [j["statusCd"] for j in done["jobs"]] == ["SUCCESS"], "one job, ended once"
        assert done["progress"]["epochsDone"] == PARAMS["total_epoch"]
    with db() as session:
        claims = dict(
            session.execute(
                text("SELECT id, launch_attempts FROM tb_model_train_job WHERE id = ANY(:ids)"),
                {"ids": list(runs.values())},
            ).all()
        )
        assert claims == {job_id: 1 for job_id in runs.values()}, "each job claimed once"
        for uid in runs:
            stored = session.execute(
                text(
                    "SELECT count(*) FROM tb_model_metrics_train t"
                    " JOIN tb_model_master m ON m.id = t.model_id WHERE m.uuid = :u"
                ),
                {"u": uid},
            ).scalar_one()
            csv_path = settings.output_root / uid / "train" / "train.csv"
            on_disk = len(csv_path.read_text().splitlines()) - 1  # less the header
            assert stored == on_disk > 0, f"model {uid}: every train.csv row stored, once"
    assert worker.process.poll() is None, "the worker is still up at the end"
