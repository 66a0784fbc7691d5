"""Fixtures of the integration tests that more than one module uses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.services.queries import installation_id
from tests.integration.helpers import CAPACITY_NODE
from workers.context import WorkerContext, build_context
from workers.runtime.process import ProcessRuntime
from workers.settings import NodeSettings


@pytest.fixture
def node_ctx(
    settings: Settings, db: sessionmaker[Session], tmp_path: Path
) -> Iterator[WorkerContext]:
    """A node (no worker process) with room for two jobs of the default size (plenty of memory)."""
    node = replace(
        NodeSettings.from_env(),
        node=CAPACITY_NODE,
        state_dir=tmp_path / "p",
        drain_file=tmp_path / "no-drain",
        max_jobs=2,
        memory_mb=64_000,
        default_memory_mb=4096,
    )
    with db() as session:
        installation = installation_id(session)
    runtime = ProcessRuntime(tmp_path / "p", CAPACITY_NODE, installation=installation)
    ctx = build_context(settings, node, runtime)
    yield ctx
    ctx.engine.dispose()
