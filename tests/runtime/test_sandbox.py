"""The sandbox of trainer/README.md is the applied one (issue 11, "Must hold").

The README's table must say what app/domain/sandbox.py says (no Docker needed), and a job
launched the way a node launches it (API → database → launcher → DockerRuntime, in-process,
real PostgreSQL and Docker engine) must get exactly those values: `docker inspect` and a look
from inside the running container. Docker tests run under /tmp/trainyard-heavy.lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import Job, Model
from app.db.session import transaction
from app.domain import layout, sandbox
from app.services.queries import installation_id
from tests.integration.helpers import create_model
from tests.runtime.helpers import wait_until
from tests.workers.conftest import model_of
from workers.completion import complete_job
from workers.context import WorkerContext, build_context
from workers.launcher import launch_job
from workers.runtime.base import scratch_path
from workers.runtime.docker import DockerRuntime
from workers.scratch import enforce_scratch_limit
from workers.settings import NodeSettings

README = Path(__file__).resolve().parents[2] / "trainer" / "README.md"
TRAINER_IMAGE = "trainyard/trainer:latest"
MiB = 1024 * 1024
# Long epochs: the container runs while the test looks at it.
SLOW = {"total_epoch": 3, "val_interval": 1, "epoch_seconds": 30}


def _readme_table() -> dict[str, str]:
    section = README.read_text().split("\n## Sandbox\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("Setting", "---"):
            rows[cells[0]] = cells[1]
    return rows


def test_the_readme_table_says_what_the_code_says() -> None:
    assert _readme_table() == sandbox.documented_defaults()


def test_the_readme_names_every_reserved_env_name() -> None:
    section = README.read_text().split("\n## Sandbox\n", 1)[1].split("\n## ", 1)[0]
    for name in sandbox.RESERVED_ENV_NAMES:
        assert f"`{name}`" in section, name
    for prefix in sandbox.RESERVED_ENV_PREFIXES:
        assert f"`{prefix}*`" in section, prefix


def test_default_shm_follows_the_memory_limit() -> None:
    assert sandbox.default_shm_mb(4096) == 2048
    assert sandbox.default_shm_mb(16384) == 8192
    assert sandbox.default_shm_mb(1024) == 1024  # the floor
    assert sandbox.default_shm_mb(512) == 512  # never above the memory limit
    assert sandbox.shm_mb(300, 4096) == 300  # the model's own value


# --- a real container -------------------------------------------------------------------------


@pytest.fixture
def docker_node(
    settings: Settings, tmp_path: Path, db: sessionmaker[Session], docker_client: Any
) -> Iterator[Callable[..., WorkerContext]]:
    """An in-process node on the real engine; the test drives each launch itself."""
    from docker.errors import ImageNotFound

    try:
        docker_client.images.get(TRAINER_IMAGE)
    except ImageNotFound:
        pytest.skip(f"{TRAINER_IMAGE} is not built (make images)")
    made: list[WorkerContext] = []
    with db() as session:
        installation = installation_id(session)
    for folder in (settings.output_root, settings.dataset_root):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)

    def make(settings_changes: dict[str, Any] | None = None, **node_changes: Any) -> WorkerContext:
        scratch_root = tmp_path / "scratch"
        node = replace(
            NodeSettings.from_env(),
            node="sandbox-node",
            scratch_root=scratch_root,
            default_memory_mb=sandbox.DEFAULT_JOB_MEMORY_MB,
            memory_mb=64 * 1024,
            max_jobs=4,
            **node_changes,
        )
        runtime = DockerRuntime(
            docker_client, node=node.node, installation=installation, scratch_root=scratch_root
        )
        ctx = build_context(settings.with_overrides(**(settings_changes or {})), node, runtime)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        with ctx.db() as session:
            for name in session.scalars(select(Job.container_name)):
                ctx.runtime.remove(name)
        ctx.engine.dispose()


def _launch(client: FlaskClient, db: sessionmaker[Session], ctx: WorkerContext, **model: Any):  # type: ignore[no-untyped-def]
    network = model.pop("network", False)
    created = create_model(client, **model)
    if network:  # the API of this test refuses it (JOB_NETWORK_ALLOWED=0); one that allows
        # it stores just this (tests/integration/test_api_runtime_settings.py)
        with transaction(db) as session:
            session.execute(update(Model).where(Model.uuid == created["uuid"]).values(network=True))
    assert client.post(f"/api/train/run/{created['uuid']}").status_code == 200
    with db() as session:
        job = session.scalars(select(Job).order_by(Job.id.desc())).first()
        assert job is not None
        job_id, name = job.id, job.container_name
    answer = launch_job(ctx, job_id)
    assert answer.startswith("started"), answer
    return created, job_id, name


def _env(attrs: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in attrs["Config"]["Env"])


def test_a_job_container_gets_every_documented_default(
    client: FlaskClient,
    db: sessionmaker[Session],
    docker_node: Callable[..., WorkerContext],
    docker_client: Any,
) -> None:
    ctx = docker_node()
    _, _, name = _launch(client, db, ctx, params=SLOW, env={"OMP_NUM_THREADS": "3"})
    attrs = docker_client.api.inspect_container(name)
    host, env = attrs["HostConfig"], _env(attrs)

    # Root filesystem: read-only
    assert host["ReadonlyRootfs"] is True
    # User: 1000:1000, USER = LOGNAME = trainer
    assert attrs["Config"]["User"] == sandbox.CONTAINER_USER == "1000:1000"
    assert env["USER"] == env["LOGNAME"] == sandbox.CONTAINER_USERNAME == "trainer"
    # HOME: /tmp
    assert env["HOME"] == sandbox.CONTAINER_HOME == "/tmp"
    # Processes: 512
    assert host["PidsLimit"] == sandbox.PIDS_LIMIT == 512
    # Memory: 4096 MB, no swap
    assert host["Memory"] == host["MemorySwap"] == sandbox.DEFAULT_JOB_MEMORY_MB * MiB
    assert sandbox.DEFAULT_JOB_MEMORY_MB == 4096
    # /tmp: tmpfs, 512 MB
    assert f"size={sandbox.TMP_TMPFS_MB}m" in host["Tmpfs"]["/tmp"].split(",")
    assert sandbox.TMP_TMPFS_MB == 512
    # /dev/shm: half of 4096 MB
    assert host["ShmSize"] == sandbox.default_shm_mb(4096) * MiB == 2048 * MiB
    # Network: none
    assert host["NetworkMode"] == "none"
    # Scratch: /scratch on the node's disk, TMPDIR, TRAINYARD_SCRATCH_DIR
    scratch = scratch_path(ctx.node.scratch_root, name)
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts[sandbox.SCRATCH_MOUNT]["Source"] == str(scratch)
    assert mounts[sandbox.SCRATCH_MOUNT]["RW"] is True
    assert env["TMPDIR"] == env[sandbox.SCRATCH_ENV] == sandbox.SCRATCH_MOUNT == "/scratch"
    assert ctx.node.scratch_max_mb == sandbox.DEFAULT_SCRATCH_MAX_MB
    # Environment: the model's env
    assert env["OMP_NUM_THREADS"] == "3"
    # Capabilities: all dropped, no-new-privileges
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    # GPUs: only the leased ones (none here)
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"

    # From inside: who the trainer is, where it may write, how big /dev/shm is.
    probe = (
        "import getpass, os, tempfile\n"
        "def writable(p):\n"
        "    try:\n"
        "        open(os.path.join(p, 'probe'), 'w').close(); return True\n"
        "    except OSError:\n"
        "        return False\n"
        "st = os.statvfs('/dev/shm')\n"
        "print(__import__('json').dumps({'user': getpass.getuser(), 'uid': os.getuid(),"
        " 'gid': os.getgid(), 'tmpdir': tempfile.gettempdir(), 'home': os.path.expanduser('~'),"
        " 'shm_mb': st.f_blocks * st.f_frsize // 1048576, 'root': writable('/'),"
        " 'opt': writable('/opt'), 'tmp': writable('/tmp'), 'scratch': writable('/scratch')}))"
    )
    result = docker_client.containers.get(name).exec_run(["python3", "-c", probe])
    assert result.exit_code == 0, result.output
    seen = json.loads(result.output.decode().strip().splitlines()[-1])
    assert seen == {
        "user": "trainer",
        "uid": 1000,
        "gid": 1000,
        "tmpdir": "/scratch",
        "home": "/tmp",
        "shm_mb": 2048,
        "root": False,
        "opt": False,
        "tmp": True,
        "scratch": True,
    }
    assert (scratch / "probe").exists(), "what /scratch holds is the node's folder"

    ctx.runtime.remove(name)
    assert not scratch.exists(), "the scratch goes with the container"


def test_a_models_settings_reach_its_container(
    client: FlaskClient,
    db: sessionmaker[Session],
    docker_node: Callable[..., WorkerContext],
    docker_client: Any,
) -> None:
    ctx = docker_node({"job_network_allowed": True})
    _, _, name = _launch(
        client,
        db,
        ctx,
        params=SLOW,
        shmSizeMb=300,
        resources={"memory_mb": 1024},
        network=True,
        dataset=None,
    )
    attrs = docker_client.api.inspect_container(name)
    host = attrs["HostConfig"]
    assert host["ShmSize"] == 300 * MiB
    assert host["Memory"] == 1024 * MiB
    assert host["NetworkMode"] == "bridge"
    args = attrs["Args"]
    # No dataset: nothing mounted, neither --dataset-dir nor --split-dir.
    assert "--dataset-dir" not in args and "--split-dir" not in args, args
    assert {m["Destination"] for m in attrs["Mounts"]} == {
        str(ctx.settings.output_root.resolve() / attrs["Config"]["Labels"]["trainyard.model_uuid"]),
        sandbox.SCRATCH_MOUNT,
    }


def test_network_is_refused_by_a_node_that_forbids_it(
    client: FlaskClient, db: sessionmaker[Session], docker_node: Callable[..., WorkerContext]
) -> None:
    """A model created while the deployment allowed a network, launched by a node that does
    not (JOB_NETWORK_ALLOWED=0): the launch fails, saying why, and nothing runs."""
    ctx = docker_node()
    created = create_model(client, params=SLOW)
    with transaction(db) as session:  # as the API stored it when JOB_NETWORK_ALLOWED was 1
        session.execute(update(Model).values(network=True))
    assert client.post(f"/api/train/run/{created['uuid']}").status_code == 200
    with db() as session:
        job_id = session.scalars(select(Job.id)).one()
    answer = launch_job(ctx, job_id)
    assert answer.startswith("launch failed: network:"), answer
    assert "JOB_NETWORK_ALLOWED=0" in answer
    with db() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.container_exit_code == 125
        assert job.container_gone_dttm is not None


def test_a_scratch_over_the_limit_ends_the_job_and_keeps_its_outputs(
    client: FlaskClient,
    db: sessionmaker[Session],
    docker_node: Callable[..., WorkerContext],
    docker_client: Any,
) -> None:
    ctx = docker_node(scratch_max_mb=2)
    fast_then_slow = {"total_epoch": 3, "val_interval": 1, "epoch_seconds": 1}
    created, job_id, name = _launch(client, db, ctx, params=fast_then_slow)
    train = layout.train_dir(ctx.settings.output_root.resolve(), created["uuid"])
    wait_until(lambda: (train / "progress.json").exists(), 30)
    # Not yet over: the check leaves it alone.
    assert enforce_scratch_limit(ctx) == []
    container = docker_client.containers.get(name)
    wrote = container.exec_run(["sh", "-c", "head -c 3145728 /dev/zero > /scratch/big"])
    assert wrote.exit_code == 0, wrote.output
    scratch = scratch_path(ctx.node.scratch_root, name)
    assert (scratch / "big").stat().st_size == 3 * MiB

    assert enforce_scratch_limit(ctx) == [job_id]

    model = model_of(client, created["uuid"])
    assert model["step1Status"] == "ERROR"
    assert model["lastError"].startswith(sandbox.SCRATCH_LIMIT_CODE), model["lastError"]
    assert "JOB_SCRATCH_MAX_MB=2" in model["lastError"]
    assert ctx.runtime.inspect(name) is None, "stopped and removed"
    assert not scratch.exists(), "its scratch removed with it"
    assert model["progress"]["epochsDone"] >= 1, "the epochs it finished are kept"
    assert (train / "train.csv").read_text().count("\n") >= 2, "header and a row"
    complete_job(ctx.db, ctx.settings, None, job_id)  # what the outbox message would run
    assert model_of(client, created["uuid"])["step1Status"] == "ERROR"
