"""The node's log collector (workers/logcollector.py) with the process runtime (no Docker) and
real PostgreSQL: what a running job prints is stored while it runs, and a job silent for its
stallTimeoutS is ended STALLED, stopped, and its log kept. tests/workers/test_live_logs.py
runs the same through a worker process and the Docker engine."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from app import jobfiles, joblogs
from app.config import Settings
from app.db.models import Job, Model
from app.db.session import transaction
from app.domain import layout
from tests.integration.helpers import create_model
from tests.metrics.conftest import new_job
from workers.context import WorkerContext, build_context
from workers.ending import observe_end
from workers.logcollector import LogCollector
from workers.runtime.base import LABEL_JOB_ID, LaunchSpec
from workers.runtime.process import ProcessRuntime
from workers.settings import NodeSettings

NODE = "logs-node"


@pytest.fixture
def worker_ctx(settings: Settings, tmp_path: Path) -> Iterator[WorkerContext]:
    node = replace(NodeSettings.from_env(), node=NODE, state_dir=tmp_path / "p", stop_grace_s=2)
    runtime = ProcessRuntime(tmp_path / "p", NODE, installation="logs-test")
    ctx = build_context(settings, node, runtime)
    yield ctx
    for state in runtime.list_managed(NODE):
        runtime.remove(state.name)
    ctx.engine.dispose()


def _run(
    client: FlaskClient, db: sessionmaker[Session], ctx: WorkerContext, code: str, **model: object
) -> tuple[str, int, str]:
    """A RUNNING job of this node whose "container" runs `code` with Python."""
    created = create_model(client, **model)
    with transaction(db) as session:
        job = new_job(session, session.get_one(Model, created["id"]), "TRAIN", "RUNNING")
        job.node = NODE
        session.flush()
        job.container_name = name = f"logs-test-job-{job.id}"
        job_id = job.id
    output = layout.model_dir(ctx.settings.output_root, created["uuid"])
    (output / "train").mkdir(parents=True)
    ctx.runtime.launch(
        LaunchSpec(
            name=name, image="-", argv=[], labels={LABEL_JOB_ID: str(job_id)},
            output_dir=output, dataset_dir=None, entrypoint=[sys.executable, "-c", code],
        )
    )  # fmt: skip
    return created["uuid"], job_id, name


def _stored(ctx: WorkerContext, uid: str, job_id: int) -> bytes:
    folder = joblogs.log_dir(jobfiles.job_root(ctx.settings), uid, job_id)
    return joblogs.read(folder, 0, 1 << 20).data


def test_what_a_running_job_prints_is_stored_while_it_runs(
    client: FlaskClient, db: sessionmaker[Session], worker_ctx: WorkerContext
) -> None:
    code = "import time\nfor i in range(3): print(f'step {i}', flush=True)\ntime.sleep(30)"
    uid, job_id, name = _run(client, db, worker_ctx, code)
    collector = LogCollector(worker_ctx)
    deadline = time.monotonic() + 15
    while _stored(worker_ctx, uid, job_id) != b"step 0\nstep 1\nstep 2\n":
        assert time.monotonic() < deadline, _stored(worker_ctx, uid, job_id)
        collector.tick()
        time.sleep(0.2)
    assert worker_ctx.runtime.inspect(name).running  # stored before the process ended
    collector.tick()  # nothing new: nothing stored twice
    assert _stored(worker_ctx, uid, job_id) == b"step 0\nstep 1\nstep 2\n"


def test_a_silent_job_is_ended_stalled_stopped_and_its_log_kept(
    client: FlaskClient, db: sessionmaker[Session], worker_ctx: WorkerContext
) -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('got term', flush=True), sys.exit(143)))\n"
        "print('loading data', flush=True)\ntime.sleep(60)"
    )
    uid, job_id, name = _run(client, db, worker_ctx, code, stallTimeoutS=1)
    collector = LogCollector(worker_ctx)
    deadline = time.monotonic() + 20
    stalled: list[int] = []
    while not stalled:
        assert time.monotonic() < deadline, "the silent job was never ended"
        stalled = collector.tick()
        time.sleep(0.2)
    assert stalled == [job_id]
    with db() as session:
        job = session.get_one(Job, job_id)
        model = session.get_one(Model, job.model_id)
        assert (job.status_cd, job.exit_code) == ("FAILED", -1)
        assert model.step1_state == "ERROR"
        assert model.last_error == "STALLED: no log output and no progress.json change for 1 s"
        assert job.container_exit_code == 143 and job.container_ended_dttm is not None
        assert job.log_tail == "loading data\ngot term"
    assert worker_ctx.runtime.inspect(name) is None  # recorded, then removed
    assert _stored(worker_ctx, uid, job_id) == b"loading data\ngot term\n"


def test_a_job_that_makes_progress_is_not_stalled(
    client: FlaskClient, db: sessionmaker[Session], worker_ctx: WorkerContext
) -> None:
    # Silent, but its progress.json changes every half second.
    code = (
        "import json, time\nfor i in range(40):\n"
        "    open('train/progress.json', 'w').write(json.dumps({'epochs_done': i}))\n"
        "    time.sleep(0.5)"
    )
    _uid, job_id, name = _run(client, db, worker_ctx, code, stallTimeoutS=1)
    collector = LogCollector(worker_ctx)
    until = time.monotonic() + 4
    while time.monotonic() < until:
        assert collector.tick() == []
        time.sleep(0.2)
    with db() as session:
        assert session.get_one(Job, job_id).status_cd == "RUNNING"
    assert worker_ctx.runtime.inspect(name).running


def test_the_end_is_recorded_whatever_the_job_left_beside_its_log(
    client: FlaskClient, db: sessionmaker[Session], worker_ctx: WorkerContext
) -> None:
    """The job can write its log folder (it is in the model folder it has mounted): a cursor
    it forged spoils at most its own log; its end is recorded and its container removed."""
    uid, job_id, name = _run(client, db, worker_ctx, "print('done', flush=True)")
    folder = joblogs.log_dir(jobfiles.job_root(worker_ctx.settings), uid, job_id)
    jobfiles.make_dirs(folder)
    # All digits, yet more than int() converts (sys.get_int_max_str_digits: 4300).
    jobfiles.write_file(folder / "cursor", b"9" * 5000)
    deadline = time.monotonic() + 15
    while not (state := worker_ctx.runtime.inspect(name)).ended:
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.1)
    observe_end(worker_ctx, job_id, state)
    with db() as session:
        job = session.get_one(Job, job_id)
        assert job.container_ended_dttm is not None and job.container_exit_code == 0
        assert job.log_tail == "done"
        assert job.container_gone_dttm is not None
    assert worker_ctx.runtime.inspect(name) is None
