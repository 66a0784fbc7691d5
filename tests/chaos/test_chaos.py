"""The bounded chaos subset (≤ 3 minutes, in `make test`): a few cheap scenarios with few jobs
on the suite's own stack (tests/chaos/harness.py). Each must end with zero invariant
violations. The whole suite with its table: `make chaos` (docs/chaos.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.harness import Stack
from tests.chaos.scenarios import SCENARIOS
from tests.workers.conftest import docker_client

SUBSET = [name for name, (_, _, subset_jobs) in SCENARIOS.items() if subset_jobs]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if docker_client() is None:
        pytest.fail("no Docker engine answers: run scripts/services.sh (it starts dockerd)")
    stack = Stack().start()
    yield stack
    stack.stop()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", SUBSET)
def test_scenario_ends_without_violations(stack: Stack, name: str) -> None:
    scenario, _, jobs = SCENARIOS[name]
    assert jobs
    result = scenario(stack, jobs)
    assert result.violations == [], "\n".join(result.violations)
    assert result.recovery_s is not None
