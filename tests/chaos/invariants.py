"""What must hold after every scenario, at rest, checked with SQL against the stack's own
database and with the Docker engine (filtered on the stack's installation id). Each check
returns a list of violations, each a sentence naming what is wrong and where."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from app.domain import layout
from app.domain.states import StepState, derive_model_status
from tests.chaos.harness import Stack

#: How far a recorded time may be from what the container itself reported (issue 12 #7).
TIME_BOUND_S = 3.0

#: A job's status → the state of its step while it is the model's latest job of that step.
STEP_OF_JOB = {
    "QUEUED": "IN_PROGRESS",
    "RUNNING": "IN_PROGRESS",
    "SUCCESS": "COMPLETED",
    "FAILED": "ERROR",
    "STOPPED": "STOPPED",
    "CANCELED": "STOPPED",
}


def _rows(conn: psycopg.Connection[Any], query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query).fetchall()


def one_live_job_per_model(stack: Stack, conn: psycopg.Connection[Any]) -> list[str]:
    rows = _rows(
        conn,
        "SELECT model_id, count(*) FROM tb_model_train_job"
        " WHERE status_cd IN ('QUEUED','RUNNING') GROUP BY model_id HAVING count(*) > 1",
    )
    return [f"model {m} has {n} live jobs" for m, n in rows]


def one_container_per_model(stack: Stack, conn: psycopg.Connection[Any]) -> list[str]:
    per_model = Counter(c.labels.get("trainyard.model_uuid") for c in stack.own_containers())
    return [f"model {m} has {n} containers" for m, n in per_model.items() if n > 1]


def status_consistent_with_steps(stack: Stack, conn: psycopg.Connection[Any]) -> list[str]:
    violations = []
    models = _rows(
        conn, "SELECT id, uuid, status_cd, step1_state, step2_state FROM tb_model_master"
    )
    latest = {
        (model_id, job_type): status
        for model_id, job_type, status in _rows(
            conn,
            "SELECT DISTINCT ON (model_id, job_type) model_id, job_type, status_cd"
            " FROM tb_model_train_job ORDER BY model_id, job_type, attempt DESC, id DESC",
        )
    }
    for model_id, uid, status, step1, step2 in models:
        derived = derive_model_status(StepState(step1), StepState(step2)).value
        if status != derived:
            violations.append(f"model {uid}: status {status}, steps {step1}/{step2} say {derived}")
        for job_type, step in (("TRAIN", step1), ("EVAL", step2)):
            job_status = latest.get((model_id, job_type))
            if job_status is not None and STEP_OF_JOB[job_status] != step:
                violations.append(
                    f"model {uid}: latest {job_type} job is {job_status} but its step is {step}"
                )
    return violations


def no_duplicate_metric_rows(stack: Stack, conn: psycopg.Connection[Any]) -> list[str]:
    violations = []
    for table in ("tb_model_metrics_train", "tb_model_metrics_validation", "tb_model_metrics_test"):
        for model_id, epoch, step, n in _rows(
            conn,
            f"SELECT model_id, epoch, step, count(*) FROM {table}"
            " GROUP BY 1, 2, 3 HAVING count(*) > 1",
        ):
            violations.append(f"{table}: model {model_id} epoch {epoch} step {step} x{n}")
    # The series' own row counts must agree with the rows (a re-ingest that doubled or lost
    # rows would show here even where the primary key holds).
    table_of = {
        "train": "tb_model_metrics_train",
        "val": "tb_model_metrics_validation",
        "test": "tb_model_metrics_test",
    }
    for model_id, split, job_id, row_count in _rows(
        conn, "SELECT model_id, split, job_id, row_count FROM tb_model_metric_series"
    ):
        actual = conn.execute(
            f"SELECT count(*) FROM {table_of[split]} WHERE model_id = %s AND job_id = %s",
            (model_id, job_id),
        ).fetchone()
        if actual is not None and actual[0] != row_count:
            violations.append(
                f"series model {model_id} {split} job {job_id}: row_count {row_count},"
                f" {actual[0]} rows"
            )
    return violations


def _csv_data_rows(path: Path) -> int | None:
    if not path.exists():
        return None
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        return max(0, sum(1 for row in csv.reader(fh) if row) - 1)


def ended_runs_metrics_complete(stack: Stack, conn: psycopg.Connection[Any]) -> list[str]:
    """Every ended training whose CSVs are on disk has every CSV row in the database (issue
    12 #8: cancel, failure, stop and node loss included), and a successful one all epochs."""
    violations = []
    for model_id, uid, status, params, job_id in _rows(
        conn,
        "SELECT DISTINCT ON (m.id) m.id, m.uuid, j.status_cd, j.params, j.id"
        " FROM tb_model_master m JOIN tb_model_train_job j ON j.model_id = m.id"
        " WHERE j.job_type = 'TRAIN' ORDER BY m.id, j.attempt DESC, j.id DESC",
    ):
        if status not in ("SUCCESS", "FAILED", "STOPPED", "CANCELED"):
            continue
        train_dir = layout.train_dir(stack.output_root, uid)
        for name, table in (
            ("train.csv", "tb_model_metrics_train"),
            ("val.csv", "tb_model_metrics_validation"),
        ):
            on_disk = _csv_data_rows(train_dir / name)
            if on_disk is None:
                if status == "SUCCESS" and name == "train.csv":  # else this check saw nothing
                    violations.append(f"model {uid}: SUCCESS without {train_dir / name}")
                continue
            stored = conn.execute(
                f"SELECT count(*) FROM {table} WHERE model_id = %s", (model_id,)
            ).fetchone()
            if stored is not None and stored[0] != on_disk:
                violations.append(
                    f"model {uid} ({status} job {job_id}): {name} has {on_disk} rows,"
                    f" the database {stored[0]}"
                )
        if status == "SUCCESS":
            total = int((params or {}).get("total_epoch") or 0)
            epochs = conn.execute(
                "SELECT count(DISTINCT epoch) FROM tb_model_metrics_train WHERE model_id = %s",
                (model_id,),
            ).fetchone()
            if total and epochs is not None and epochs[0] != total:
                violations.append(f"model {uid}: SUCCESS with {epochs[0]} of {total} epochs")
    return violations


def outbox_empty(stack: Stack, conn: psycopg.Connection[Any]) -> list[str]:
    rows = _rows(
        conn,
        "SELECT id, task_name FROM tb_outbox"
        " WHERE published_dttm IS NULL AND given_up_dttm IS NULL",
    )
    return [f"outbox message {i} ({task}) unsent at rest" for i, task in rows]


def no_container_without_live_job(stack: Stack, conn: psycopg.Connection[Any]) -> list[str]:
    live = {
        str(job_id)
        for (job_id,) in _rows(
            conn, "SELECT id FROM tb_model_train_job WHERE status_cd IN ('QUEUED','RUNNING')"
        )
    }
    return [
        f"container {c.name} ({c.status}) of job {c.labels.get('trainyard.job_id')} has no live job"
        for c in stack.own_containers()
        if c.labels.get("trainyard.job_id") not in live
    ]


def no_gpu_lease_without_live_job(stack: Stack, conn: psycopg.Connection[Any]) -> list[str]:
    rows = _rows(
        conn,
        "SELECT l.node, l.gpu_id, l.job_id, j.status_cd FROM tb_gpu_lease l"
        " LEFT JOIN tb_model_train_job j ON j.id = l.job_id"
        " WHERE j.id IS NULL OR j.status_cd NOT IN ('QUEUED','RUNNING')",
    )
    return [f"GPU {n}/{g} leased to job {j} ({s})" for n, g, j, s in rows]


def _apart(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return abs((a - b).total_seconds())


def times_match_containers(stack: Stack, conn: psycopg.Connection[Any]) -> list[str]:
    """A step's end is when its container ended, not when someone judged it (issue 12 #7),
    and a training that ran has a start."""
    violations = []
    for uid, status, strt, end, container_end, started in _rows(
        conn,
        "SELECT DISTINCT ON (m.id) m.uuid, j.status_cd, m.step1_strt_dttm, m.step1_end_dttm,"
        " j.container_ended_dttm, j.started_dttm"
        " FROM tb_model_master m JOIN tb_model_train_job j ON j.model_id = m.id"
        " WHERE j.job_type = 'TRAIN' ORDER BY m.id, j.attempt DESC, j.id DESC",
    ):
        if status == "SUCCESS" and strt is None:
            violations.append(f"model {uid}: COMPLETED without a step1 start time")
        gap = _apart(end, container_end)
        if gap is not None and gap > TIME_BOUND_S:
            violations.append(
                f"model {uid} ({status}): step1 end {gap:.1f} s from the container's end"
            )
        gap = _apart(strt, started)
        if gap is not None and gap > TIME_BOUND_S:
            violations.append(f"model {uid} ({status}): step1 start {gap:.1f} s from the job's")
    return violations


CHECKS: dict[str, Callable[[Stack, psycopg.Connection[Any]], list[str]]] = {
    "one live job per model": one_live_job_per_model,
    "one container per model": one_container_per_model,
    "status consistent with steps": status_consistent_with_steps,
    "no duplicate metric rows": no_duplicate_metric_rows,
    "ended runs' metrics complete": ended_runs_metrics_complete,
    "outbox empty at rest": outbox_empty,
    "no labelled container without a live job": no_container_without_live_job,
    "no GPU lease without a live job": no_gpu_lease_without_live_job,
    "times within bound of the container's": times_match_containers,
}


def check_all(stack: Stack) -> list[str]:
    violations: list[str] = []
    with stack.sql() as conn:
        for name, check in CHECKS.items():
            violations += [f"[{name}] {v}" for v in check(stack, conn)]
    return violations
