"""Judge a finished job and ingest its metrics, in one transaction (SPEC §5).

Runs as the `complete_job` task on the metrics queue after the owning node recorded how the
container ended. The model row is locked; the status transition and the metric rows commit
together, and a replay (a redelivered message, the sweep) finds the job ended and does nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import Job, Model
from app.db.session import transaction
from app.domain import layout
from app.domain.completion import ContainerEnd, judge, output_gap
from app.domain.states import JobType
from app.domain.transitions import JobEvent, JobObservation
from app.jobfiles import JobPath, job_root
from app.services.outbox import publish_pending
from app.services.publisher import Publisher
from app.services.status_writes import apply, lock_job
from workers import outputs

log = logging.getLogger(__name__)


def complete_job(
    db: sessionmaker[Session], settings: Settings, publisher: Publisher | None, job_id: int
) -> str:
    with transaction(db) as session:
        locked = lock_job(session, job_id)
        if locked is None:
            return f"job {job_id} does not exist"
        model, job = locked
        if job.status.is_terminal:
            return f"job {job_id} already ended as {job.status_cd}"
        if job.container_ended_dttm is None:
            return f"job {job_id}'s container has not ended"
        output_dir = layout.job_output_dir(job_root(settings), model.uuid, job.type, job.id)
        observation = _judge(model, job, output_dir)
        if observation.event is JobEvent.SUCCEEDED:
            observation = _ingest(session, model, job, output_dir, observation)
        write = apply(session, model, observation, observed=job)
        verdict = f"job {job_id}: {observation.event} {observation.error or ''}".strip()
    if publisher is not None and write.outbox_ids:
        publish_pending(db, publisher, only_ids=write.outbox_ids)
    log.info(verdict)
    return verdict if write.accepted else f"{verdict} (refused: {write.decision})"


def _judge(model: Model, job: Job, output_dir: JobPath) -> JobObservation:
    epoch = job.params.get("epoch")
    facts = outputs.probe(job.type, output_dir, int(epoch) if epoch is not None else None)
    total = job.params.get("total_epoch")
    gap = output_gap(job.type, facts, int(total) if total is not None else None, model.val_interval)
    container = (
        None
        if job.container_missing
        else ContainerEnd(int(job.container_exit_code or 0), bool(job.oom_killed))
    )
    return judge(container, gap, job.log_tail, node_lost=bool(job.node_lost))


def _ingest(
    session: Session, model: Model, job: Job, output_dir: JobPath, succeeded: JobObservation
) -> JobObservation:
    """Metrics in the same commit as SUCCESS; a bad file turns the verdict into a failure."""
    from app.metrics import MetricsError, ingest_eval_outputs, ingest_train_outputs

    try:
        with session.begin_nested():
            if job.type is JobType.TRAIN:
                ingest_train_outputs(session, model, job, output_dir)
            else:
                ingest_eval_outputs(session, model, job, output_dir)
    except MetricsError as exc:
        return JobObservation(
            JobEvent.FAILED, succeeded.exit_code, f"OUTPUT_INCOMPLETE: {exc}", job.log_tail
        )
    return succeeded
