"""The node's background loop (workers/periodic.py): no engine, no database."""

from __future__ import annotations

import threading

from workers.periodic import Periodic


def test_a_failing_step_does_not_end_the_loop() -> None:
    calls: list[int] = []
    third = threading.Event()

    def step() -> None:
        calls.append(1)
        if len(calls) >= 3:
            third.set()
        raise RuntimeError("the database restarts")

    loop = Periodic("test-loop", step, 0.01)
    loop.start()
    assert third.wait(5), "the loop stopped after a failing step"
    loop.stop(5)
    assert not loop.thread.is_alive()
    assert loop.thread.name == "test-loop"


def test_wait_first_runs_no_step_before_the_first_interval() -> None:
    calls: list[int] = []
    loop = Periodic("test-wait", lambda: calls.append(1), 60.0, wait_first=True)
    loop.start()
    loop.stop(5)  # stopped within the first interval: no step ran
    assert calls == [] and not loop.thread.is_alive()


def test_a_step_runs_at_once_on_start() -> None:
    ran = threading.Event()
    loop = Periodic("test-now", ran.set, 60.0)
    loop.start()
    assert ran.wait(5), "the first step waited for an interval"
    loop.stop(5)
    assert not loop.thread.is_alive()
