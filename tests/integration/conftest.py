"""Fixtures of the integration tests that more than one module uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from tests.integration.helpers import CAPACITY_NODE, process_node
from workers.context import WorkerContext


@pytest.fixture
def node_ctx(
    settings: Settings, db: sessionmaker[Session], tmp_path: Path
) -> Iterator[WorkerContext]:
    """A node (no worker process) with room for two jobs of the default size (plenty of memory)."""
    ctx = process_node(
        settings, db, tmp_path, CAPACITY_NODE, drain_file=tmp_path / "no-drain", max_jobs=2,
        default_memory_mb=4096,
    )  # fmt: skip
    yield ctx
    ctx.engine.dispose()
