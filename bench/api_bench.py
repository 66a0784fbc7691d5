"""Load benchmark (not a test) of the read-heavy API endpoints under gunicorn.

    python -m bench.api_bench                       # defaults: 10,000 models, sync:4, c=8,32, 10 s
    python -m bench.api_bench --configs sync:2,sync:4,gthread:2x4 --concurrency 4,16,64

What it does, all against 127.0.0.1 only (bench/README.md has the details):

1. creates the database `trainyard_bench` if missing, migrates it, and reseeds it with
   10,000 models (COPY) — G1..G4, a spread of step states with the derived status, and the
   jobs those states imply (5 % IN_PROGRESS with a RUNNING job on a bench node);
2. starts a fake node (`bench.fake_node`) that answers the status syncs for the bench nodes,
   and gunicorn (`app.factory:create_app()`) for each server config given;
3. checks that one request of each kind of variant answers 200 with `success: true`;
4. drives each scenario with `wrk` (closed loop, N connections, fixed duration) and prints
   requests/s and p50/p90/p99 latency per endpoint and concurrency, plus the CPU the gunicorn
   workers and the bench database's PostgreSQL backends spent per request;
5. stops gunicorn and the fake node and deletes the bench nodes' queues from the broker.

Every loop is bounded in time; nothing is left running.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

ROOT = Path(__file__).resolve().parents[1]
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b")
DEFAULT_DATABASE_URL = "postgresql+psycopg://trainyard:trainyard@127.0.0.1:5432/trainyard_bench"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/14"
BENCH_NODES = ("bench-node-1", "bench-node-2")
IMAGE = "trainyard/trainer:latest"
PARAMS = {"total_epoch": 10, "val_interval": 2}

#: (step1, step2, weight in %). The model status is derived, never chosen (SPEC §3).
STATE_MIX = (
    ("READY", "READY", 30),
    ("COMPLETED", "COMPLETED", 30),
    ("COMPLETED", "READY", 15),
    ("STOPPED", "READY", 10),
    ("ERROR", "READY", 10),
    ("IN_PROGRESS", "READY", 5),
)
STATUSES = ("READY", "IN_PROGRESS", "COMPLETED", "STOPPED", "ERROR")
MODEL_NOS = ("G1", "G2", "G3", "G4")
TRAIN_TYPES = ("GENERAL", "FINE_TUNE", "TRANSFER")

# Target of issue 13 (item 7) for the API rows, against the baseline measured in the same run:
# at least this share of its requests/s, with a p99 at most this many times its p99.
TARGET_RPS_RATIO = 0.6
TARGET_P99_RATIO = 2.0
FIRST_PAGE = "/api/models/list?status=&page=0&size=20"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- database


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def ensure_database(url: str) -> None:
    """Create the bench database if it is missing (the trainyard role has CREATEDB)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(libpq_url(url))
    dbname = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (dbname,)
            ).fetchone()
            if exists:
                return
            log(f"creating database {dbname}")
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
            return
    except psycopg.Error as exc:
        if os.geteuid() != 0:
            raise SystemExit(f"cannot create database {dbname}: {exc}") from None
        log(f"create as {parts.username} failed ({exc}); trying as the postgres superuser")
    owner = parts.username or "trainyard"
    subprocess.run(
        [
            "su",
            "postgres",
            "-c",
            f"psql -v ON_ERROR_STOP=1 -qc 'create database {dbname} owner {owner}'",
        ],
        check=True,
    )


def seed(url: str, n_models: int, rng_seed: int) -> dict[str, list[str]]:
    """Replace every model and job with `n_models` generated ones; return uuids by kind."""
    import psycopg

    from app.domain.states import StepState, derive_model_status

    rng = random.Random(rng_seed)
    weights = [w for *_, w in STATE_MIX]
    base = datetime(2025, 1, 1, tzinfo=UTC)
    models: list[tuple[Any, ...]] = []
    jobs: list[dict[str, Any]] = []
    live: list[str] = []
    idle: list[str] = []
    params_json = json.dumps(PARAMS)
    job_id = 0

    def add_job(
        model_id: int,
        job_type: str,
        attempt: int,
        status: str,
        start: datetime,
        end: datetime | None,
        **extra: Any,
    ) -> int:
        nonlocal job_id
        job_id += 1
        node = extra.get("node")
        exit_code = extra.get("exit_code")
        jobs.append(
            {
                "id": job_id,
                "model_id": model_id,
                "job_type": job_type,
                "attempt": attempt,
                "status_cd": status,
                "params": params_json,
                "image": IMAGE,
                "resources": "{}",
                "node": node,
                "container_name": extra.get("container_name"),
                "gpu_ids": json.dumps(extra["gpu_ids"]) if "gpu_ids" in extra else None,
                "exit_code": exit_code,
                "oom_killed": extra.get("oom_killed"),
                "error_message": extra.get("error_message"),
                "log_tail": None,
                "queued_dttm": start - timedelta(seconds=5),
                "started_dttm": start,
                "finished_dttm": end,
                # Columns of newer schemas; written only where the table has them (see below).
                "claimed_dttm": start - timedelta(seconds=2) if node else None,
                "container_exit_code": extra.get("container_exit_code", exit_code)
                if end is not None
                else None,
                "container_missing": False if end is not None else None,
                "container_ended_dttm": end,
                "container_gone_dttm": end + timedelta(seconds=1) if end is not None else None,
            }
        )
        return job_id

    for i in range(n_models):
        model_id = i + 1
        model_uuid = uuid.UUID(int=rng.getrandbits(128), version=4)
        step1, step2, _ = rng.choices(STATE_MIX, weights)[0]
        status = derive_model_status(StepState(step1), StepState(step2)).value
        created = base + timedelta(minutes=7 * i)
        s1_start = created + timedelta(minutes=rng.randint(1, 30))
        s1_end = s1_start + timedelta(seconds=rng.randint(300, 20_000))
        s2_start = s1_end + timedelta(minutes=rng.randint(1, 60))
        s2_end = s2_start + timedelta(seconds=rng.randint(30, 900))
        row: dict[str, Any] = dict(
            step1_strt_dttm=None,
            step1_end_dttm=None,
            step2_strt_dttm=None,
            step2_end_dttm=None,
            step1_metric_save_yn=False,
            step2_metric_save_yn=False,
            current_attempt_id=None,
            best_epoch=None,
            last_error=None,
            epochs_done=None,
            checkpoint_epoch=None,
        )
        if step1 == "COMPLETED":
            row.update(
                step1_strt_dttm=s1_start,
                step1_end_dttm=s1_end,
                step1_metric_save_yn=True,
                epochs_done=10,
                checkpoint_epoch=10,
                best_epoch=rng.choice((2, 4, 6, 8, 10)),
            )
            row["current_attempt_id"] = add_job(
                model_id,
                "TRAIN",
                1,
                "SUCCESS",
                s1_start,
                s1_end,
                exit_code=0,
                oom_killed=False,
                node=BENCH_NODES[i % 2],
            )
            if step2 == "COMPLETED":
                row.update(
                    step2_strt_dttm=s2_start, step2_end_dttm=s2_end, step2_metric_save_yn=True
                )
                row["current_attempt_id"] = add_job(
                    model_id,
                    "EVAL",
                    2,
                    "SUCCESS",
                    s2_start,
                    s2_end,
                    exit_code=0,
                    oom_killed=False,
                    node=BENCH_NODES[i % 2],
                )
        elif step1 == "STOPPED":
            done = rng.randint(1, 9)
            row.update(
                step1_strt_dttm=s1_start,
                step1_end_dttm=s1_end,
                epochs_done=done,
                checkpoint_epoch=done - done % 2 or None,
            )
            row["current_attempt_id"] = add_job(
                model_id,
                "TRAIN",
                1,
                "CANCELED",
                s1_start,
                s1_end,
                exit_code=-1,
                container_exit_code=137,
                oom_killed=False,
                node=BENCH_NODES[i % 2],
            )
        elif step1 == "ERROR":
            message = "trainer exited with code 1: CUDA error: out of memory"
            row.update(
                step1_strt_dttm=s1_start,
                step1_end_dttm=s1_end,
                last_error=message,
                epochs_done=rng.randint(0, 5),
            )
            row["current_attempt_id"] = add_job(
                model_id,
                "TRAIN",
                1,
                "FAILED",
                s1_start,
                s1_end,
                exit_code=1,
                oom_killed=False,
                error_message=message,
                node=BENCH_NODES[i % 2],
            )
        elif step1 == "IN_PROGRESS":
            node = BENCH_NODES[i % 2]
            row.update(step1_strt_dttm=s1_start, epochs_done=rng.randint(0, 9))
            row["checkpoint_epoch"] = (row["epochs_done"] - row["epochs_done"] % 2) or None
            row["current_attempt_id"] = add_job(
                model_id,
                "TRAIN",
                1,
                "RUNNING",
                s1_start,
                None,
                node=node,
                container_name=f"trainyard-{model_uuid.hex[:12]}-1",
                gpu_ids=[i % 4],
            )
        (live if step1 == "IN_PROGRESS" else idle).append(str(model_uuid))
        models.append(
            (
                model_id,
                model_uuid,
                MODEL_NOS[i % 4],
                f"v1.{i // 100}.{i % 100}",
                rng.choice(TRAIN_TYPES),
                f"bench model {i}",
                params_json,
                IMAGE,
                None,
                "{}",
                status,
                step1,
                step2,
                row["step1_strt_dttm"],
                row["step1_end_dttm"],
                row["step2_strt_dttm"],
                row["step2_end_dttm"],
                row["step1_metric_save_yn"],
                row["step2_metric_save_yn"],
                row["current_attempt_id"],
                row["best_epoch"],
                row["last_error"],
                row["epochs_done"],
                row["checkpoint_epoch"],
                created,
                created,
                1,
            )
        )

    model_cols = (
        "id, uuid, model_no, model_ver, train_type, memo, params, image, dataset, resources, "
        "status_cd, step1_state, step2_state, step1_strt_dttm, step1_end_dttm, step2_strt_dttm, "
        "step2_end_dttm, step1_metric_save_yn, step2_metric_save_yn, current_attempt_id, "
        "best_epoch, last_error, epochs_done, checkpoint_epoch, created_dttm, updated_dttm, version"
    )
    started = time.monotonic()
    with psycopg.connect(libpq_url(url)) as conn:
        present = {
            name
            for (name,) in conn.execute(
                "select column_name from information_schema.columns "
                "where table_name = 'tb_model_train_job'"
            )
        }
        job_keys = [key for key in jobs[0] if key in present] if jobs else ["id"]
        job_cols = ", ".join(job_keys)
        conn.execute(
            "truncate tb_model_master, tb_model_train_job, tb_outbox, tb_idempotency_key "
            "restart identity cascade"
        )
        with conn.cursor() as cur:
            with cur.copy(f"copy tb_model_master ({model_cols}) from stdin") as copy:
                for model_row in models:
                    copy.write_row(model_row)
            with cur.copy(f"copy tb_model_train_job ({job_cols}) from stdin") as copy:
                for job in jobs:
                    copy.write_row([job[key] for key in job_keys])
            for table in ("tb_model_master", "tb_model_train_job"):
                cur.execute(
                    f"select setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(select coalesce(max(id), 0) + 1 from {table}), false)"
                )
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("vacuum analyze tb_model_master")
        conn.execute("vacuum analyze tb_model_train_job")
        by_status = dict(
            conn.execute(
                "select status_cd, count(*) from tb_model_master group by 1 order by 1"
            ).fetchall()
        )
    log(
        f"seeded {len(models)} models, {len(jobs)} jobs in {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{k}={v}" for k, v in by_status.items())
    )
    rng.shuffle(idle)
    rng.shuffle(live)
    return {"live": live, "idle": idle}


# --------------------------------------------------------------------------- server


@dataclass(frozen=True)
class ServerConfig:
    worker_class: str
    workers: int
    threads: int = 1

    @classmethod
    def parse(cls, text: str) -> ServerConfig:
        """`sync:4` = 4 sync workers; `gthread:2x8` = 2 gthread workers with 8 threads each."""
        kind, _, size = text.strip().partition(":")
        if kind not in ("sync", "gthread"):
            raise argparse.ArgumentTypeError(f"unknown worker class {kind!r} (sync or gthread)")
        workers, _, threads = size.partition("x")
        return cls(kind, int(workers or 2), int(threads or (4 if kind == "gthread" else 1)))

    @property
    def label(self) -> str:
        if self.worker_class == "gthread":
            return f"gthread:{self.workers}x{self.threads}"
        return f"sync:{self.workers}"

    def argv(self) -> list[str]:
        args = ["-w", str(self.workers), "-k", self.worker_class]
        if self.worker_class == "gthread":
            args += ["--threads", str(self.threads)]
        return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(
        self,
        config: ServerConfig,
        env: dict[str, str],
        workdir: Path,
        app_target: str = "app.factory:create_app()",
        name: str = "api",
    ) -> None:
        self.config = config
        self.label = config.label if name == "api" else f"{config.label} {name}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gunicorn-{name}-{config.label.replace(':', '-')}.log"
        self.argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-b",
            f"127.0.0.1:{self.port}",
            *config.argv(),
            "--backlog",
            "2048",
            "--timeout",
            "30",
            "--graceful-timeout",
            "5",
            "--worker-tmp-dir",
            "/dev/shm" if Path("/dev/shm").is_dir() else str(workdir),
            "--log-level",
            "warning",
            "--error-logfile",
            str(self.log_path),
            app_target,
        ]
        self.env = env
        self.dbname = urlsplit(libpq_url(env["DATABASE_URL"])).path.lstrip("/")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float = 120.0) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, start_new_session=True)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _ = http(self.base + "/api/models/list?size=1", "GET", timeout=2)
                if status == 200 and len(self.worker_pids()) >= self.config.workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"gunicorn not ready after {ready_timeout_s}s:\n{self.log_tail()}")

    def stop(self) -> None:
        stop_process(self.proc, grace_s=15)

    def worker_pids(self) -> list[int]:
        return children_of(self.proc.pid) if self.proc else []

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def errors_logged(self) -> Counter[str]:
        """Distinct exception lines (and worker timeouts / crashes) in the error log, counted."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return Counter()
        found: Counter[str] = Counter()
        for line in text.splitlines():
            if EXCEPTION_LINE.match(line) or any(
                k in line for k in ("WORKER TIMEOUT", "CRITICAL", "Worker exiting")
            ):
                found[line.strip()[:300]] += 1
        return found


class FakeNode:
    """`bench.fake_node`: a Celery worker answering the status sync for the bench nodes."""

    def __init__(self, broker_url: str, env: dict[str, str], workdir: Path) -> None:
        self.broker_url = broker_url
        self.log_path = workdir / "fake-node.log"
        self.env = {**env, "BENCH_BROKER_URL": broker_url}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float = 30.0) -> None:
        queues = ",".join(f"node.{node}" for node in BENCH_NODES)
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.fake_node",
            "worker",
            "-Q",
            queues,
            "--pool",
            "threads",
            "-c",
            "4",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "warning",
            "-n",
            "bench-fake-node@%h",
        ]
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        from celery import Celery

        client = Celery(
            "bench-probe", broker=self.broker_url, backend=self.broker_url, set_as_current=False
        )
        deadline = time.monotonic() + ready_timeout_s
        try:
            result = client.send_task(
                "trainyard.sync_job", kwargs={"job_id": 0}, queue=f"node.{BENCH_NODES[0]}"
            )
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(f"fake node exited:\n{self.log_path.read_text()[-2000:]}")
                if result.ready():
                    result.get(timeout=1)
                    result.forget()
                    return
                time.sleep(0.2)
        finally:
            client.close()
        self.stop()
        raise SystemExit(
            f"fake node did not answer in {ready_timeout_s}s:\n{self.log_path.read_text()[-2000:]}"
        )

    def pids(self) -> list[int]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *children_of(self.proc.pid)]

    def stop(self) -> None:
        stop_process(self.proc, grace_s=20)


def stop_process(proc: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    """SIGTERM, then SIGKILL after `grace_s`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def http(
    url: str, method: str, timeout: float = 5.0, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    data = b"" if method == "POST" else None
    headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --------------------------------------------------------------------------- CPU accounting


def children_of(parent: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(parent).children()]
    except psutil.NoSuchProcess:
        return []


def postgres_pids(dbname: str) -> list[int]:
    """The PostgreSQL backends serving `dbname` (not the shared background processes, nor
    backends of other databases: other sessions' tests may share the server)."""
    return [
        process.pid
        for process in psutil.process_iter(["name", "cmdline"])
        if process.info["name"] == "postgres"
        and f" {dbname} " in " ".join(process.info["cmdline"] or [])
    ]


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    used = {}
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            used[pid] = times.user + times.system
    return used


def seconds_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used in between by the processes alive at the end (new ones count whole)."""
    return sum(max(0.0, used - before.get(pid, 0.0)) for pid, used in after.items())


def machine_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine since boot, all CPUs together."""
    times = psutil.cpu_times()
    total = sum(times)
    return total - times.idle - getattr(times, "iowait", 0.0), total


@dataclass
class CpuSnapshot:
    app: dict[int, float]
    pg: dict[int, float]
    node: dict[int, float]
    busy: float
    total: float

    @classmethod
    def take(cls, server: Server, fake_node: FakeNode | None) -> CpuSnapshot:
        busy, total = machine_seconds()
        node_pids = fake_node.pids() if fake_node else []
        return cls(
            cpu_seconds(server.worker_pids()),
            cpu_seconds(postgres_pids(server.dbname)),
            cpu_seconds(node_pids),
            busy,
            total,
        )


# --------------------------------------------------------------------------- wrk


LUA_TEMPLATE = r"""-- generated by bench/api_bench.py
local method = %(method)s
local body = %(body)s
local headers = %(headers)s
local paths = %(paths)s
local reqs = {}
local idx = 0
codes = {}
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  for i, p in ipairs(paths) do
    local h = {}
    for k, v in pairs(headers) do h[k] = v end
    reqs[i] = wrk.format(method, p, h, body)
  end
  idx = (((tid or 1) - 1) * 7919) %% #reqs
end

function request()
  idx = idx %% #reqs + 1
  return reqs[idx]
end

function response(status, hdrs, resp_body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, t in ipairs(threads) do
    local c = t:get("codes") or {}
    for k, v in pairs(c) do merged[tostring(k)] = (merged[tostring(k)] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(merged) do table.insert(parts, string.format('"%%s": %%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, ' ..
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d, "mean_us": %%.1f, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, ' ..
    '"codes": {%%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ", ")))
end
"""


def lua_string(value: str) -> str:
    return json.dumps(value)  # ASCII JSON string literals are valid Lua string literals


def write_lua(path: Path, method: str, paths: list[str], headers: dict[str, str]) -> None:
    body = lua_string("") if method == "POST" else "nil"
    header_table = (
        "{" + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()) + "}"
    )
    path_table = "{\n" + ",\n".join(lua_string(p) for p in paths) + "\n}"
    path.write_text(
        LUA_TEMPLATE
        % {
            "method": lua_string(method),
            "body": body,
            "headers": header_table,
            "paths": path_table,
        }
    )


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing wrk (apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "wrk"],
            check=False,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=False, stdout=subprocess.DEVNULL)
            subprocess.run(
                ["apt-get", "install", "-y", "-q", "wrk"],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk not found: install it (Debian/Ubuntu: apt-get install wrk)")
    return found


def run_wrk(
    wrk: str, base: str, lua: Path, connections: int, threads: int, duration_s: int
) -> dict[str, Any]:
    argv = [
        wrk,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(lua),
        base,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON ") :])
    raise SystemExit(f"wrk gave no result (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    name: str
    endpoint: str
    method: str
    paths: list[str]
    is_list: bool  # held to the target against the baseline
    note: str
    baseline: bool = False  # served by bench.baseline_app, not the API


def build_scenarios(uuids: dict[str, list[str]], n_models: int) -> list[Scenario]:
    last_page = max(0, (n_models - 1) // 20)
    mixed = [f"/api/models/list?page={p}&size=20" for p in range(50)]
    mixed += [f"/api/models/list?status={s}&page={p}&size=20" for s in STATUSES for p in range(5)]
    mixed += [f"/api/models/list?modelNo={m}&page={p}&size=20" for m in MODEL_NOS for p in range(5)]
    mixed += [
        f"/api/models/list?status={s}&modelNo={m}&page=0&size=20"
        for s in STATUSES
        for m in MODEL_NOS
    ]
    mixed += [f"/api/models/list?status=&modelNo=&page={p}&size=20" for p in (0, 1, 2)]
    mixed += [f"/api/models/list?page={p}&size=20" for p in (100, last_page // 2, last_page)]
    everything = uuids["idle"] + uuids["live"]
    random.Random(7).shuffle(everything)
    return [
        Scenario(
            "baseline",
            "jsonify(constant first page)",
            "GET",
            [FIRST_PAGE],
            False,
            "bench.baseline_app: the API's first page as a constant, jsonify, no database",
            baseline=True,
        ),
        Scenario(
            "floor",
            "jsonify(constant) after SELECT 1",
            "GET",
            ["/floor"],
            False,
            "bench.baseline_app: the baseline after one round trip to PostgreSQL",
            baseline=True,
        ),
        Scenario(
            "floor-detail",
            "jsonify(constant) after the detail's statement",
            "GET",
            [f"/floor/{u}" for u in everything],
            False,
            "bench.baseline_app: the baseline after the detail's one statement, its uuids",
            baseline=True,
        ),
        Scenario(
            "list-first",
            "GET /api/models/list",
            "GET",
            [FIRST_PAGE],
            True,
            "first page, no filter (the dashboard's default view)",
        ),
        Scenario(
            "list-mixed",
            "GET /api/models/list",
            "GET",
            mixed,
            True,
            f"{len(mixed)} variants: pages 0-49, status / modelNo / both filters, deep pages",
        ),
        Scenario(
            "detail",
            "GET /api/models/{uuid}",
            "GET",
            [f"/api/models/{u}" for u in everything],
            True,
            f"all {len(everything)} uuids in random order (jobs, queue position, metric summary)",
        ),
        Scenario(
            "status-all",
            "POST /api/train/status/{uuid}",
            "POST",
            [f"/api/train/status/{u}" for u in everything],
            False,
            f"all {len(everything)} uuids; {len(uuids['live'])} have a live job "
            "(sync task + wait for the node)",
        ),
        Scenario(
            "status-live",
            "POST /api/train/status/{uuid}",
            "POST",
            [f"/api/train/status/{u}" for u in uuids["live"]],
            False,
            "only models with a RUNNING job on a node: "
            "every call sends a sync task and waits for the answer",
        ),
    ]


def start_servers(
    config: ServerConfig, env: dict[str, str], workdir: Path, app: str, headers: dict[str, str]
) -> dict[bool, Server]:
    """The API and, beside it under the same gunicorn config, the baseline serving the API's
    own first page as a constant; keyed by `Scenario.baseline`."""
    api = Server(config, env, workdir, app)
    log(f"starting gunicorn {config.label}: {' '.join(api.argv[1:])}")
    api.start()
    try:
        status, raw = http(api.base + FIRST_PAGE, "GET", headers=headers)
        if status != 200:
            raise SystemExit(f"GET {FIRST_PAGE} -> {status}: {raw[:300]!r}")
        page = workdir / "baseline-page.json"
        page.write_bytes(raw)
        baseline_env = {
            **env,
            "BENCH_BASELINE_PAGE": str(page),
            "BENCH_FLOOR_DATABASE": libpq_url(env["DATABASE_URL"]),  # the floor's SELECT 1
        }
        baseline = Server(
            config, baseline_env, workdir, "bench.baseline_app:create_app()", name="baseline"
        )
        log(f"starting the baseline under gunicorn {config.label} ({len(raw)} bytes a page)")
        baseline.start()
    except BaseException:
        api.stop()
        raise
    got = http(baseline.base + FIRST_PAGE, "GET")[1]
    if got != raw:
        log(f"baseline answers {len(got)} bytes, not the API's {len(raw)}: not the same page")
    return {False: api, True: baseline}


def measure_quietly(
    server: Server,
    fake_node: FakeNode | None,
    scenario: Scenario,
    load: Callable[[], dict[str, Any]],
    connections: int,
    args: argparse.Namespace,
    mode: str = "closed",
    rate: float = 0.0,
) -> Row:
    """`measure`, again (up to --retries) while other processes used more than --max-other."""
    row = None
    for attempt in range(1 + args.retries):
        if attempt and row is not None:
            log(
                f"  other processes used {row.other_pct:.0f} % CPU; "
                f"measuring again in {args.retry_wait}s"
            )
            time.sleep(args.retry_wait)
        new = measure(server, fake_node, scenario, load, connections, mode, rate)
        if row is None or new.other_pct < row.other_pct:
            row = new
        if row.other_pct <= args.max_other:
            break
    assert row is not None
    row.noisy = row.other_pct > args.max_other
    log(
        f"  {row.load}: {row.rps:.0f} req/s, p50 {row.p50_ms:.1f} ms, p99 {row.p99_ms:.1f} ms, "
        f"non-2xx {row.non2xx}, codes {row.codes}"
    )
    return row


def open_rate(args: argparse.Namespace, rows: list[Row], config: str) -> float:
    """The open loop's rate: --open-rate, else --open-fraction of the baseline's closed-loop
    req/s at the first concurrency in this run (the median over --rounds); 0 (no open loop)
    when neither is known."""
    if args.open_fraction <= 0 and not args.open_rate:
        return 0.0
    if args.open_rate:
        return float(args.open_rate)
    closed = [r for r in rows if r.config == config and r.mode == "closed"]
    if not closed:
        return 0.0
    first = min(r.connections for r in closed)
    base = [r.rps for r in closed if r.scenario == "baseline" and r.connections == first]
    return round(statistics.median(base) * args.open_fraction) if base else 0.0


def sanity_check(
    servers: dict[bool, Server],
    scenarios: list[Scenario],
    headers: dict[str, str],
    n_models: int,
    expect_answer: bool,
) -> list[str]:
    """One request per kind of variant; return problems (non-200, envelope, counts).
    `servers`: the API (False) and the baseline (True), by `Scenario.baseline`."""
    problems = []
    for scenario in scenarios:
        base = servers[scenario.baseline].base
        sample = scenario.paths[:: max(1, len(scenario.paths) // 12)][:12]
        for path in sample:
            status, raw = http(base + path, scenario.method, headers=headers)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if status != 200 or not isinstance(body, dict) or body.get("success") is not True:
                problems.append(f"{scenario.method} {path} -> {status}: {raw[:300]!r}")
                continue
            data = body["data"]
            if path == FIRST_PAGE and (
                data.get("totalElements") != n_models or len(data.get("content", [])) != 20
            ):
                problems.append(
                    f"{path}: totalElements={data.get('totalElements')} "
                    f"content={len(data.get('content', []))}, expected {n_models}/20"
                )
            sync = data.get("sync") or {}
            if scenario.name == "status-live" and (
                not sync.get("requested") or (expect_answer and sync.get("answered") is False)
            ):
                problems.append(f"{path}: live job but sync={sync}")
    return problems


# --------------------------------------------------------------------------- main


@dataclass
class Row:
    config: str
    scenario: str
    endpoint: str
    connections: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non2xx: int
    socket_errors: int
    codes: dict[str, int]
    app_cpu_ms: float
    pg_cpu_ms: float
    wrk_cpu_ms: float
    busy_pct: float
    other_pct: float
    is_list: bool = field(repr=False, default=False)
    noisy: bool = False
    mode: str = "closed"  # closed: wrk, `connections` at once; open: bench.open_loop at `rate`
    rate: float = 0.0  # the open loop's target requests/s
    max_lag_ms: float = 0.0  # open loop: how late the generator itself sent a request
    rps_ratio: float | None = None  # to the baseline row of the same run, mode, load, round
    p99_ratio: float | None = None
    round: int = 0  # closed loop: which of --rounds (from 1); open loop: 0

    @property
    def load(self) -> str:
        return f"c{self.connections}" if self.mode == "closed" else f"@{self.rate:.0f}/s"

    @property
    def meets_target(self) -> bool:
        return meets_target(self.rps_ratio, self.p99_ratio, open_loop=self.mode == "open")


def meets_target(rps_ratio: float | None, p99_ratio: float | None, open_loop: bool) -> bool:
    """Issue 13: >= 60 % of the baseline's req/s (closed loop; an open loop's throughput is
    its rate) with a p99 at most 2x the baseline's."""
    if p99_ratio is None:
        return False
    fast_enough = open_loop or (rps_ratio is not None and rps_ratio >= TARGET_RPS_RATIO)
    return fast_enough and p99_ratio <= TARGET_P99_RATIO


def measure(
    server: Server,
    fake_node: FakeNode | None,
    scenario: Scenario,
    load: Callable[[], dict[str, Any]],
    connections: int,
    mode: str = "closed",
    rate: float = 0.0,
) -> Row:
    """Run `load` (wrk or the open loop, a child process) and account for the CPU it cost."""
    before = CpuSnapshot.take(server, fake_node)
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = load()
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = CpuSnapshot.take(server, fake_node)
    n = max(1, result["requests"])
    seconds = result["duration_us"] / 1e6
    e = result["errors"]
    app_s = seconds_between(before.app, after.app)
    pg_s = seconds_between(before.pg, after.pg)
    node_s = seconds_between(before.node, after.node)
    wrk_s = (usage_after.ru_utime + usage_after.ru_stime) - (
        usage_before.ru_utime + usage_before.ru_stime
    )
    busy_s = after.busy - before.busy
    wall_cpu_s = after.total - before.total  # elapsed seconds x CPUs
    return Row(
        config=server.config.label,
        scenario=scenario.name,
        endpoint=scenario.endpoint,
        connections=connections,
        rps=result["requests"] / seconds,
        p50_ms=result["p50_us"] / 1000,
        p90_ms=result["p90_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        max_ms=result["max_us"] / 1000,
        requests=result["requests"],
        non2xx=e["status"],
        socket_errors=e["connect"] + e["read"] + e["write"] + e["timeout"],
        codes=result["codes"],
        app_cpu_ms=app_s * 1000 / n,
        pg_cpu_ms=pg_s * 1000 / n,
        wrk_cpu_ms=wrk_s * 1000 / n,
        busy_pct=100 * busy_s / max(1e-9, wall_cpu_s),
        other_pct=max(0.0, 100 * (busy_s - app_s - pg_s - wrk_s - node_s) / max(1e-9, wall_cpu_s)),
        is_list=scenario.is_list,
        mode=mode,
        rate=rate,
        max_lag_ms=float(result.get("max_lag_ms", 0.0)),
    )


def run_open_loop(
    base: str, spec: Path, rate: float, duration_s: int, timeout_s: float = 5.0
) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "bench.open_loop",
        str(spec),
        base,
        "--rate",
        f"{rate:.1f}",
        "--duration",
        str(duration_s),
        "--timeout",
        str(timeout_s),
    ]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + 60, cwd=ROOT
    )
    for line in proc.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON ") :])
    raise SystemExit(f"open loop gave no result (rc {proc.returncode}):\n{proc.stderr[-2000:]}")


def compare_to_baseline(rows: list[Row]) -> None:
    """Set each API row's ratios to the baseline row of the same server config, mode, load and
    round."""
    baselines = {(r.config, r.mode, r.load, r.round): r for r in rows if r.scenario == "baseline"}
    for row in rows:
        base = baselines.get((row.config, row.mode, row.load, row.round))
        if base is None:
            continue
        row.rps_ratio = row.rps / base.rps if base.rps else None
        row.p99_ratio = row.p99_ms / base.p99_ms if base.p99_ms else None


def profile(
    server: Server,
    wrk: str,
    scenario: Scenario,
    lua: Path,
    connections: int,
    threads: int,
    duration_s: int,
    outdir: Path,
) -> None:
    """Sample every gunicorn worker with py-spy while wrk runs; summarise where app/ spends."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        log("py-spy not found (pip install py-spy); skipping the profile")
        return
    outdir.mkdir(parents=True, exist_ok=True)
    stem = outdir / f"{server.config.label.replace(':', '-')}-{scenario.name}"
    procs = []
    for fmt, suffix in (("flamegraph", ".svg"), ("raw", ".txt")):
        argv = [
            py_spy,
            "record",
            "--subprocesses",
            "-p",
            str(server.proc.pid),
            "-r",
            "200",
            "-d",
            str(duration_s + 1),
            "-f",
            fmt,
            "-o",
            f"{stem}{suffix}",
        ]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)
    result = run_wrk(wrk, server.base, lua, connections, threads, duration_s)
    for proc in procs:
        try:
            proc.wait(timeout=duration_s + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
    log(
        f"profile {server.config.label} {scenario.name} c={connections} "
        f"({result['requests'] / (result['duration_us'] / 1e6):.0f} req/s under py-spy): "
        f"{stem}.svg"
    )
    print_profile_summary(Path(f"{stem}.txt"), f"{server.config.label} {scenario.name}")


def print_profile_summary(folded: Path, title: str, top: int = 25) -> None:
    """Inclusive share of busy worker samples per frame, for frames in the project's code."""
    try:
        lines = folded.read_text().splitlines()
    except OSError:
        return
    by_function: Counter[str] = Counter()
    by_line: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        seen: set[tuple[str, str]] = set()
        for frame in stack.split(";"):
            match = re.match(r"(.*) \((.*?):(\d+)\)$", frame)
            if not match:
                continue
            path = match.group(2)  # py-spy shortens paths to their sys.path entry
            if path.startswith(str(ROOT) + "/"):
                path = os.path.relpath(path, ROOT)
            if path.startswith(("app/", "workers/")):
                seen.add((f"{match.group(1)} ({path})", f"{path}:{match.group(3)}"))
        for function in {f for f, _ in seen}:
            by_function[function] += int(count)
        for function, line in seen:
            by_line[f"{line} in {function.split(' ')[0]}"] += int(count)
    if not total:
        return
    print(f"\nprofile {title}: share of busy worker samples spent in (inclusive)")
    for name, count in by_function.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("  by line:")
    for name, count in by_line.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'server':<13} {'scenario':<12} {'endpoint':<30} {'rnd':>3} {'load':>8} {'req/s':>7} "
        f"{'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'non2xx':>6} {'sockerr':>7} "
        f"{'app cpu':>7} {'pg cpu':>7} {'gen cpu':>7} {'busy':>5} {'other':>5} "
        f"{'x rps':>6} {'x p99':>6}  target"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        target = ("ok" if r.meets_target else "MISS") if r.is_list else ""
        if r.noisy:
            target = f"{target} (noisy)".strip()
        if r.mode == "open" and r.max_lag_ms > 5:
            target = f"{target} (generator {r.max_lag_ms:.0f} ms late)".strip()
        print(
            f"{r.config:<13} {r.scenario:<12} {r.endpoint:<30} {r.round or '':>3} {r.load:>8} "
            f"{r.rps:>7.0f} "
            f"{r.p50_ms:>7.1f} {r.p90_ms:>7.1f} {r.p99_ms:>7.1f} {r.max_ms:>7.1f} {r.non2xx:>6} "
            f"{r.socket_errors:>7} {r.app_cpu_ms:>6.2f}m {r.pg_cpu_ms:>6.2f}m "
            f"{r.wrk_cpu_ms:>6.2f}m {r.busy_pct:>4.0f}% {r.other_pct:>4.0f}% "
            f"{_ratio(r.rps_ratio):>6} {_ratio(r.p99_ratio):>6}  {target}"
        )
    print(
        "\nload: cN = closed loop, wrk with N connections; @R/s = open loop, bench.open_loop "
        "sending R requests/s on a fixed schedule,\nits latency counted from when each request "
        "was due (no coordinated omission).\n"
        "app / pg / gen cpu: CPU ms per request spent in the gunicorn workers / the postgres "
        "backends of the bench database / the load generator\n(the fake node's CPU is in none "
        "of them, nor in other). "
        "busy: whole-machine CPU use; other: CPU used by processes outside the bench "
        "(noisy: a row whose other stayed above --max-other after its retries).\n"
        "x rps, x p99: the row's req/s and p99 over the baseline row's (same server config, "
        "load and round (rnd, --rounds), same run)."
    )
    print(
        f"target (issue 13): req/s >= {TARGET_RPS_RATIO:.0%} of the baseline's and "
        f"p99 <= {TARGET_P99_RATIO:g}x the baseline's"
    )


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def print_summary(rows: list[Row]) -> None:
    """Per server config and scenario: closed-loop req/s, p50, p99 at the first concurrency
    (with --rounds, the median over the rounds, and the range of `x rps`), the open loop's
    p99, the ratios to the baseline and the verdict (the figures issue 13 asks for)."""
    closed_loads = sorted({r.connections for r in rows if r.mode == "closed"})
    if not closed_loads:
        return
    first = closed_loads[0]
    rounds = max(r.round for r in rows)
    over = f", median of {rounds} rounds" if rounds > 1 else ""
    print(f"\nsummary (closed loop c{first}{over}; open loop at a fixed rate):")
    print(
        f"  {'server':<13} {'scenario':<12} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'x rps':>6} {'range':>9} {'x p99':>6} {'open rate':>9} {'open p99':>8} {'x p99':>6} "
        f"{'app cpu':>7}  target"
    )
    keys = dict.fromkeys((r.config, r.scenario) for r in rows if r.mode == "closed")
    for config, scenario in keys:
        closed = [
            r
            for r in rows
            if r.mode == "closed"
            and r.connections == first
            and (r.config, r.scenario) == (config, scenario)
        ]
        opened = next(
            (r for r in rows if r.mode == "open" and (r.config, r.scenario) == (config, scenario)),
            None,
        )
        open_cols = (
            f"{opened.rate:>7.0f}/s {opened.p99_ms:>8.1f} {_ratio(opened.p99_ratio):>6}"
            if opened
            else f"{'':>9} {'':>8} {'':>6}"
        )
        rps_ratios = [r.rps_ratio for r in closed if r.rps_ratio is not None]
        p99_ratios = [r.p99_ratio for r in closed if r.p99_ratio is not None]
        rps_ratio = statistics.median(rps_ratios) if rps_ratios else None
        p99_ratio = statistics.median(p99_ratios) if p99_ratios else None
        spread = f"{min(rps_ratios):.2f}-{max(rps_ratios):.2f}" if len(rps_ratios) > 1 else ""
        target = ""
        if closed[0].is_list:
            target = "ok" if meets_target(rps_ratio, p99_ratio, open_loop=False) else "MISS"
        print(
            f"  {config:<13} {scenario:<12} {statistics.median(r.rps for r in closed):>7.0f} "
            f"{statistics.median(r.p50_ms for r in closed):>7.1f} "
            f"{statistics.median(r.p99_ms for r in closed):>7.1f} {_ratio(rps_ratio):>6} "
            f"{spread:>9} {_ratio(p99_ratio):>6} {open_cols} "
            f"{statistics.median(r.app_cpu_ms for r in closed):>6.2f}m  {target}"
        )


def cleanup_broker(broker_url: str) -> None:
    try:
        import redis
    except ImportError:
        return
    try:
        client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)
        removed = 0
        for node in BENCH_NODES:
            for pattern in (f"node.{node}*", f"_kombu.binding*.node.{node}*"):
                for key in client.scan_iter(pattern):
                    removed += client.delete(key)
        if removed:
            log(f"deleted {removed} bench queue key(s) from {broker_url}")
    except Exception as exc:  # the bench result stands without this cleanup
        log(f"broker cleanup skipped: {exc}")


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument(
        "--broker-url", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER_URL)
    )
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument(
        "--configs",
        default="sync:4",
        help="comma-separated gunicorn configs: sync:N or gthread:NxT (default sync:4)",
    )
    parser.add_argument("--concurrency", default="8,32", help="wrk connections, comma-separated")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (max 60)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per scenario")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="closed-loop rows measured this many times, every scenario once per round in "
        "order (baseline first); each round's ratios are to its own baseline and the summary "
        "shows their median (the machine's speed drifts more between minutes than the API's)",
    )
    parser.add_argument(
        "--scenarios",
        default="baseline,floor,floor-detail,list-first,list-mixed,detail,status-all,status-live",
        help="comma-separated; baseline first (the ratios and the open loop's rate need it)",
    )
    parser.add_argument(
        "--open-rate",
        type=float,
        default=0.0,
        help="open loop: requests/s for every scenario (default: --open-fraction of the "
        "baseline's closed-loop req/s in this run)",
    )
    parser.add_argument(
        "--open-fraction",
        type=float,
        default=0.5,
        help="open loop rate as a share of the baseline's req/s (0.5; 0 and no --open-rate: "
        "no open loop)",
    )
    parser.add_argument(
        "--open-duration", type=int, default=10, help="seconds of each open-loop row (max 60)"
    )
    parser.add_argument(
        "--app",
        default="app.factory:create_app()",
        help="gunicorn app target (default app.factory:create_app())",
    )
    parser.add_argument(
        "--no-fake-node",
        action="store_true",
        help="do not answer status syncs (live-job calls then wait for the API's timeout)",
    )
    parser.add_argument("--no-seed", action="store_true", help="keep the data already there")
    parser.add_argument("--seed", type=int, default=20250101, help="random seed for the data")
    parser.add_argument(
        "--max-other",
        type=float,
        default=10.0,
        help="CPU %% other processes may use during a measurement before it is retried (10)",
    )
    parser.add_argument("--retries", type=int, default=2, help="retries of a noisy measurement")
    parser.add_argument("--retry-wait", type=int, default=5, help="seconds before a retry")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="after each scenario, run it once more under py-spy (all gunicorn workers) and "
        "write DIR/<server>-<scenario>.svg and .txt (folded stacks); prints the top app/ frames",
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    parser.add_argument(
        "--force",
        action="store_true",
        help="allow a database whose name lacks 'bench' (it gets TRUNCATEd)",
    )
    args = parser.parse_args(argv)
    args.duration = max(1, min(args.duration, 60))
    args.open_duration = max(1, min(args.open_duration, 60))
    args.rounds = max(1, args.rounds)
    configs = [ServerConfig.parse(c) for c in args.configs.split(",") if c.strip()]
    connections = parse_ints(args.concurrency)

    dbname = urlsplit(libpq_url(args.database_url)).path.lstrip("/")
    if "bench" not in dbname and not args.force:
        raise SystemExit(
            f"refusing to reseed database {dbname!r}: its name lacks 'bench' (--force)"
        )
    for url in (args.database_url, args.broker_url):
        host = urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"only local services are benchmarked, not {host}")

    wrk = ensure_wrk()
    load_before = loadavg()
    sys.path.insert(0, str(ROOT))
    ensure_database(args.database_url)
    from app.db.migrate import upgrade

    upgrade(args.database_url)
    if args.no_seed:
        import psycopg

        with psycopg.connect(libpq_url(args.database_url)) as conn:
            rows = conn.execute(
                "select m.uuid::text, exists (select 1 from tb_model_train_job j "
                "where j.model_id = m.id and j.status_cd in ('QUEUED', 'RUNNING') "
                "and j.node is not null) "
                "from tb_model_master m"
            ).fetchall()
        uuids = {
            "live": [u for u, live in rows if live],
            "idle": [u for u, live in rows if not live],
        }
        args.models = len(rows)
    else:
        uuids = seed(args.database_url, args.models, args.seed)

    wanted = {s.strip() for s in args.scenarios.split(",")}
    scenarios = [s for s in build_scenarios(uuids, args.models) if s.name in wanted and s.paths]
    headers = {"Content-Type": "application/json"}  # the API refuses writes without it
    if os.environ.get("API_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['API_TOKEN']}"

    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "BROKER_URL": args.broker_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    rows: list[Row] = []
    server_errors: dict[str, Counter[str]] = {}
    problems_seen: list[str] = []
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as tmp:
        workdir = Path(tmp)
        luas, specs = {}, {}
        for scenario in scenarios:
            luas[scenario.name] = workdir / f"{scenario.name}.lua"
            write_lua(luas[scenario.name], scenario.method, scenario.paths, headers)
            specs[scenario.name] = workdir / f"{scenario.name}.json"
            specs[scenario.name].write_text(
                json.dumps({"method": scenario.method, "paths": scenario.paths, "headers": headers})
            )
        fake_node = None if args.no_fake_node else FakeNode(args.broker_url, env, workdir)
        try:
            if fake_node:
                log("starting the fake node (answers status syncs for the bench nodes)")
                fake_node.start()
            for config in configs:
                servers = start_servers(config, env, workdir, args.app, headers)
                try:
                    problems = sanity_check(
                        servers,
                        scenarios,
                        headers,
                        args.models,
                        expect_answer=fake_node is not None,
                    )
                    if problems:
                        problems_seen += [f"{config.label}: {p}" for p in problems]
                        log("sanity check FAILED:\n  " + "\n  ".join(problems))
                    for round_no in range(1, args.rounds + 1):
                        for scenario in scenarios:
                            server = servers[scenario.baseline]
                            of = f" (round {round_no} of {args.rounds})" if args.rounds > 1 else ""
                            log(f"{config.label} {scenario.name}{of}: {scenario.note}")
                            if args.warmup and round_no == 1:
                                run_wrk(
                                    wrk,
                                    server.base,
                                    luas[scenario.name],
                                    max(connections),
                                    args.wrk_threads,
                                    args.warmup,
                                )
                            for conc in connections:
                                closed = functools.partial(
                                    run_wrk,
                                    wrk,
                                    server.base,
                                    luas[scenario.name],
                                    conc,
                                    args.wrk_threads,
                                    args.duration,
                                )
                                row = measure_quietly(
                                    server, fake_node, scenario, closed, conc, args
                                )
                                row.round = round_no
                                rows.append(row)
                    rate = open_rate(args, rows, config.label)
                    for scenario in scenarios:
                        server = servers[scenario.baseline]
                        if rate:
                            log(f"{config.label} {scenario.name}: open loop at {rate:.0f}/s")
                            opened = functools.partial(
                                run_open_loop,
                                server.base,
                                specs[scenario.name],
                                rate,
                                args.open_duration,
                            )
                            rows.append(
                                measure_quietly(
                                    server, fake_node, scenario, opened, 0, args, "open", rate
                                )
                            )
                        if args.profile:
                            profile(
                                server,
                                wrk,
                                scenario,
                                luas[scenario.name],
                                max(connections),
                                args.wrk_threads,
                                args.duration,
                                args.profile,
                            )
                finally:
                    for server in servers.values():
                        server.stop()
                        server_errors[server.label] = server.errors_logged()
        finally:
            if fake_node:
                fake_node.stop()
            cleanup_broker(args.broker_url)
    compare_to_baseline(rows)

    print()
    print(
        f"trainyard API bench: {args.models} models in {dbname}, {os.cpu_count()} CPUs, "
        f"wrk {args.wrk_threads} thread(s), {args.duration}s per row, closed loop; "
        f"load average before: {load_before}, after: {loadavg()}"
    )
    print_table(rows)
    print_summary(rows)
    for label, errors in server_errors.items():
        if errors:
            print(f"\nserver errors logged by gunicorn {label} (distinct exceptions, counted):")
            for line, count in errors.most_common(10):
                print(f"  {count:>6} x {line}")
    bad = [r for r in rows if r.non2xx or r.socket_errors]
    for r in bad:
        print(
            f"\n{r.config} {r.scenario} {r.load}: {r.non2xx} non-2xx, "
            f"{r.socket_errors} socket errors, codes {r.codes}"
        )
    if problems_seen:
        print(
            f"\nsanity check problems ({len(problems_seen)}), first 10:\n  "
            + "\n  ".join(problems_seen[:10])
        )
    if args.json:
        args.json.write_text(json.dumps([{**r.__dict__} for r in rows], indent=2))
    return 1 if (bad or problems_seen) else 0


if __name__ == "__main__":
    sys.exit(main())
