"""Scale run: N real worker nodes on one PostgreSQL and one Redis, a burst of runs through the
API, and what it costs (figures, not assertions; see bench/README.md "Scale run").

    python -m bench.scale_bench [--nodes 5,10,20] [--runs 1000] [--max-jobs 4]

For each node count, on a stack of its own (bench/scale_stack.py: a throw-away PostgreSQL
cluster and redis-server on free ports, the API under gunicorn, N `workers.main` processes
with the process runtime, each a node with its own NODE_NAME and NODE_MAX_JOBS slots):
idle load for a few seconds, then `--runs` models created and their runs POSTed in a burst,
sampled until every run ended, then checked: each model COMPLETED by exactly one job, one
launch attempt, one trainer process seen, its metrics ingested once. The trainer is the
reference trainer (`trainer/train.py`, what the process runtime runs) with `epoch_seconds`,
so a job mostly sleeps.

Exit status: 0 when every round ended with nothing lost or doubled, 1 otherwise (the table is
printed either way), 2 when a round could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from app import messaging
from app.domain.timefmt import as_utc
from bench.scale_stack import Stack

JSON_HEADERS = {"Content-Type": "application/json"}
LIVE = {"QUEUED", "RUNNING"}
APP_NAMES_OF_BENCH = ("bench", "")  # the sampler's own connection, PostgreSQL's own processes


# --------------------------------------------------------------------------- small helpers


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def parse_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


@dataclass
class Probe:
    """Latencies (s) and failures of one kind of API call."""

    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    synced: int = 0  # status calls on a live job: the API asked its node
    unanswered: int = 0  # ... and the node did not answer in time


# --------------------------------------------------------------------------- samplers


class Sampler(threading.Thread):
    """Once a second: PostgreSQL connections per application (pg_stat_activity), heartbeat ages
    (tb_node), Redis memory and the launch queue's depth, PostgreSQL's CPU. Also collects the
    exit status of ended waiters (the bench is their subreaper)."""

    def __init__(self, stack: Stack, database: str, every_s: float = 1.0) -> None:
        super().__init__(name="scale-sampler", daemon=True)
        self.stack, self.database, self.every_s = stack, database, every_s
        self.stopping = threading.Event()
        self.conns_total: list[int] = []
        self.conns_api: list[int] = []
        self.conns_node_max: list[int] = []  # the busiest node's count, per sample
        self.conns_node_mean: list[float] = []
        self.heartbeat_ages: list[float] = []  # every node's age, every sample
        self.redis_used: list[int] = []
        self.redis_clients: list[int] = []
        self.launch_depth: list[int] = []
        self.pg_cores: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        conn = psycopg.connect(
            self.stack.pg.dsn(self.database), autocommit=True, application_name="bench"
        )
        last_cpu, last_t = self.stack.pg.cpu_seconds(), time.monotonic()
        try:
            while not self.stopping.wait(self.every_s):
                try:
                    self._sample(conn)
                except Exception as exc:  # a sample is never worth ending the bench for
                    self.errors.append(repr(exc))
                cpu, now = self.stack.pg.cpu_seconds(), time.monotonic()
                self.pg_cores.append(max(0.0, cpu - last_cpu) / (now - last_t))
                last_cpu, last_t = cpu, now
                self.stack.reap()
        finally:
            conn.close()

    def _sample(self, conn: psycopg.Connection[Any]) -> None:
        rows = conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND backend_type = 'client backend' GROUP BY 1",
            (self.database,),
        ).fetchall()
        per_app = {name: count for name, count in rows if name not in APP_NAMES_OF_BENCH}
        nodes = [count for name, count in per_app.items() if name != "api"]
        self.conns_total.append(sum(per_app.values()))
        self.conns_api.append(per_app.get("api", 0))
        self.conns_node_max.append(max(nodes, default=0))
        self.conns_node_mean.append(sum(nodes) / max(1, len(self.stack.nodes)))
        ages = conn.execute(
            "SELECT extract(epoch FROM clock_timestamp() - last_seen_dttm) FROM tb_node "
            "WHERE name LIKE 'scale-%%'"
        ).fetchall()
        self.heartbeat_ages += [float(age) for (age,) in ages]
        self.redis_used.append(int(self.stack.redis.command("INFO", "memory")["used_memory"]))
        self.redis_clients.append(
            int(self.stack.redis.command("INFO", "clients")["connected_clients"])
        )
        self.launch_depth.append(int(self.stack.redis.command("LLEN", messaging.QUEUE_LAUNCH_CPU)))

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


class TrainerWatch(threading.Thread):
    """Every half second, the trainer processes alive on the machine, by the model folder in
    their `--output-dir`: the process evidence that no run was started twice. A trainer lives
    for its epochs (seconds), so every one is seen."""

    def __init__(self, output_root: Path, every_s: float = 0.5) -> None:
        super().__init__(name="scale-trainers", daemon=True)
        from trainer import TRAIN_SCRIPT

        self.script = str(TRAIN_SCRIPT)
        self.output_root = output_root.resolve()
        self.every_s = every_s
        self.stopping = threading.Event()
        self.seen: dict[str, set[tuple[int, float]]] = defaultdict(set)
        self.peak = 0

    def run(self) -> None:
        while not self.stopping.wait(self.every_s):
            alive = 0
            for process in psutil.process_iter(["pid", "cmdline", "create_time"]):
                argv = process.info["cmdline"] or []
                if self.script not in argv or "--output-dir" not in argv:
                    continue
                folder = Path(argv[argv.index("--output-dir") + 1])
                if folder.parent.parent != self.output_root:
                    continue  # another stack's trainer
                alive += 1
                self.seen[folder.parent.name].add(
                    (process.info["pid"], process.info["create_time"])
                )
            self.peak = max(self.peak, alive)

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


class ApiProbe(threading.Thread):
    """The dashboard's two calls, one after the other with a pause, for the whole round: the
    first page of the list and a status sync of a random model (a live job's sync goes to its
    node through the broker and waits for the answer)."""

    def __init__(self, base_url: str, uuids: list[str], pause_s: float = 0.2) -> None:
        super().__init__(name="scale-api-probe", daemon=True)
        self.base_url, self.uuids, self.pause_s = base_url, uuids, pause_s
        self.stopping = threading.Event()
        self.list = Probe()
        self.status = Probe()

    def run(self) -> None:
        rng = random.Random(7)
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            while not self.stopping.is_set():
                self._call(client, self.list, "GET", "/api/models/list?page=0&size=20")
                uid = rng.choice(self.uuids)
                self._call(client, self.status, "POST", f"/api/train/status/{uid}")
                self.stopping.wait(self.pause_s)

    @staticmethod
    def _call(client: httpx.Client, probe: Probe, method: str, path: str) -> None:
        began = time.perf_counter()
        try:
            answer = client.request(method, path, headers=JSON_HEADERS)
            ok = answer.status_code == 200
            sync = answer.json()["data"].get("sync") if ok else None
            if sync and sync.get("requested"):
                probe.synced += 1
                probe.unanswered += 0 if sync.get("answered") else 1
        except (httpx.HTTPError, ValueError, KeyError):
            ok = False
        probe.latencies.append(time.perf_counter() - began)
        probe.failures += 0 if ok else 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(40)


class SweepWatch(threading.Thread):
    """Watches the sweep without running one: every 50 ms, which backend holds the sweep's
    advisory lock (pg_locks). A sweep is one unbroken run of sightings by one backend, so its
    duration is known to about 50 ms (shorter sweeps count as 50 ms), and their number says
    how often the nodes sweep together. Every few seconds it also times the read half of
    one node's reconcile pass (its claimed jobs from the database, its process records),
    round robin over the nodes: read-only, so the nodes' own work is untouched."""

    def __init__(self, stack: Stack, env: dict[str, str], nodes: list[str]) -> None:
        super().__init__(name="scale-sweep-watch", daemon=True)
        self.stack, self.env, self.nodes = stack, env, nodes
        self.stopping = threading.Event()
        self.sweeps: list[float] = []
        self.reconciles: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        from workers.reconcile import SWEEP_LOCK_KEY

        database = self.env["DATABASE"]
        conn = psycopg.connect(self.stack.pg.dsn(database), autocommit=True,
                               application_name="bench")  # fmt: skip
        holder: int | None = None
        since = last_seen = 0.0
        next_reconcile, turn = time.monotonic() + 5, 0
        try:
            while not self.stopping.wait(0.05):
                row = conn.execute(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = %s AND objid = %s AND objsubid = 1",
                    (SWEEP_LOCK_KEY >> 32, SWEEP_LOCK_KEY & 0xFFFFFFFF),
                ).fetchone()
                now = time.monotonic()
                pid = row[0] if row else None
                if pid != holder:
                    if holder is not None:
                        self.sweeps.append(max(0.05, last_seen - since))
                    holder, since = pid, now
                if pid is not None:
                    last_seen = now
                if now >= next_reconcile:
                    next_reconcile = now + 5
                    self._time_reconcile(conn, self.nodes[turn % len(self.nodes)])
                    turn += 1
        except Exception as exc:
            self.errors.append(repr(exc))
        finally:
            conn.close()

    def _time_reconcile(self, conn: psycopg.Connection[Any], node: str) -> None:
        from workers.runtime.process import ProcessRuntime

        home = Path(self.env["TRAINYARD_HOME"])
        (installation,) = conn.execute("SELECT id FROM tb_installation").fetchone() or ("",)
        began = time.perf_counter()
        # reconcile_node's first read (workers/reconcile.py _claimed_jobs), in SQL.
        conn.execute(
            "SELECT j.*, m.uuid FROM tb_model_train_job j JOIN tb_model_master m "
            "ON m.id = j.model_id WHERE j.node = %s AND j.container_gone_dttm IS NULL "
            "ORDER BY j.id",
            (node,),
        ).fetchall()
        ProcessRuntime(home / "processes" / node, node, installation=installation).list_managed(
            node
        )
        self.reconciles.append(time.perf_counter() - began)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


# --------------------------------------------------------------------------- one round


@dataclass
class Options:
    runs: int
    max_jobs: int
    epochs: int
    epoch_seconds: float
    worker_concurrency: int
    api_workers: int
    api_threads: int
    submit_threads: int
    idle_s: float
    timeout_s: float


@dataclass
class Round:
    nodes: int
    slots: int
    figures: dict[str, Any] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # still live when --timeout ran out


class CpuMeter:
    """CPU seconds of the PostgreSQL cluster, Redis, the API and the nodes, and the machine's
    busy seconds, between `start` and `stop`."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.before: dict[str, float] = {}

    def read(self) -> dict[str, float]:
        times = psutil.cpu_times()
        redis = self.stack.redis.command("INFO", "cpu")
        return {
            "pg": self.stack.pg.cpu_seconds(),
            "redis": float(redis["used_cpu_user"]) + float(redis["used_cpu_sys"]),
            "api": _cpu_of(self.stack.api_pids()),
            "nodes": _cpu_of(self.stack.node_pids()),
            "machine": sum(times) - times.idle - getattr(times, "iowait", 0.0),
        }

    def start(self) -> None:
        self.before = self.read()

    def cores(self, seconds: float) -> dict[str, float]:
        after = self.read()
        return {key: max(0.0, after[key] - self.before[key]) / seconds for key in after}


def _cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def _redis_commands(stack: Stack) -> int:
    return int(stack.redis.command("INFO", "stats")["total_commands_processed"])


def _pg_transactions(stack: Stack, database: str) -> int:
    with psycopg.connect(stack.pg.dsn(database), autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


def run_round(stack: Stack, nodes: int, opts: Options) -> Round:
    from app.datasets import generate_demo_dataset
    from app.db.migrate import upgrade

    result = Round(nodes=nodes, slots=nodes * opts.max_jobs)
    database = f"scale_n{nodes}"
    home = stack.base / f"n{nodes}"
    home.mkdir()
    stack.home = home
    stack.pg.create_database(database)
    upgrade(stack.pg.url(database))
    stack.redis.command("FLUSHALL")
    env = {**stack.env(database, home), "DATABASE": database}
    generate_demo_dataset(Path(env["DATASET_ROOT"]) / "demo")

    log(f"{nodes} nodes: starting the API and the nodes")
    stack.start_api(env, opts.api_workers, opts.api_threads)
    names = [f"scale-{i:02d}" for i in range(1, nodes + 1)]
    node_env = {
        "WORKER_RUNTIME": "process",
        "NODE_MAX_JOBS": str(opts.max_jobs),
        "DEFAULT_JOB_MEMORY_MB": "512",
        "NODE_GPUS": "",
        "WORKER_CONCURRENCY": str(opts.worker_concurrency),
    }
    began = time.monotonic()
    stack.start_nodes(env, names, node_env)
    result.figures["nodes_start_s"] = time.monotonic() - began

    # Idle: what N nodes cost with nothing to do (heartbeats, polls, Celery's own traffic).
    sampler = Sampler(stack, database)
    sampler.start()
    time.sleep(3)  # let the start-up settle
    cpu = CpuMeter(stack)
    cpu.start()
    commands, xacts = _redis_commands(stack), _pg_transactions(stack, database)
    began = time.monotonic()
    time.sleep(opts.idle_s)
    idle_s = time.monotonic() - began
    result.figures["idle"] = {
        "redis_commands_per_s": (_redis_commands(stack) - commands) / idle_s,
        "pg_transactions_per_s": (_pg_transactions(stack, database) - xacts) / idle_s,
        "cores": cpu.cores(idle_s),
        "pg_connections": sampler.conns_total[-1] if sampler.conns_total else 0,
        "pg_connections_api": sampler.conns_api[-1] if sampler.conns_api else 0,
        "redis_clients": sampler.redis_clients[-1] if sampler.redis_clients else 0,
    }

    log(f"{nodes} nodes: creating {opts.runs} models")
    client = httpx.Client(base_url=stack.api_url, timeout=60)
    params = {"total_epoch": opts.epochs, "val_interval": opts.epochs,
              "epoch_seconds": opts.epoch_seconds}  # fmt: skip

    def create(i: int) -> str:
        body = {"modelNo": "G1", "modelVer": f"scale-{i}", "params": params}
        answer = client.post("/api/models", json=body)
        answer.raise_for_status()
        return str(answer.json()["data"]["uuid"])

    with ThreadPoolExecutor(opts.submit_threads) as pool:
        uuids = list(pool.map(create, range(opts.runs)))

    trainers = TrainerWatch(Path(env["OUTPUT_ROOT"]))
    probe = ApiProbe(stack.api_url, uuids)
    sweeps = SweepWatch(stack, env, names)
    for thread in (trainers, probe, sweeps):
        thread.start()
    cpu.start()
    commands, xacts = _redis_commands(stack), _pg_transactions(stack, database)
    sampler_mark = len(sampler.conns_total)

    log(f"{nodes} nodes: {opts.runs} runs in a burst ({opts.submit_threads} clients)")
    submit: list[float] = []
    refused: list[str] = []

    def run(uid: str) -> None:
        t0 = time.perf_counter()
        answer = client.post(f"/api/train/run/{uid}", headers=JSON_HEADERS)
        submit.append(time.perf_counter() - t0)
        if answer.status_code != 200:
            refused.append(f"{uid}: HTTP {answer.status_code} {answer.text[:200]}")

    burst_began = time.monotonic()
    with ThreadPoolExecutor(opts.submit_threads) as pool:
        list(pool.map(run, uuids))
    result.figures["submit_s"] = time.monotonic() - burst_began
    result.figures["submit_p50_ms"] = percentile(submit, 0.5) * 1000
    result.figures["submit_p99_ms"] = percentile(submit, 0.99) * 1000
    result.lost += refused

    drained = _wait_drained(stack, database, burst_began, opts.timeout_s)
    wall_s = time.monotonic() - burst_began
    result.figures["cores"] = cpu.cores(wall_s)
    result.figures["redis_commands_per_s"] = (_redis_commands(stack) - commands) / wall_s
    result.figures["pg_transactions_per_s"] = (_pg_transactions(stack, database) - xacts) / wall_s
    for thread in (probe, sweeps, trainers):
        thread.stop()
    sampler.stop()
    client.close()

    _figures_from_jobs(stack, database, opts, result)
    result.figures["drained"] = drained
    result.figures.update(
        list_p99_ms=percentile(probe.list.latencies, 0.99) * 1000,
        list_calls=len(probe.list.latencies),
        list_failures=probe.list.failures,
        status_p99_ms=percentile(probe.status.latencies, 0.99) * 1000,
        status_calls=len(probe.status.latencies),
        status_failures=probe.status.failures,
        status_synced=probe.status.synced,
        status_unanswered=probe.status.unanswered,
        pg_conns_peak=max(sampler.conns_total[sampler_mark:], default=0),
        pg_conns_api_peak=max(sampler.conns_api[sampler_mark:], default=0),
        pg_conns_node_peak=max(sampler.conns_node_max[sampler_mark:], default=0),
        pg_conns_node_mean=statistics.fmean(sampler.conns_node_mean[sampler_mark:] or [0]),
        pg_cores_peak=max(sampler.pg_cores, default=0.0),
        redis_mib_peak=max(sampler.redis_used, default=0) / 2**20,
        redis_clients_peak=max(sampler.redis_clients[sampler_mark:], default=0),
        launch_queue_peak=max(sampler.launch_depth, default=0),
        heartbeat_age_max_s=max(sampler.heartbeat_ages, default=float("nan")),
        heartbeat_age_p99_s=percentile(sampler.heartbeat_ages, 0.99),
        sweep_p50_s=percentile(sweeps.sweeps, 0.5),
        sweep_max_s=max(sweeps.sweeps, default=float("nan")),
        sweeps_per_min=len(sweeps.sweeps) / (wall_s / 60),
        reconcile_scan_p50_ms=percentile(sweeps.reconciles, 0.5) * 1000,
        reconcile_scan_max_ms=max(sweeps.reconciles, default=float("nan")) * 1000,
        trainers_peak=trainers.peak,
        sampler_errors=sampler.errors[:5] + sweeps.errors[:5],
    )
    _check_once(stack, database, opts, trainers, result)
    result.figures["worker_errors"] = _worker_errors(stack)
    result.figures["launch_tasks"] = _launch_outcomes(stack)
    started = result.figures["launch_tasks"].get("started", 0)
    result.figures["launch_tasks_per_start"] = (
        sum(result.figures["launch_tasks"].values()) / started if started else float("nan")
    )
    log(f"{nodes} nodes: stopping")
    stack.stop_round()
    return result


def _wait_drained(stack: Stack, database: str, since: float, timeout_s: float) -> bool:
    """Until no job is QUEUED or RUNNING (and at least one exists), or the timeout."""
    with psycopg.connect(stack.pg.dsn(database), autocommit=True) as conn:
        last_report = 0.0
        while time.monotonic() - since < timeout_s:
            counts = dict(
                conn.execute(
                    "SELECT status_cd, count(*) FROM tb_model_train_job GROUP BY 1"
                ).fetchall()
            )
            live = counts.get("QUEUED", 0) + counts.get("RUNNING", 0)
            if counts and not live:
                return True
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                log(f"  {time.monotonic() - since:5.0f} s: {dict(sorted(counts.items()))}")
            time.sleep(0.5)
    return False


def _figures_from_jobs(stack: Stack, database: str, opts: Options, result: Round) -> None:
    """Drain time and dispatch latency from the jobs' own timestamps.

    dispatch: queued (the run was requested) → the trainer process started, which includes
    waiting for a free slot. handoff: the moment a slot was free for this job → started, the
    platform's own part: for the i-th job a node claimed (0-based), with M slots, the slot came
    free when the (i-M+1)-th of the node's earlier jobs released its container
    (`container_gone_dttm`, which is what the capacity check counts); the first M jobs of a
    node had a slot from the start."""
    with psycopg.connect(stack.pg.dsn(database), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT node, queued_dttm, claimed_dttm, started_dttm, container_ended_dttm, "
            "container_gone_dttm, finished_dttm FROM tb_model_train_job "
            "ORDER BY claimed_dttm NULLS LAST, id"
        ).fetchall()
    jobs = [Timeline(r[0], *(as_utc(t) if t else None for t in r[1:])) for r in rows]
    started = [j for j in jobs if j.started is not None and j.claimed is not None]
    if not started:
        return
    first_queued = min(j.queued for j in jobs if j.queued)
    result.figures["drain_s"] = _seconds(
        max((j.finished for j in jobs if j.finished), default=first_queued), first_queued
    )
    result.figures["last_start_s"] = _seconds(max(j.started for j in started), first_queued)
    spans: dict[str, list[float]] = defaultdict(list)
    by_node: dict[str, list[Timeline]] = defaultdict(list)
    for job in started:
        by_node[job.node].append(job)
    for node_jobs in by_node.values():
        gone_so_far: list[datetime] = []
        for i, job in enumerate(node_jobs):
            free_from = job.queued
            if i >= opts.max_jobs and len(gone_so_far) >= i - opts.max_jobs + 1:
                free_from = max(free_from, sorted(gone_so_far)[i - opts.max_jobs])
            spans["dispatch"].append(_seconds(job.started, job.queued))
            spans["handoff"].append(_seconds(job.started, free_from))
            spans["claim"].append(_seconds(job.claimed, free_from))
            spans["launch"].append(_seconds(job.started, job.claimed))
            if job.ended is not None:
                spans["run"].append(_seconds(job.ended, job.started))
                if job.gone is not None:
                    spans["release"].append(_seconds(job.gone, job.ended))
            if job.gone is not None:
                gone_so_far.append(job.gone)
    for name, values in spans.items():
        for q in (50, 95, 99):
            result.figures[f"{name}_p{q}_s"] = percentile(values, q / 100)
    result.figures["jobs_per_node"] = sorted(len(j) for j in by_node.values())


@dataclass(frozen=True)
class Timeline:
    """One job's moments, as its row recorded them."""

    node: str
    queued: datetime
    claimed: datetime | None
    started: datetime | None
    ended: datetime | None
    gone: datetime | None
    finished: datetime | None


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _check_once(
    stack: Stack, database: str, opts: Options, trainers: TrainerWatch, result: Round
) -> None:
    """Lost: a model not COMPLETED, a run without a SUCCESS job. Doubled: more than one job or
    launch attempt for a model, more or fewer than one trainer process seen for it, its
    metric rows ingested more than once."""
    with psycopg.connect(stack.pg.dsn(database), autocommit=True) as conn:
        rows = conn.execute(
            """
            SELECT m.uuid::text, m.step1_state, count(j.id),
                   count(j.id) FILTER (WHERE j.status_cd = 'SUCCESS'),
                   coalesce(max(j.launch_attempts), 0), string_agg(DISTINCT j.status_cd, ','),
                   (SELECT count(*) FROM tb_model_metrics_train t WHERE t.model_id = m.id),
                   (SELECT count(*) FROM tb_model_metrics_validation v WHERE v.model_id = m.id)
            FROM tb_model_master m LEFT JOIN tb_model_train_job j ON j.model_id = m.id
            WHERE m.model_ver LIKE 'scale-%%'
            GROUP BY m.id
            """
        ).fetchall()
    expected_val = opts.epochs // opts.epochs  # val_interval = epochs: one validation row
    for uid, step1, jobs, ok, attempts, statuses, train_rows, val_rows in rows:
        if not result.figures.get("drained") and set((statuses or "").split(",")) & LIVE:
            result.unfinished.append(uid)  # the round timed out with its job still live
        elif step1 != "COMPLETED" or ok == 0:
            result.lost.append(f"{uid}: step1 {step1}, jobs {statuses or 'none'}")
        why = []
        if jobs > 1 or ok > 1:
            why.append(f"{jobs} jobs ({ok} SUCCESS)")
        if attempts > 1:
            why.append(f"{attempts} launch attempts")
        processes = len(trainers.seen.get(uid, ()))
        if processes > 1 or (ok and processes == 0):
            why.append(f"{processes} trainer processes seen")
        if ok and (train_rows != opts.epochs or val_rows != expected_val):
            why.append(f"{train_rows} train / {val_rows} validation metric rows")
        if why:
            result.doubled.append(f"{uid}: {', '.join(why)}")
    if len(rows) != opts.runs:
        result.lost.append(f"{len(rows)} models of {opts.runs} found")


def _worker_errors(stack: Stack) -> dict[str, int]:
    """ERROR lines and tracebacks in each node's log (0 expected)."""
    counts = {}
    for name, child in stack.nodes.items():
        text = child.log()
        found = text.count(" ERROR ") + text.count("Traceback")
        if found:
            counts[name] = found
    return counts


LAUNCH_OUTCOME = re.compile(
    r"Task trainyard\.launch_job\[[^\]]*\] succeeded in [0-9.e-]+s: '([^']*)"
)


def _launch_outcomes(stack: Stack) -> dict[str, int]:
    """What the nodes' launch tasks did, from their logs (Celery logs each task's result):
    how many launch messages were consumed per trainer started."""
    counts: dict[str, int] = defaultdict(int)
    for child in stack.nodes.values():
        for outcome in LAUNCH_OUTCOME.findall(child.log()):
            if outcome.startswith("started"):
                key = "started"
            elif outcome.startswith("waiting"):
                key = "waiting (no slot / yields to an older job)"
            elif "nothing to launch" in outcome:
                key = "job already running or ended"
            else:
                key = re.sub(r"\d+", "N", outcome)[:60]
            counts[key] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------- the tables


def _fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.{digits}f}"  # NaN: nothing measured
    return str(value)


def print_tables(rounds: list[Round]) -> None:
    rounds = sorted(rounds, key=lambda r: r.nodes)
    print("\nDrain, dispatch and the API under load (times in s unless ms)\n")
    print("| nodes | slots | runs POSTed in | drain | last start | dispatch p50/p95/p99 "
          "| handoff p50/p95/p99 | list p99 ms | status p99 ms | lost | doubled |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|")
    for r in rounds:
        f = r.figures
        print(
            f"| {r.nodes} | {r.slots} | {_fmt(f.get('submit_s'))} | {_fmt(f.get('drain_s'))} "
            f"| {_fmt(f.get('last_start_s'))} "
            f"| {_fmt(f.get('dispatch_p50_s'))} / {_fmt(f.get('dispatch_p95_s'))} / "
            f"{_fmt(f.get('dispatch_p99_s'))} "
            f"| {_fmt(f.get('handoff_p50_s'), 2)} / {_fmt(f.get('handoff_p95_s'), 2)} / "
            f"{_fmt(f.get('handoff_p99_s'), 2)} "
            f"| {_fmt(f.get('list_p99_ms'), 0)} | {_fmt(f.get('status_p99_ms'), 0)} "
            f"| {len(r.lost)} | {len(r.doubled)} |"
        )
    print("\nWhat it costs: PostgreSQL, Redis, sweep, heartbeats (burst; idle: before it)\n")
    print("| nodes | PG conns peak (node max / API) | PG cores avg / peak | PG xact/s "
          "| Redis MiB peak | Redis cmd/s | launch tasks per start | sweeps/min, p50 / max s "
          "| reconcile scan p50 ms | heartbeat age p99 / max s | idle: Redis cmd/s, PG xact/s, "
          "PG conns, node cores |")  # fmt: skip
    print("|---:|---|---|---:|---:|---:|---:|---|---:|---|---|")
    for r in rounds:
        f = r.figures
        idle = f.get("idle", {})
        cores = f.get("cores", {})
        print(
            f"| {r.nodes} | {f.get('pg_conns_peak', 0)} ({f.get('pg_conns_node_peak', 0)} / "
            f"{f.get('pg_conns_api_peak', 0)}) "
            f"| {_fmt(cores.get('pg', float('nan')), 2)} / {_fmt(f.get('pg_cores_peak'), 2)} "
            f"| {_fmt(f.get('pg_transactions_per_s'), 0)} "
            f"| {_fmt(f.get('redis_mib_peak'))} | {_fmt(f.get('redis_commands_per_s'), 0)} "
            f"| {_fmt(f.get('launch_tasks_per_start'))} "
            f"| {_fmt(f.get('sweeps_per_min'))}, {_fmt(f.get('sweep_p50_s'), 2)} / "
            f"{_fmt(f.get('sweep_max_s'), 2)} "
            f"| {_fmt(f.get('reconcile_scan_p50_ms'))} "
            f"| {_fmt(f.get('heartbeat_age_p99_s'))} / {_fmt(f.get('heartbeat_age_max_s'))} "
            f"| {_fmt(idle.get('redis_commands_per_s'), 0)}, "
            f"{_fmt(idle.get('pg_transactions_per_s'), 0)}, {idle.get('pg_connections', 0)}, "
            f"{_fmt(idle.get('cores', {}).get('nodes', float('nan')), 2)} |"
        )
    print("\nWhere a slot's time goes, p50 / p95 s: free → claimed → trainer started → ended → "
          "container removed (the slot is free again)\n")
    print("| nodes | slot free → claimed | claimed → started | trainer ran | ended → removed |")
    print("|---:|---|---|---|---|")
    for r in rounds:
        f = r.figures
        cells = [f"{_fmt(f.get(f'{n}_p50_s'), 2)} / {_fmt(f.get(f'{n}_p95_s'), 2)}"
                 for n in ("claim", "launch", "run", "release")]  # fmt: skip
        print(f"| {r.nodes} | {' | '.join(cells)} |")
    print("\nCPU during the burst, in cores (the machine's, and of what the bench started)\n")
    print("| nodes | machine | PostgreSQL | Redis | API | nodes (workers) | trainers peak |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rounds:
        c = r.figures.get("cores", {})
        print(
            f"| {r.nodes} | {_fmt(c.get('machine', float('nan')), 2)} "
            f"| {_fmt(c.get('pg', float('nan')), 2)} | {_fmt(c.get('redis', float('nan')), 2)} "
            f"| {_fmt(c.get('api', float('nan')), 2)} | {_fmt(c.get('nodes', float('nan')), 2)} "
            f"| {r.figures.get('trainers_peak', 0)} |"
        )
    for r in rounds:
        keys = ("jobs_per_node", "launch_tasks", "worker_errors", "sampler_errors", "list_failures",
                "status_failures", "status_synced", "status_unanswered", "sweeps_per_min",
                "launch_queue_peak", "submit_p50_ms", "submit_p99_ms", "redis_clients_peak", "idle",
                "nodes_start_s", "drained")  # fmt: skip
        notes = {key: r.figures.get(key) for key in keys}
        notes["unfinished (timed out)"] = len(r.unfinished)
        print(f"\n{r.nodes} nodes: {json.dumps(notes, default=str)}")
        for line in (r.lost + r.doubled)[:20]:
            print(f"  {line}")


# --------------------------------------------------------------------------- main


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=parse_ints, default=[5, 10, 20],
                        help="node counts, one round each (5,10,20)")
    parser.add_argument("--runs", type=int, default=1000, help="runs per round (1000)")
    parser.add_argument("--max-jobs", type=int, default=4, help="NODE_MAX_JOBS of each node (4)")
    parser.add_argument("--epochs", type=int, default=2, help="total_epoch of each run (2)")
    parser.add_argument("--epoch-seconds", type=float, default=2.0,
                        help="the reference trainer's epoch_seconds: how long an epoch sleeps (2)")
    parser.add_argument("--worker-concurrency", type=int, default=4,
                        help="WORKER_CONCURRENCY: task threads per node (4, the default)")
    parser.add_argument("--api-workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--api-threads", type=int, default=4, help="threads per API worker (4)")
    parser.add_argument("--submit-threads", type=int, default=16,
                        help="clients POSTing the burst at once (16)")
    parser.add_argument("--idle", type=float, default=15.0, help="idle seconds measured (15)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds a round may take to drain (1800)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the logs' folder")
    args = parser.parse_args(argv)  # fmt: skip
    opts = Options(
        runs=args.runs, max_jobs=args.max_jobs, epochs=args.epochs,
        epoch_seconds=args.epoch_seconds, worker_concurrency=args.worker_concurrency,
        api_workers=args.api_workers, api_threads=args.api_threads,
        submit_threads=args.submit_threads, idle_s=args.idle, timeout_s=args.timeout,
    )  # fmt: skip
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # also when started with
        signal.signal(sig, _interrupt)  # SIGINT ignored (a background job of a script)

    base = Path(tempfile.mkdtemp(prefix="trainyard-scale-"))
    # A node holds a few connections per thread kind; 30 per node at most (pool 10 + 20).
    stack = Stack(base, max_connections=max(200, 40 * max(args.nodes) + 100))
    rounds: list[Round] = []
    failed = False
    log(f"scale bench in {base} (cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f})")
    try:
        stack.start()
        for nodes in args.nodes:
            rounds.append(run_round(stack, nodes, opts))
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc}): stopping everything")
        failed = True
    except (SystemExit, TimeoutError, OSError, psycopg.Error, httpx.HTTPError) as exc:
        log(f"round failed: {exc}")
        failed = True
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        stack.stop()
        if args.keep or failed:
            log(f"logs kept in {base}")
        else:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
    if rounds:
        print_tables(rounds)
        if args.json:
            args.json.write_text(json.dumps([dataclasses.asdict(r) for r in rounds], indent=2,
                                            default=str))  # fmt: skip
    if failed:
        return 2
    return 1 if any(r.lost or r.doubled for r in rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
