"""The bounded chaos subset (≤ 3 minutes, in `make test`): a few cheap scenarios with few jobs
on the suite's own stack (tests/chaos/harness.py). Each must end with zero invariant
violations. The whole suite with its table: `make chaos` (docs/chaos.md)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.chaos.harness import Stack
from tests.chaos.invariants import check_all
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
    before = set(check_all(stack))  # an earlier scenario's finding fails that scenario only
    result = scenario(stack, jobs)
    new = [v for v in result.violations if v not in before]
    assert new == [], "\n".join(new)
    assert result.recovery_s is not None


@contextmanager
def _workers_frozen(stack: Stack) -> Iterator[None]:
    """The stack's workers stopped (SIGSTOP) for the block, and thawed whatever happens in
    it: a worker left frozen would hold every later test."""
    workers = [w for w in stack.workers.values() if w.pid is not None]
    for worker in workers:
        worker.signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for worker in workers:
            worker.signal(signal.SIGCONT)


def test_the_invariants_see_what_they_check(stack: Stack) -> None:
    """Not vacuous: break three rows of the (rested) stack by hand and each check says so.
    The workers are frozen (SIGSTOP) meanwhile: their sweep heals exactly such rows (a lease of
    an ended job is released), and once did so before the checks looked (CI, 2026-11-30)."""
    uid = stack.create_model({"total_epoch": 1})
    with _workers_frozen(stack):
        with stack.sql() as conn:
            model_id = conn.execute(
                "SELECT id FROM tb_model_master WHERE uuid = %s", (uid,)
            ).fetchone()[0]
            job_id = conn.execute(
                "INSERT INTO tb_model_train_job (model_id, job_type, attempt, status_cd, params,"
                " image, resources, node)"
                " VALUES (%s, 'TRAIN', 1, 'FAILED', '{}', 'x', '{}', 'chaos-a') RETURNING id",
                (model_id,),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO tb_gpu_lease (node, gpu_id, job_id) VALUES ('chaos-x', 0, %s)",
                (job_id,),
            )
            conn.execute(
                "INSERT INTO tb_outbox (task_name, queue, payload, attempts, next_attempt_dttm)"
                " VALUES ('t', 'q', '{}', 0, now() + interval '1 hour')"
            )
        try:
            found = "\n".join(check_all(stack))
            assert "[status consistent with steps]" in found  # FAILED job, step still READY
            assert "[no GPU lease without a live job]" in found
            assert "[outbox empty at rest]" in found
        finally:
            with stack.sql() as conn:
                conn.execute("DELETE FROM tb_outbox WHERE published_dttm IS NULL")
                conn.execute("DELETE FROM tb_gpu_lease WHERE job_id = %s", (job_id,))
                conn.execute("DELETE FROM tb_model_master WHERE id = %s", (model_id,))
