"""`trainyard worker --check`: could this node start? Settings, database, broker, runtime.

Each check prints one line (`ok` or `FAIL`, then what was found or what to do); the exit
status is 0 only when every check passed. Nothing is started and no job is touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from app.config import Settings, load_settings
from workers.settings import NodeSettings

RUNTIMES = ("docker", "process", "auto")


def _host(url: str) -> str:
    """A URL without its credentials, for messages."""
    return url.rpartition("@")[2]


def _settings() -> tuple[Settings, NodeSettings]:
    settings = load_settings()
    node = NodeSettings.from_env()
    if node.runtime not in RUNTIMES:
        raise ValueError(f"WORKER_RUNTIME must be one of {', '.join(RUNTIMES)}: {node.runtime!r}")
    return settings, node


def _database(settings: Settings) -> str:
    from app.db.migrate import schema_revisions

    current, heads = schema_revisions(settings.database_url)
    where = _host(settings.database_url)
    if current != heads:
        have = ", ".join(sorted(current)) or "no schema"
        raise RuntimeError(
            f"{where} is at {have}, this version needs {', '.join(sorted(heads))}: "
            "run `trainyard migrate`"
        )
    return f"{where}, schema at head ({', '.join(sorted(heads))})"


def _broker(settings: Settings) -> str:
    from app.services.publisher import CeleryPublisher

    if not CeleryPublisher(settings.broker_url, timeout_s=5).ping():
        raise RuntimeError(f"{_host(settings.broker_url)} does not answer (BROKER_URL)")
    return _host(settings.broker_url)


def _installation(settings: Settings) -> str:
    from sqlalchemy.orm import Session

    from app.db.session import make_engine
    from app.services.queries import installation_id

    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            return installation_id(session)
    finally:
        engine.dispose()


def _runtime(settings: Settings, node: NodeSettings) -> str:
    from workers.context import make_runtime
    from workers.runtime.docker import DockerRuntime

    # The very choice the worker makes (Docker pinged here), for this database's installation.
    runtime = make_runtime(node, _installation(settings))
    held = len(runtime.list_managed(node.node))
    if isinstance(runtime, DockerRuntime):
        import docker
        from docker.errors import ImageNotFound

        try:
            docker.from_env(timeout=30).images.get(settings.default_image)
        except ImageNotFound:
            raise RuntimeError(
                f"Docker answers, but the default image {settings.default_image} is not on "
                "this engine (workers never pull): scripts/build-images.sh, or set TRAINER_IMAGE"
            ) from None
        return f"docker, default image {settings.default_image} present, {held} container(s)"
    from trainer import TRAIN_SCRIPT

    if not TRAIN_SCRIPT.is_file():
        raise RuntimeError(f"the reference trainer {TRAIN_SCRIPT} is missing")
    if not os.access(node.state_dir, os.W_OK):
        raise RuntimeError(f"cannot write its records in {node.state_dir} (PROCESS_STATE_DIR)")
    return f"process, trainer {TRAIN_SCRIPT}, records in {node.state_dir}, {held} process(es)"


def _report(name: str, probe: Callable[[], str]) -> bool:
    try:
        print(f"ok    {name}: {probe()}", flush=True)
        return True
    except Exception as exc:
        print(f"FAIL  {name}: {exc}", flush=True)
        return False


def run_checks() -> int:
    try:
        settings, node = _settings()
    except Exception as exc:
        print(f"FAIL  settings: {exc}", flush=True)
        return 1
    gpus = ",".join(map(str, node.gpu_ids)) or "none"
    print(f"ok    settings: node {node.node}, GPUs {gpus}, WORKER_RUNTIME={node.runtime}")
    results = [
        _report("database", lambda: _database(settings)),
        _report("broker", lambda: _broker(settings)),
        _report("runtime", lambda: _runtime(settings, node)),
    ]
    return 0 if all(results) else 1
