"""`trainyard reingest JOB_ID`: load a finished job's metric CSVs again, exactly as the
completion did (same code, same transaction rules), e.g. after a fixed file or a lost row.
Job and model states are not touched."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from app import jobfiles
from app.config import Settings
from app.db.models import Job
from app.db.session import make_engine, make_session_factory, transaction
from app.domain import layout
from app.domain.states import JOB_ACTIVE, JobStatus, JobType
from app.metrics import store
from app.metrics.errors import MetricsError
from app.metrics.ingest import ingest_eval_outputs, ingest_train_outputs
from app.services.status_writes import lock_model_by_id


def reingest(settings: Settings, job_id: int, say: Callable[[str], None] = print) -> int:
    """Exit status: 0 loaded, 1 refused or the files are bad (the tables are unchanged)."""
    engine = make_engine(settings.database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            model_id = session.scalar(select(Job.model_id).where(Job.id == job_id))
            model = lock_model_by_id(session, model_id) if model_id is not None else None
            job = session.get(Job, job_id, populate_existing=True)
            if model is None or job is None:
                say(f"no job {job_id}")
                return 1
            if JobStatus(job.status_cd) in JOB_ACTIVE:
                say(f"job {job_id} is {job.status_cd}: its worker loads its metrics")
                return 1
            latest = session.scalar(
                select(func.max(Job.id)).where(
                    Job.model_id == model.id, Job.job_type == JobType.TRAIN.value
                )
            )
            if job.type is JobType.TRAIN and latest != job_id:
                say(f"job {job_id} is not the model's latest training (job {latest} is)")
                return 1
            root = jobfiles.job_root(settings)
            folder = layout.job_output_dir(root, model.uuid, job.type, job.id)
            try:
                if job.type is JobType.TRAIN:
                    ingest_train_outputs(session, model, job, folder)
                else:
                    ingest_eval_outputs(session, model, job, folder)
            except MetricsError as exc:
                say(f"job {job_id}: {exc} (nothing changed)")
                return 1
            splits = ("train", "val") if job.type is JobType.TRAIN else ("test",)
            counts = ", ".join(
                f"{store.count_rows(session, s, model.id, job.id)} {s}" for s in splits
            )
            best = f", best epoch {model.best_epoch}" if job.type is JobType.TRAIN else ""
            say(f"job {job_id} ({job.status_cd}): {counts} rows from {folder.host_path}{best}")
            return 0
    finally:
        engine.dispose()
