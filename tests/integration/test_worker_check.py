"""`trainyard worker --check` against the real database and broker: each failure is named, with
what to do, and the exit status says whether the node could start (process runtime, no
Docker). The installed-wheel case is tests/deploy/test_wheel.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.cli import main
from tests.conftest import TEST_BROKER_URL, TEST_DATABASE_URL


@pytest.fixture
def node_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_engine: Engine) -> None:
    """A process-runtime node on the migrated test database (pg_engine migrated it)."""
    for name, value in {
        "DATABASE_URL": TEST_DATABASE_URL,
        "BROKER_URL": TEST_BROKER_URL,
        "TRAINYARD_HOME": str(tmp_path),
        "WORKER_RUNTIME": "process",
        "NODE_NAME": "check-node",
        "NODE_GPUS": "",
    }.items():
        monkeypatch.setenv(name, value)


def test_a_node_that_could_start_passes(node_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--check"]) == 0
    out = capsys.readouterr().out
    for check in ("settings", "database", "broker", "runtime"):
        assert f"ok    {check}:" in out
    assert "schema at head" in out
    assert "process, trainer /" in out and "train.py" in out


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WORKER_RUNTIME", "dockr", "FAIL  settings: WORKER_RUNTIME must be one of"),
        ("NODE_GPUS", "0,0", "FAIL  settings: NODE_GPUS lists a GPU twice"),
        ("BROKER_URL", "redis://127.0.0.1:1/0", "FAIL  broker: redis://127.0.0.1:1/0 does not"),
        ("DATABASE_URL", "postgresql+psycopg://trainyard@127.0.0.1:1/trainyard", "FAIL  database:"),
    ],
    ids=["runtime", "gpus", "broker", "database"],  # the same in every xdist worker
)
def test_each_failure_is_named(
    node_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["worker", "--check"]) == 1
    assert expected in capsys.readouterr().out
