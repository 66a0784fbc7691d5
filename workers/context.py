"""What a worker process holds: settings, the database, the container runtime, a publisher.

Built once per process on first use (never at import), so forked children and tests get
their own.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, load_settings
from app.db.session import make_session_factory, make_worker_engine
from app.domain.containers import container_name
from app.services.publisher import CeleryPublisher, Publisher
from app.services.queries import installation_id
from workers.runtime.base import ContainerRuntime
from workers.settings import NodeSettings

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    settings: Settings
    node: NodeSettings
    engine: Engine
    db: sessionmaker[Session]
    runtime: ContainerRuntime
    publisher: Publisher
    # Jobs this process is launching right now: reconcile must not mistake them for lost.
    launching: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def container_of(self, job_id: int, stored: str | None) -> str:
        """The job's container name: the one stored when the job was made (always, since the
        installation id), else the name it would have been given."""
        return stored or container_name(self.runtime.installation, job_id)


def docker_client_if_answering(timeout_s: float = 120, environment: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """A Docker client when an engine answers a ping, else None (and why, logged)."""
    import docker

    try:
        client = docker.from_env(timeout=timeout_s, environment=environment)
        client.ping()
        return client
    except Exception as exc:
        log.info("no Docker engine answers: %s", exc)
        return None


def make_runtime(node: NodeSettings, installation: str) -> ContainerRuntime:
    """Docker when asked for, or when `auto` and an engine answers; else the process runtime."""
    if node.runtime in ("docker", "auto"):
        from workers.runtime.docker import DockerRuntime

        client = docker_client_if_answering()
        if client is not None:
            return DockerRuntime(
                client=client,
                node=node.node,
                installation=installation,
                scratch_root=node.scratch_root.resolve(),
            )
        if node.runtime == "docker":
            raise RuntimeError("WORKER_RUNTIME=docker but no Docker engine answers")
        log.warning("no Docker engine answers; using the process runtime")
    from trainer import TRAIN_SCRIPT
    from workers.runtime.process import ProcessRuntime

    # No image to run: the reference trainer (installed with trainyard) stands in for its
    # ENTRYPOINT.
    return ProcessRuntime(
        state_dir=node.state_dir,
        node=node.node,
        installation=installation,
        entrypoint=[sys.executable, str(TRAIN_SCRIPT)],
        scratch_root=node.scratch_root.resolve(),
    )


def build_context(
    settings: Settings | None = None,
    node: NodeSettings | None = None,
    runtime: ContainerRuntime | None = None,
) -> WorkerContext:
    settings = settings or load_settings()
    node = node or NodeSettings.from_env()
    engine = make_worker_engine(settings.database_url, settings.bounds)
    db = make_session_factory(engine)
    if runtime is None:
        with db() as session:
            runtime = make_runtime(node, installation_id(session))
    return WorkerContext(
        settings=settings,
        node=node,
        engine=engine,
        db=db,
        runtime=runtime,
        publisher=CeleryPublisher(settings.broker_url, settings.publish_timeout_s),
    )


_context: WorkerContext | None = None
_context_lock = threading.Lock()


def context() -> WorkerContext:
    global _context
    with _context_lock:
        if _context is None:
            _context = build_context()
        return _context


def set_context(ctx: WorkerContext | None) -> None:
    """Install a prepared context (the worker entry point and tests)."""
    global _context
    with _context_lock:
        _context = ctx


def dispose_engine() -> None:
    if _context is not None:
        _context.engine.dispose(close=False)
