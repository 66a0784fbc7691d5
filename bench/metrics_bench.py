"""Metric ingest benchmark (not a test): how fast a train.csv reaches the metric tables.

    python -m bench.metrics_bench                      # 1,000,000 rows x 5 metrics, 3 rounds
    python -m bench.metrics_bench --rows 200000 --rounds 1 --no-mlflow

What it does, against 127.0.0.1 only (results: bench/METRICS.md):

1. writes train.csv (epoch + 5 metrics, ~55 bytes a row) and a 100-row val.csv in a temp folder;
2. creates the database `trainyard_metrics_bench` if missing, migrates it and empties it (it
   is the bench's own: every run starts from empty tables);
3. each round, on the same file and the same server, one after the other:
   - raw COPY: `COPY plain FROM STDIN (FORMAT csv, HEADER true)` of the file into a fresh
     plain table (epoch int, 5 float8, no key, no index) — the ceiling; then the same in
     text format (what ingest's fast path sends) and into a table keyed on epoch;
   - ingest: `ingest_train_outputs` for a fresh model, exactly as the completion worker runs
     it (lock the model row, savepoint, delete, COPY train.csv and val.csv, series rows, best
     epoch, commit);
   - re-ingest: the same again on that model and file: the rows loaded from the bytes the
     file still starts with are kept (a SHA-256 of the file decides), nothing is loaded —
     the completion after a live ingest is this plus the last rows;
   - replace: the same model with a file whose first row changed: delete the million rows,
     load the million new ones;
   and prints rows/s of each (median over the rounds), ingest / raw COPY, and that ratio
   for each round's back-to-back pair;
4. MLflow: `MlflowClient.log_batch` of the first --mlflow-rows rows (5 metrics each, step =
   epoch, 1,000 metrics a call: MLflow's limit) into a fresh SQLite tracking store, run in
   its own virtualenv (/tmp/mlflow-venv, created with `pip install mlflow` on first use;
   mlflow is never a project dependency). MLflow is slow, so a subset is timed and its rows/s
   taken as constant to extrapolate to the full file; the same subset also goes through
   trainyard's own SQLite path (the embedded default) for a like-for-like store;
5. drops the bench models' rows and the plain table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = (
    "postgresql+psycopg://trainyard:trainyard@127.0.0.1:5432/trainyard_metrics_bench"
)
MLFLOW_VENV = Path("/tmp/mlflow-venv")
HEADER = "epoch,loss,accuracy,lr,grad_norm,f1\n"

MLFLOW_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    path, store, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    run = client.create_run(client.create_experiment("metrics-bench"))  # schema made here
    with open(path) as handle:
        names = handle.readline().strip().split(",")[1:]
        lines = [next(handle) for _ in range(rows)]
    started = time.perf_counter()
    stamp = int(time.time() * 1000)
    batch = []
    for line in lines:
        cells = line.rstrip("\\n").split(",")
        step = int(cells[0])
        batch += [Metric(n, float(v), stamp, step) for n, v in zip(names, cells[1:])]
        if len(batch) >= 1000 - len(names):
            client.log_batch(run.info.run_id, metrics=batch)
            batch = []
    if batch:
        client.log_batch(run.info.run_id, metrics=batch)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))
    """
)


def log(message: str) -> None:
    print(f"[metrics-bench] {message}", file=sys.stderr, flush=True)


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def write_files(folder: Path, rows: int) -> Path:
    """train.csv with 5 metric columns (the issue's shape) and a small val.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    train = folder / "train.csv"
    with train.open("w") as handle:
        handle.write(HEADER)
        step = 100_000
        for start in range(1, rows + 1, step):
            handle.write(
                "".join(
                    f"{e},{1 / e:.12f},{(e % 997) / 997:.6f},{0.1 * 0.999 ** (e % 5000):.8f},"
                    f"{(e % 13) + 0.5},{(e % 101) / 101:.4f}\n"
                    for e in range(start, min(start + step, rows + 1))
                )
            )
    (folder / "val.csv").write_text(
        "epoch,val_loss,val_accuracy\n"
        + "".join(
            f"{e},{1 / e:.6f},{e / rows:.6f}\n" for e in range(rows // 100, rows + 1, rows // 100)
        )
    )
    return train


def ensure_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(libpq_url(url))
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            log(f"creating database {name}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


RAW_CSV = "(FORMAT csv, HEADER true)"
RAW_TEXT = "(FORMAT text, DELIMITER ',', NULL '')"  # the format ingest's fast path uses


def raw_copy(url: str, train: Path, keyed: bool = False, options: str = RAW_CSV) -> float:
    """COPY the file as it is into a fresh table; `keyed` gives it a primary key on epoch,
    which shows what the metric tables' key (model_id, epoch, step) costs on its own."""
    import psycopg

    key = " PRIMARY KEY" if keyed else ""
    skip_header = options != RAW_CSV
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_plain_copy")
        conn.execute(
            f"CREATE TABLE bench_plain_copy (epoch int{key}, loss float8, accuracy float8, "
            "lr float8, grad_norm float8, f1 float8)"
        )
        conn.commit()

        def run() -> None:
            with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY bench_plain_copy FROM STDIN {options}") as copy,
                train.open("rb") as handle,
            ):
                if skip_header:  # text format has no HEADER option before PostgreSQL 15
                    handle.readline()
                while block := handle.read(1 << 20):
                    copy.write(block)
            conn.commit()

        return timed(run)


def new_model(factory: Any) -> tuple[int, int]:
    from app.db.models import Job, Model
    from app.db.session import transaction

    with transaction(factory) as session:
        model = Model(
            model_no="G1",
            model_ver=f"bench-{uuid.uuid4().hex[:8]}",
            train_type="GENERAL",
            params={"total_epoch": 1, "val_interval": 1},
            image="bench",
            memo="metrics bench",
        )
        session.add(model)
        session.flush()
        job = Job(model_id=model.id, job_type="TRAIN", attempt=1, image="bench", params={})
        session.add(job)
        session.flush()
        return model.id, job.id


def ingest(factory: Any, model_id: int, job_id: int, folder: Path) -> float:
    """The completion worker's transaction around `ingest_train_outputs`."""
    from app.db.models import Job
    from app.db.session import transaction
    from app.metrics import ingest_train_outputs
    from app.services.status_writes import lock_model_by_id

    def run() -> None:
        with transaction(factory) as session:
            model = lock_model_by_id(session, model_id)
            job = session.get(Job, job_id)
            assert model is not None and job is not None
            with session.begin_nested():
                ingest_train_outputs(session, model, job, folder)

    return timed(run)


def mlflow_rows_per_s(train: Path, rows: int, work: Path) -> dict[str, Any]:
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {MLFLOW_VENV} and installing mlflow (once; a few minutes)")
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "mlflow"], check=True)
    script = work / "mlflow_log_batch.py"
    script.write_text(MLFLOW_SCRIPT)
    store = work / "mlflow.db"
    store.unlink(missing_ok=True)
    done = subprocess.run(
        [str(python), str(script), str(train), str(store), str(rows)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    version = subprocess.run(
        [str(python), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {**result, "rows_per_s": result["rows"] / result["seconds"], "version": version}


def sqlite_rows_per_s(train: Path, rows: int, work: Path) -> dict[str, Any]:
    """The same subset through trainyard's embedded default (SQLite, executemany)."""
    from app.db.migrate import upgrade
    from app.db.session import make_engine, make_session_factory

    folder = work / "subset"
    folder.mkdir(exist_ok=True)
    with train.open() as source, (folder / "train.csv").open("w") as target:
        target.write(source.readline())
        for _ in range(rows):
            target.write(next(source))
    (folder / "val.csv").write_text((train.parent / "val.csv").read_text())
    url = f"sqlite:///{work / 'trainyard-bench.db'}"
    (work / "trainyard-bench.db").unlink(missing_ok=True)
    upgrade(url)
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        seconds = ingest(factory, *new_model(factory), folder)
    finally:
        engine.dispose()
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mlflow-rows", type=int, default=20_000)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    from sqlalchemy import text

    from app.db.migrate import upgrade
    from app.db.models import Base, Installation
    from app.db.session import make_engine, make_session_factory

    ensure_database(args.database_url)
    upgrade(args.database_url)
    engine = make_engine(args.database_url)
    factory = make_session_factory(engine)
    with engine.begin() as conn:  # the bench's own database: start every run from empty
        tables = ", ".join(
            t.name for t in Base.metadata.sorted_tables if t.name != Installation.__tablename__
        )
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    results: dict[str, Any] = {"rows": args.rows, "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as tmp:
        work = Path(tmp)
        folder = work / "train"
        log(f"writing {args.rows:,} rows")
        train = write_files(folder, args.rows)
        results["file_mb"] = round(train.stat().st_size / 1e6, 1)
        changed = work / "changed"
        changed.mkdir()
        with train.open() as source, (changed / "train.csv").open("w") as target:
            target.write(source.readline())
            target.write("1,0.5" + source.readline()[len("1,1.000000000000") :])
            while block := source.read(1 << 20):
                target.write(block)
        (changed / "val.csv").write_text((folder / "val.csv").read_text())
        raw, raw_text, keyed, fresh, again, replaced, models = [], [], [], [], [], [], []
        try:
            for round_no in range(1, args.rounds + 1):
                raw.append(raw_copy(args.database_url, train))
                raw_text.append(raw_copy(args.database_url, train, options=RAW_TEXT))
                keyed.append(raw_copy(args.database_url, train, keyed=True))
                model_id, job_id = new_model(factory)
                models.append(model_id)
                fresh.append(ingest(factory, model_id, job_id, folder))
                again.append(ingest(factory, model_id, job_id, folder))
                replaced.append(ingest(factory, model_id, job_id, changed))
                log(
                    f"round {round_no}: raw COPY {raw[-1]:.2f} s (text {raw_text[-1]:.2f} s), "
                    f"keyed {keyed[-1]:.2f} s, ingest {fresh[-1]:.2f} s "
                    f"({raw[-1] / fresh[-1]:.0%} of raw), "
                    f"re-ingest {again[-1]:.2f} s, replace {replaced[-1]:.2f} s"
                )
        finally:
            with engine.begin() as conn:
                for table in ("train", "validation"):
                    conn.execute(
                        text(f"DELETE FROM tb_model_metrics_{table} WHERE model_id = ANY(:ids)"),
                        {"ids": models},
                    )
                conn.execute(text("DROP TABLE IF EXISTS bench_plain_copy"))
            engine.dispose()
        measured = (
            ("raw_copy", raw),
            ("raw_copy_text", raw_text),
            ("keyed_copy", keyed),
            ("ingest", fresh),
            ("reingest", again),
            ("replace", replaced),
        )
        for name, times in measured:
            median = statistics.median(times)
            results[name] = {
                "seconds": [round(t, 3) for t in times],
                "rows_per_s": args.rows / median,
            }
        results["ingest_vs_raw"] = (
            results["ingest"]["rows_per_s"] / results["raw_copy"]["rows_per_s"]
        )
        # Each round times raw COPY and ingest back to back: the ratio of each pair moves less
        # with the machine's load than the ratio of the two medians.
        results["ingest_vs_raw_by_round"] = [r / f for r, f in zip(raw, fresh, strict=True)]
        results["ingest_vs_raw_text"] = (
            results["ingest"]["rows_per_s"] / results["raw_copy_text"]["rows_per_s"]
        )
        results["ingest_vs_keyed"] = (
            results["ingest"]["rows_per_s"] / results["keyed_copy"]["rows_per_s"]
        )
        results["replace_vs_raw"] = (
            results["replace"]["rows_per_s"] / results["raw_copy"]["rows_per_s"]
        )
        if not args.no_mlflow:
            subset = min(args.mlflow_rows, args.rows)
            log(f"MLflow log_batch of {subset:,} rows into SQLite")
            results["mlflow"] = mlflow_rows_per_s(train, subset, work)
            results["mlflow"]["extrapolated_seconds"] = args.rows / results["mlflow"]["rows_per_s"]
            results["ingest_vs_mlflow"] = (
                results["ingest"]["rows_per_s"] / results["mlflow"]["rows_per_s"]
            )
            log(f"trainyard's SQLite path, same {subset:,} rows")
            results["sqlite"] = sqlite_rows_per_s(train, subset, work)
            results["sqlite_vs_mlflow"] = (
                results["sqlite"]["rows_per_s"] / results["mlflow"]["rows_per_s"]
            )
    results["load_after"] = os.getloadavg()[0]
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def report(r: dict[str, Any]) -> None:
    print(
        f"train.csv: {r['rows']:,} rows x 5 metrics, {r['file_mb']} MB "
        f"(load average {r['load_before']:.1f} -> {r['load_after']:.1f})"
    )
    for key, label in (
        ("raw_copy", "raw COPY into a plain table"),
        ("raw_copy_text", "raw COPY, text format"),
        ("keyed_copy", "raw COPY, plain table + primary key"),
        ("ingest", "ingest_train_outputs (fresh model)"),
        ("reingest", "ingest_train_outputs (same file again)"),
        ("replace", "ingest_train_outputs (changed file)"),
    ):
        seconds = ", ".join(f"{s:.2f}" for s in r[key]["seconds"])
        print(f"  {label:38s} {r[key]['rows_per_s']:>12,.0f} rows/s   [{seconds}] s")
    by_round = ", ".join(f"{x:.0%}" for x in r["ingest_vs_raw_by_round"])
    print(
        f"  ingest / raw COPY: {r['ingest_vs_raw']:.0%} (by round: {by_round}; "
        f"median {statistics.median(r['ingest_vs_raw_by_round']):.0%})   "
        f"ingest / raw COPY text: {r['ingest_vs_raw_text']:.0%}"
    )
    print(
        f"  replace / raw COPY: {r['replace_vs_raw']:.0%}   "
        f"ingest / keyed COPY: {r['ingest_vs_keyed']:.0%}"
    )
    if "mlflow" in r:
        m, s = r["mlflow"], r["sqlite"]
        print(
            f"  MLflow {m['version']} log_batch, SQLite store: {m['rows_per_s']:>10,.0f} rows/s "
            f"({m['rows']:,} rows in {m['seconds']:.1f} s; {r['rows']:,} rows extrapolated: "
            f"{m['extrapolated_seconds']:.0f} s)"
        )
        print(f"  trainyard, SQLite (same {s['rows']:,} rows): {s['rows_per_s']:>10,.0f} rows/s")
        print(
            f"  ingest (PostgreSQL) / MLflow: {r['ingest_vs_mlflow']:.0f}x   "
            f"trainyard SQLite / MLflow: {r['sqlite_vs_mlflow']:.0f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
