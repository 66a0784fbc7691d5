"""The chaos scenarios (issue 12): each submits runs, injects its faults by PID, waits until
the stack is at rest again and reports what the invariants found.

A scenario leaves the stack whole (every process it stopped is started again), so the next
one starts from a healthy stack; its models stay, and the invariants cover them all.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.harness import TRAINER_IMAGE, Stack, wait_until
from tests.chaos.invariants import check_all, one_container_per_model, one_live_job_per_model
from workers.runtime.process import ProcessRuntime

PARAMS: dict[str, Any] = {"total_epoch": 4, "val_interval": 2, "epoch_seconds": 1}
#: How long the API may hold a status sync while the broker is frozen (PUBLISH_TIMEOUT_S is
#: 2 s; this leaves room for a loaded machine, not for a 30 s wait).
SYNC_BOUND_S = 10.0


@dataclass
class Result:
    scenario: str
    faults: str
    jobs: int
    violations: list[str] = field(default_factory=list)
    recovery_s: float | None = None
    outcomes: dict[str, int] = field(default_factory=dict)  # job status → jobs


def _submit(stack: Stack, count: int, params: dict[str, Any] | None = None) -> list[str]:
    uids = [stack.create_model(params or PARAMS) for _ in range(count)]
    with ThreadPoolExecutor(max_workers=min(16, max(1, count))) as pool:
        responses = list(pool.map(stack.run_with_retries, uids))
    for uid, response in zip(uids, responses, strict=True):
        if response.status_code != 200:
            raise AssertionError(f"run {uid}: {response.status_code} {response.text[:300]}")
    return uids


def _running_on(stack: Stack, node: str | None = None) -> int:
    query = "SELECT count(*) FROM tb_model_train_job WHERE status_cd = 'RUNNING'"
    with stack.sql() as conn:
        if node is None:
            return int(conn.execute(query).fetchone()[0])
        return int(conn.execute(query + " AND node = %s", (node,)).fetchone()[0])


def _settle(stack: Stack, result: Result, fault_at: float, timeout_s: float) -> Result:
    """Wait until at rest (the recovery time counts from the fault), then check everything.
    While waiting, the two invariants that must hold at every instant (one live job and one
    container per model) are sampled too."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with stack.sql() as conn:
                for check in (one_live_job_per_model, one_container_per_model):
                    seen.update(f"[while recovering] {v}" for v in check(stack, conn))
            if stack.at_rest():
                result.recovery_s = time.monotonic() - fault_at
                break
        except Exception:  # the database or Docker mid-fault: ask again
            pass
        if time.monotonic() > deadline:
            result.violations.append(
                f"[at rest] not at rest {timeout_s:g} s after the fault; jobs: {stack.job_counts()}"
                f", containers: {len(stack.own_containers())}"
            )
            break
        time.sleep(1)
    result.violations += sorted(seen)
    result.violations += check_all(stack)
    result.violations += _restart_exited_workers(stack)
    return result


def _restart_exited_workers(stack: Stack) -> list[str]:
    """A worker that exited on its own (no fault of ours killed it for good) is a finding; it
    is started again, as a process manager would, so the next scenario has both nodes."""
    found = []
    for node, worker in list(stack.workers.items()):
        if worker.process is not None and worker.process.poll() is not None:
            code = worker.process.returncode
            why = [ln for ln in worker.log().splitlines() if " CRITICAL " in ln or "Error" in ln]
            found.append(
                f"[process] worker {node} exited by itself (status {code})"
                + (f": {why[-1][-300:]}" if why else "")
            )
            stack.start_worker(node)
    return found


def _jobs_per_model(stack: Stack, uids: list[str]) -> list[str]:
    """Each run was asked for once (retries carried one Idempotency-Key): one job per model."""
    with stack.sql() as conn:
        rows = conn.execute(
            "SELECT m.uuid, count(j.id) FROM tb_model_master m"
            " LEFT JOIN tb_model_train_job j ON j.model_id = m.id"
            " WHERE m.uuid = ANY(%s::uuid[]) GROUP BY m.uuid",
            (uids,),
        ).fetchall()
    return [f"[idempotent run] model {u} has {n} jobs" for u, n in rows if n != 1]


# --- the scenarios ------------------------------------------------------------------------


def _fault_while_running(
    stack: Stack, jobs: int, result: Result, fault: Callable[[], None]
) -> Result:
    """Submit the runs, inject `fault` once one of them runs, and wait for the stack to rest."""
    _submit(stack, jobs)
    wait_until(lambda: _running_on(stack) >= 1, 60, "a job running")
    fault_at = time.monotonic()
    fault()
    return _settle(stack, result, fault_at, 180)


def worker_sigkill(stack: Stack, jobs: int) -> Result:
    result = Result("worker SIGKILL + restart", "SIGKILL chaos-a, restart 2 s later", jobs)

    def fault() -> None:
        stack.workers["chaos-a"].kill()
        time.sleep(2)
        stack.start_worker("chaos-a")

    return _fault_while_running(stack, jobs, result, fault)


def redis_lost(stack: Stack, jobs: int) -> Result:
    result = Result("Redis killed, restarted empty", "SIGKILL redis, 3 s down", jobs)

    def fault() -> None:
        stack.redis.child.kill()
        time.sleep(3)
        stack.redis.start()

    return _fault_while_running(stack, jobs, result, fault)


def postgres_restart(stack: Stack, jobs: int) -> Result:
    result = Result("PostgreSQL restart -m immediate", "pg_ctl restart -m immediate", jobs)
    return _fault_while_running(stack, jobs, result, stack.pg.restart_immediate)


def api_sigkill_burst(stack: Stack, jobs: int) -> Result:
    result = Result(
        "API SIGKILL during a burst", "SIGKILL gunicorn mid-burst, Idempotency-Key retries", jobs
    )
    uids = [stack.create_model(PARAMS) for _ in range(jobs)]
    answers: list[Any] = []

    def burst() -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers.extend(pool.map(stack.run_with_retries, uids))

    first_job = stack.next_job_id()
    sender = threading.Thread(target=burst)
    sender.start()
    # Mid-burst: the first job committed, most of the requests still in flight.
    wait_until(lambda: stack.next_job_id() > first_job, 30, "the first run", every_s=0.02)
    fault_at = time.monotonic()
    assert stack.api is not None
    stack.api.kill()
    stack.start_api()
    sender.join(120)
    if len(answers) != len(uids):  # a run that kept failing ended the burst's thread early
        result.violations.append(f"[idempotent run] {len(answers)} of {len(uids)} runs answered")
    bad = [a for a in answers if a.status_code != 200]
    result.violations += [f"[idempotent run] answered {a.status_code}: {a.text[:200]}" for a in bad]
    _settle(stack, result, fault_at, 180)
    result.violations += _jobs_per_model(stack, uids)
    return result


def run_cancel_race(stack: Stack, jobs: int) -> Result:
    result = Result("run-then-cancel races", "cancel right after run, and mid-run", jobs)
    uids = [stack.create_model(PARAMS) for _ in range(jobs)]
    fault_at = time.monotonic()

    def race(index_uid: tuple[int, str]) -> None:
        index, uid = index_uid
        stack.run_with_retries(uid)
        time.sleep(0.0 if index % 2 == 0 else 2.5)  # half before the launch, half during it
        response = stack.command(uid, "cancel")
        if response.status_code not in (200, 409):  # 409: it had already ended
            result.violations.append(
                f"[cancel] {uid}: {response.status_code} {response.text[:200]}"
            )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(race, enumerate(uids)))
    return _settle(stack, result, fault_at, 180)


def node_lost(stack: Stack, jobs: int) -> Result:
    """chaos-b and its machine are gone for good: the worker is SIGKILLed and its containers
    die with it. chaos-a's sweep must judge chaos-b's jobs; chaos-b comes back afterwards
    only so the next scenario has two nodes."""
    result = Result("node lost for good", "SIGKILL chaos-b + its containers, never restarted", jobs)
    _submit(stack, jobs)
    wait_until(lambda: _running_on(stack, "chaos-b") >= 1, 60, "a job running on chaos-b")
    fault_at = time.monotonic()
    stack.workers["chaos-b"].kill()
    for container in stack.own_containers():
        if container.labels.get("trainyard.node") == "chaos-b":
            container.remove(force=True)  # the machine went with it; the engine is shared here
    _settle(stack, result, fault_at, 240)
    stack.start_worker("chaos-b")
    return result


def docker_unreachable(stack: Stack, jobs: int) -> Result:
    result = Result(
        "Docker API unreachable", "SIGKILL chaos-b's Docker proxy for 13 s during launches", jobs
    )
    fault_at = time.monotonic()
    stack.proxy.kill()
    _submit(stack, jobs)
    time.sleep(13)
    stack.proxy.start()
    return _settle(stack, result, fault_at, 240)


def foreign_container(stack: Stack, jobs: int) -> Result:
    """A container of another installation, named as the next job's container was named in the
    old scheme (trainyard-job-<id>), with that installation's labels: never adopted, stopped
    or removed."""
    result = Result("foreign container, clashing name", "another installation's container", jobs)
    next_id = stack.next_job_id()
    name = f"trainyard-job-{next_id}"
    if stack.docker.containers.list(all=True, filters={"name": f"^/{name}$"}):
        name = f"{name}-chaos-{stack.installation[:6]}"  # someone else's already: don't touch
    foreign = stack.docker.containers.run(
        TRAINER_IMAGE,
        entrypoint=["sleep", "600"],
        name=name,
        labels={
            "trainyard.managed": "true",
            "trainyard.installation": "foreign-chaos-installation",
            "trainyard.node": "chaos-a",
            "trainyard.job_id": str(next_id),
        },
        detach=True,
    )
    fault_at = time.monotonic()
    try:
        _submit(stack, jobs)
        _settle(stack, result, fault_at, 180)
        foreign.reload()
        if foreign.status != "running":
            result.violations.append(f"[foreign container] {name} is {foreign.status}")
    except Exception as exc:
        result.violations.append(f"[foreign container] {exc}")
    finally:
        try:
            foreign.remove(force=True)
        except Exception:
            result.violations.append(f"[foreign container] {name} was removed by the stack")
    return result


def redis_frozen(stack: Stack, jobs: int) -> Result:
    result = Result("Redis frozen", "SIGSTOP redis 20 s, status syncs meanwhile", jobs)
    uids = _submit(stack, jobs)
    wait_until(lambda: _running_on(stack) >= 1, 60, "a job running")
    fault_at = time.monotonic()
    stack.redis.child.signal(signal.SIGSTOP)
    # The freeze lasts 20 s whatever the API does meanwhile; a sync still waiting when Redis
    # thaws is measured to its end.
    thaw = threading.Timer(20, stack.redis.child.signal, (signal.SIGCONT,))
    thaw.start()
    slowest = 0.0
    try:
        while thaw.is_alive():
            for uid in uids[:3]:
                t0 = time.monotonic()
                with contextlib.suppress(Exception):  # the time it took is what counts
                    stack.command(uid, "status", timeout_s=70)
                slowest = max(slowest, time.monotonic() - t0)
    finally:
        thaw.cancel()
        stack.redis.child.signal(signal.SIGCONT)
    if slowest > SYNC_BOUND_S:
        result.violations.append(
            f"[bounded sync] a status sync took {slowest:.1f} s with the broker frozen"
            f" (bound {SYNC_BOUND_S:g} s)"
        )
    return _settle(stack, result, fault_at, 180)


def gpu_worker_sigkill(stack: Stack, jobs: int) -> Result:
    """GPU leases across a crash. The Docker runtime needs real GPUs, so a third node,
    chaos-gpu, runs the process runtime with two declared GPUs (NODE_GPUS=0,1): more GPU jobs
    than GPUs queue for leases; the node is SIGKILLed mid-run and restarted."""
    result = Result(
        "GPU node SIGKILL + restart", "SIGKILL chaos-gpu (process runtime, 2 GPUs)", jobs
    )
    state_dir = stack.base / "gpu-processes"
    env = {"WORKER_RUNTIME": "process", "NODE_GPUS": "0,1", "PROCESS_STATE_DIR": str(state_dir)}
    stack.start_worker("chaos-gpu", **env)
    try:
        uids = [stack.create_model(PARAMS, {"gpus": 1}) for _ in range(jobs)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(stack.run_with_retries, uids))
        wait_until(lambda: _running_on(stack, "chaos-gpu") >= 1, 60, "a GPU job running")
        fault_at = time.monotonic()
        stack.workers["chaos-gpu"].kill()
        time.sleep(2)
        stack.start_worker("chaos-gpu", **env)
        _settle(stack, result, fault_at, 240)
        with stack.sql() as conn:
            overlap = conn.execute(
                "SELECT count(*) FROM tb_model_train_job a JOIN tb_model_train_job b"
                " ON a.id < b.id AND a.node = b.node AND a.gpu_ids::text = b.gpu_ids::text"
                " AND a.started_dttm < b.finished_dttm AND b.started_dttm < a.finished_dttm"
                " WHERE a.node = 'chaos-gpu' AND a.gpu_ids IS NOT NULL"
            ).fetchone()[0]
        if overlap:
            result.violations.append(f"[GPU leases] {overlap} pairs of jobs shared a GPU")
    finally:
        stack.workers.pop("chaos-gpu").terminate()
        with stack.sql() as conn:
            (installation,) = conn.execute("SELECT id FROM tb_installation").fetchone()
        runtime = ProcessRuntime(state_dir, "chaos-gpu", installation=installation)
        for leftover in runtime.list_managed("chaos-gpu"):
            result.violations.append(f"[process runtime] {leftover.name} left behind")
            runtime.remove(leftover.name)
    return result


def burst(stack: Stack, jobs: int) -> Result:
    result = Result(f"{jobs} runs at once", "none: load only", jobs)
    fault_at = time.monotonic()
    _submit(stack, jobs, {**PARAMS, "total_epoch": 2, "val_interval": 1})
    return _settle(stack, result, fault_at, 900)


Scenario = Callable[[Stack, int], Result]

#: name → (scenario, jobs in the full suite, jobs in the bounded subset or None: not in it)
SCENARIOS: dict[str, tuple[Scenario, int, int | None]] = {
    "worker_sigkill": (worker_sigkill, 8, 3),
    "redis_lost": (redis_lost, 8, 4),
    "postgres_restart": (postgres_restart, 8, 3),
    "api_sigkill_burst": (api_sigkill_burst, 24, 10),
    "run_cancel_race": (run_cancel_race, 10, 4),
    "node_lost": (node_lost, 8, None),  # ran clean with 3 jobs; 32 s: over the bound
    "docker_unreachable": (docker_unreachable, 8, None),
    "foreign_container": (foreign_container, 4, 2),
    "redis_frozen": (redis_frozen, 6, None),
    "gpu_worker_sigkill": (gpu_worker_sigkill, 4, 4),
    "burst": (burst, 150, None),
}
