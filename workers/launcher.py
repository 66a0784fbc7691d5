"""Launch a queued job on this node: claim it, prepare its folder, start its container once.

A launch message may arrive twice, late, or after a cancel. Every step re-reads the rows:
- the claim (under the model row lock) only takes a job that is still QUEUED and unclaimed
  (or already ours), only when the model has no other container alive, and takes its GPUs;
- it takes a job only when the node has room (NODE_MAX_JOBS, NODE_MEMORY_MB), counted under
  the node's row lock, and only when no older waiting job could take that room
  (workers/capacity.py); a job that waits is not claimed and counts no attempt;
- the container name comes from the job id, so a second launch finds the first container;
- the start is reported through the status-write path; if the job was canceled meanwhile,
  the report is refused and the container is stopped at once.

After the claim committed, no error leaves the job claimed by a launch that is over:
- one that can never succeed (the spec cannot be built, the image is missing, the dataset or
  the output folder cannot be prepared) ends the job at once, like a container that could not
  run, which removes the container and frees the claim's GPUs;
- any other (the runtime does not answer, the database went away, a bug) gives the claim back
  when the runtime can say that no container was started, else leaves it to the node's
  reconcile, which releases a claim without a container after CLAIM_LOST_AFTER_S. Each claim
  counted one attempt; the claim after the last allowed one ends the job `LAUNCH_FAILED`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import jobfiles, messaging
from app.datasets import dataset_exists, generate_demo_dataset
from app.db.models import Job, Model
from app.db.session import transaction
from app.domain import layout
from app.domain.completion import (
    CONTAINER_START_FAILED,
    DATASET_INVALID,
    DATASET_NOT_FOUND,
    LAUNCH_FAILED,
    gave_up,
    launch_error,
    short_reason,
)
from app.domain.states import JobStatus, JobType
from app.domain.transitions import INVALID_RUNTIME_SETTINGS, JobEvent, JobObservation
from app.services.datasets import DatasetUnavailable, write_splits
from app.services.observations import record_observation
from app.services.queries import holds_container
from app.services.status_writes import apply, lock_job
from workers import capacity, container_writes, outputs
from workers.context import WorkerContext
from workers.drain import is_draining
from workers.ending import observe_end, stop_and_collect
from workers.requeue import send_launch, wake_waiting
from workers.runtime.base import (
    LABEL_ATTEMPT,
    LABEL_JOB_ID,
    LABEL_JOB_TYPE,
    LABEL_MODEL_UUID,
    AlreadyExists,
    ContainerState,
    LaunchError,
    LaunchSpec,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """What the launch needs from the rows, read under the lock."""

    job_id: int
    job_type: JobType
    attempt: int
    container_name: str
    image: str
    params: dict[str, Any]
    resources: dict[str, Any]
    gpu_ids: tuple[int, ...]
    model_id: int
    model_uuid: str
    dataset: str | None
    # The model's runtime settings (app/domain/sandbox.py); a model is never edited, so the
    # values read at the claim are those it was created with.
    uses_dataset: bool = True
    shm_size_mb: int | None = None
    env: dict[str, str] | None = None
    network: bool = False


def launch_job(ctx: WorkerContext, job_id: int) -> str:
    """Returns what happened, in words (the task's result and the log line)."""
    with ctx.lock:
        if job_id in ctx.launching:
            return "already being launched by this worker"
        ctx.launching.add(job_id)
    try:
        claim = claim_job(ctx, job_id)
        if isinstance(claim, str):
            return claim
        _wake_after_claim(ctx)
        return _start(ctx, claim)
    finally:
        with ctx.lock:
            ctx.launching.discard(job_id)


def _wake_after_claim(ctx: WorkerContext) -> None:
    """A newer job may have given its slot to this one (oldest first) and waits without a
    message: if room is left, the oldest waiting jobs are sent here now, not at the next
    sweep. Only a hint: a failure here must not touch the claim."""
    try:
        wake_waiting(ctx)
    except Exception as exc:
        log.warning("could not wake the jobs waiting for node %s: %s", ctx.node.node, exc)


def claim_job(ctx: WorkerContext, job_id: int) -> Claim | str:
    yielded_to: list[int] = []
    answer = _claim(ctx, job_id, yielded_to)
    for older in yielded_to:  # after the commit: no lock is held while the broker answers
        send_launch(ctx, older, messaging.node_queue(ctx.node.node), "fifo")
    return answer


def _claim(ctx: WorkerContext, job_id: int, yielded_to: list[int]) -> Claim | str:
    me = ctx.node.node
    with transaction(ctx.db) as session:
        locked = lock_job(session, job_id)
        if locked is None:
            return f"job {job_id} does not exist"
        model, job = locked
        if job.status is not JobStatus.QUEUED:
            return f"job {job_id} is {job.status_cd}: nothing to launch"
        if job.node is not None and job.node != me:
            return f"job {job_id} belongs to node {job.node}"
        if job.node is None:
            if job.launch_attempts >= ctx.settings.bounds.max_attempts:
                return _give_up(ctx, session, model, job)
            # Under the node's row lock, which a drain takes too: no claim after a drain.
            capacity.lock_node(session, me)
            if is_draining(session, ctx.node):  # a job it already holds still launches
                return f"node {me} is draining: job {job_id} is left to other nodes"
            blocker = session.scalar(
                select(Job.id).where(Job.model_id == model.id, Job.id != job.id, holds_container())
            )
            if blocker is not None:
                return f"waiting: job {blocker}'s container is not gone yet"
            wanted = int(job.resources.get("gpus", 0) or 0)
            if wanted > len(ctx.node.gpu_ids):
                return f"node {me} has {len(ctx.node.gpu_ids)} GPU(s); job {job_id} needs {wanted}"
            waits = _wait_for_capacity(ctx, session, job, yielded_to)
            if waits is not None:
                return waits
            if not container_writes.claim(session, job, me, ctx.node.gpu_ids, wanted):
                return f"waiting: no free GPU on node {me}"
        return Claim(
            job_id=job.id,
            job_type=job.type,
            attempt=job.attempt,
            container_name=ctx.container_of(job.id, job.container_name),
            image=job.image,
            params=dict(job.params),
            resources=dict(job.resources),
            gpu_ids=tuple(job.gpu_ids or ()),
            model_id=model.id,
            model_uuid=str(model.uuid),
            dataset=model.dataset,
            uses_dataset=model.uses_dataset,
            shm_size_mb=model.shm_size_mb,
            env=dict(model.env or {}),
            network=model.network,
        )


def _wait_for_capacity(
    ctx: WorkerContext, session: Session, job: Job, yielded_to: list[int]
) -> str | None:
    """Why the job must wait instead of being claimed here now (None: claim it). Under this
    node's row lock, held to the end of the claim's transaction (workers/capacity.py). An older
    job it yields to goes into `yielded_to`: its launch message may have been consumed while
    the node was full, so claim_job sends it here, where the room is. This job waits for the
    next slot (the wake-up after that claim or a removal, or the sweep)."""
    memory_mb = capacity.job_memory_mb(job.resources, ctx.node.default_memory_mb)
    too_big = capacity.never_fits(ctx.node, memory_mb)
    if too_big is not None:
        return f"job {job.id} never fits here: {too_big}"
    capacity.lock_node(session, ctx.node.node)
    load = capacity.load_of(session, ctx.node)
    full = capacity.no_room(ctx.node, load, memory_mb)
    if full is not None:
        return f"waiting: {full}"
    ahead = capacity.waiting_jobs(
        session,
        ctx.node,
        ctx.settings.bounds,
        load,
        before=(job.priority, job.queued_dttm, job.id),
    )
    if not ahead:
        return None
    first = ahead[0]
    yielded_to.append(first.job_id)
    why = "has a higher priority" if first.priority > job.priority else "was queued earlier"
    return f"waiting: job {first.job_id} {why} and takes the free slot first"


def _give_up(ctx: WorkerContext, session: Session, model: Model, job: Job) -> str:
    """Every allowed claim ended without a container: end the job (in the claim's
    transaction, model row locked) instead of claiming it again."""
    observation = gave_up(LAUNCH_FAILED, job.last_attempt_error)
    write = apply(session, model, observation, observed=job)
    log.error("job %s: %s after %s claims", job.id, observation.error, job.launch_attempts)
    return f"job {job.id}: {observation.error}" + ("" if write.accepted else " (refused)")


def _start(ctx: WorkerContext, claim: Claim) -> str:
    try:
        return _launch(ctx, claim)
    except Exception as exc:
        return _release_after_error(ctx, claim, exc)


def _launch(ctx: WorkerContext, claim: Claim) -> str:
    try:
        spec = build_spec(ctx, claim)
    except Exception as exc:  # bad params or settings: no retry can build it
        return _launch_failed(ctx, claim, exc, INVALID_RUNTIME_SETTINGS)
    state = ctx.runtime.inspect(spec.name)
    # "created": a crash between create and start; launch() starts that same container.
    if state is None or state.status == "created":
        try:
            if state is None:
                prepare_outputs(ctx, claim)
            state = ctx.runtime.launch(spec)
        except AlreadyExists as exists:
            state = exists.state
        except LaunchError as exc:
            return _launch_failed(ctx, claim, exc, exc.code)
        except DatasetUnavailable as exc:  # the folder is there (checked first), its manifest not
            return _launch_failed(ctx, claim, exc, DATASET_INVALID)
        except OSError as exc:
            if _runtime_unreachable(exc):
                raise  # not the job's fault: give the claim back (_release_after_error)
            # The output folder cannot be prepared.
            return _launch_failed(ctx, claim, exc, CONTAINER_START_FAILED)
    started = JobObservation(JobEvent.STARTED, started_at=state.started_at)
    write = record_observation(ctx.db, ctx.publisher, claim.job_id, started)
    if write.accepted:
        log.info("job %s started in %s on %s", claim.job_id, spec.name, ctx.node.node)
        return f"started {spec.name}"
    with ctx.db() as session:
        status = session.scalar(select(Job.status_cd).where(Job.id == claim.job_id))
    if status == JobStatus.RUNNING.value:
        return f"{spec.name} already running"
    # Canceled (or ended) while we were starting it: it must not keep running.
    stop_and_collect(ctx, claim.job_id)
    return f"job {claim.job_id} became {status} during launch; container stopped"


def _runtime_unreachable(exc: OSError) -> bool:
    """The Docker client's connection errors (requests') are OSErrors too, but say nothing
    about the job: the engine did not answer."""
    return type(exc).__module__.split(".")[0] in ("requests", "urllib3")


def _release_after_error(ctx: WorkerContext, claim: Claim, exc: Exception) -> str:
    """An error after the claim committed that says nothing about the job. Give the claim
    back if the runtime can tell that no container was started (a created-only one is
    removed); if it cannot answer, a container may exist, so the claim stays and the node's
    reconcile releases it once the runtime answers again (CLAIM_LOST_AFTER_S)."""
    reason = short_reason(exc)
    log.warning("launch of job %s failed after its claim: %s", claim.job_id, reason)
    try:
        container_writes.record_attempt_error(ctx.db, claim.job_id, reason)
        state = ctx.runtime.inspect(claim.container_name)
        if state is not None and state.status != "created":  # it started: reconcile follows it
            return f"launch of job {claim.job_id} failed ({reason}); container {state.status}"
        if state is not None:
            ctx.runtime.remove(claim.container_name)
        released = container_writes.release_claim(ctx.db, claim.job_id, ctx.node.node)
    except Exception as again:
        log.warning("job %s stays claimed until the node's reconcile: %s", claim.job_id, again)
        return f"launch of job {claim.job_id} failed ({reason}); claim kept for the reconcile"
    return f"launch of job {claim.job_id} failed ({reason})" + (
        "; claim released, the sweep re-publishes it after a backoff" if released else ""
    )


def _launch_failed(ctx: WorkerContext, claim: Claim, exc: Exception, code: str) -> str:
    """Nothing runs: record the failure, named by `code`, as the job's end, then clean up like
    any end."""
    log.warning("launch of job %s failed (%s): %s", claim.job_id, code, exc)
    state: ContainerState | None = getattr(exc, "state", None)
    observe_end(ctx, claim.job_id, state, launch_error=launch_error(code, str(exc)))
    return f"launch failed: {exc}"


def build_spec(ctx: WorkerContext, claim: Claim) -> LaunchSpec:
    if claim.network and not ctx.settings.job_network_allowed:
        # Created while the deployment allowed it; the policy of the node that runs it wins.
        raise ValueError("network: this node gives jobs no network (JOB_NETWORK_ALLOWED=0)")
    root = ctx.settings.output_root.resolve()
    output = layout.job_output_dir(root, claim.model_uuid, claim.job_type, claim.job_id)
    dataset = _dataset_dir(ctx, claim)
    params = claim.params
    argv = ["--job-type", claim.job_type.value, "--output-dir", str(output)]
    if dataset is not None:  # a model without a dataset has no split lists either
        argv += ["--dataset-dir", str(dataset)]
        argv += ["--split-dir", str(layout.split_dir(root, claim.model_uuid))]
    argv += [
        "--total-epoch", str(int(params.get("total_epoch", 1))),
        "--val-interval", str(int(params.get("val_interval", 1))),
    ]  # fmt: skip
    if claim.job_type is JobType.TRAIN and params.get("resume_from") is not None:
        argv += ["--resume-from", str(int(params["resume_from"]))]
    if claim.job_type is JobType.EVAL:
        checkpoints = layout.train_dir(root, claim.model_uuid) / "checkpoints"
        argv += ["--epoch", str(int(params["epoch"])), "--checkpoint-dir", str(checkpoints)]
    argv += ["--params", json.dumps(params, sort_keys=True)]
    memory = claim.resources.get("memory_mb")
    return LaunchSpec(
        name=claim.container_name,
        image=claim.image,
        argv=argv,
        labels={
            LABEL_MODEL_UUID: claim.model_uuid,
            LABEL_JOB_ID: str(claim.job_id),
            LABEL_JOB_TYPE: claim.job_type.value,
            LABEL_ATTEMPT: str(claim.attempt),
        },
        output_dir=layout.model_dir(root, claim.model_uuid),
        dataset_dir=dataset,
        env=dict(claim.env or {}),
        gpu_ids=claim.gpu_ids,
        memory_mb=int(memory) if memory else ctx.node.default_memory_mb,
        cpus=float(claim.resources["cpus"]) if claim.resources.get("cpus") else None,
        network=claim.network,
        shm_size_mb=claim.shm_size_mb,
    )


def _dataset_dir(ctx: WorkerContext, claim: Claim) -> Path | None:
    """The dataset folder to mount: the model's, the node's default for a model that names
    none, or None for a model created with `"dataset": null`."""
    if not claim.uses_dataset:
        return None
    return (ctx.settings.dataset_root / (claim.dataset or ctx.node.default_dataset)).resolve()


def prepare_outputs(ctx: WorkerContext, claim: Claim) -> None:
    root = jobfiles.job_root(ctx.settings)
    outputs.make_writable_dir(layout.model_dir(root, claim.model_uuid))
    if claim.job_type is JobType.TRAIN and claim.params.get("fresh_outputs"):
        outputs.set_aside_training(root, claim.model_uuid, claim.job_id)
    outputs.make_writable_dir(
        layout.job_output_dir(root, claim.model_uuid, claim.job_type, claim.job_id)
    )
    _ensure_split_lists(ctx, claim)


def _ensure_split_lists(ctx: WorkerContext, claim: Claim) -> None:
    """`run` creates the split lists when missing (SPEC §6). A model that names no dataset
    trains on the generated demo dataset; one created without any has no split lists."""
    if not claim.uses_dataset:
        return
    dataset = claim.dataset or ctx.node.default_dataset
    if claim.dataset is None:
        generate_demo_dataset(ctx.settings.dataset_root / dataset)
    elif not dataset_exists(ctx.settings.dataset_root, dataset):  # removed since its create
        raise LaunchError(
            f"dataset {dataset!r} is not under DATASET_ROOT on node {ctx.node.node}",
            code=DATASET_NOT_FOUND,
        )
    lists = layout.split_dir(jobfiles.job_root(ctx.settings), claim.model_uuid)
    if jobfiles.entry(lists / "train.txt") is None:
        write_splits(ctx.settings, dataset, claim.model_uuid, claim.params)
