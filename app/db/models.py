"""Tables. Names follow the user document (`tb_model_master.status_cd`, `step1_state`, …);
the rest is what a real system needs (uuid, params, resources, node, versions, outbox)."""

from __future__ import annotations

import uuid as uuid_lib
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.domain.container_phases import ContainerPhase, phase_of
from app.domain.states import JobStatus, JobType, StepState

# JSONB on PostgreSQL, JSON text on SQLite.
Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY, so BigInteger ids fall back to Integer there.
Id = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: Json, datetime: Timestamp}


class Model(Base):
    """One experiment and its current state (`tb_model_master`)."""

    __tablename__ = "tb_model_master"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid_lib.UUID] = mapped_column(Uuid, unique=True, default=uuid_lib.uuid4)
    model_no: Mapped[str] = mapped_column(String(16))
    model_ver: Mapped[str] = mapped_column(String(64))
    train_type: Mapped[str] = mapped_column(String(32))
    memo: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    image: Mapped[str] = mapped_column(String(255))
    dataset: Mapped[str | None] = mapped_column(String(255))
    resources: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The container's runtime settings (app/domain/sandbox.py). `uses_dataset` False: created
    # with `"dataset": null` (no dataset at all); True with dataset NULL: the node's default.
    uses_dataset: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    shm_size_mb: Mapped[int | None]  # None: sandbox.default_shm_mb of the job's memory limit
    env: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    network: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # No progress.json change and no log output this long → the node ends the job STALLED
    # (workers/logcollector.py); None: the node's DEFAULT_STALL_TIMEOUT_S, 0: never.
    stall_timeout_s: Mapped[int | None] = mapped_column(Integer)
    # Launch priority of its jobs (higher first; FIFO within one priority). A command may give
    # its own job another (docs/workers.md, "Priorities").
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Automatic retry (app/domain/retry.py): {"max": N, "on": [causes]}; None: never retried.
    retry_policy: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # Its own webhook endpoint besides the deployment's WEBHOOK_URLS (docs/webhooks.md); the
    # URL may be a secret (a Slack webhook's is), so the API shows only its scheme and host.
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_format: Mapped[str | None] = mapped_column(String(8))  # "json" or "slack"

    # Written only by app.services.status_writes; status_cd is derived from the two steps.
    status_cd: Mapped[str] = mapped_column(String(16), default=StepState.READY.value)
    step1_state: Mapped[str] = mapped_column(String(16), default=StepState.READY.value)
    step2_state: Mapped[str] = mapped_column(String(16), default=StepState.READY.value)
    step1_strt_dttm: Mapped[datetime | None]
    step1_end_dttm: Mapped[datetime | None]
    step2_strt_dttm: Mapped[datetime | None]
    step2_end_dttm: Mapped[datetime | None]
    step1_metric_save_yn: Mapped[bool] = mapped_column(Boolean, default=False)
    step2_metric_save_yn: Mapped[bool] = mapped_column(Boolean, default=False)
    current_attempt_id: Mapped[int | None] = mapped_column(Id)
    best_epoch: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # "retrying (2/3) after NODE_LOST" while an automatic retry's training is in progress.
    retry_status: Mapped[str | None] = mapped_column(Text)

    # Live progress of the current training (written by the owning node while it runs).
    epochs_done: Mapped[int | None]
    checkpoint_epoch: Mapped[int | None]

    created_dttm: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())
    updated_dttm: Mapped[datetime] = mapped_column(
        server_default=func.current_timestamp(), onupdate=func.current_timestamp()
    )
    # Optimistic check on top of the row lock: a stale write fails loudly instead of winning.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    jobs: Mapped[list[Job]] = relationship(
        back_populates="model", order_by="Job.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy reads it)
    __table_args__ = (
        Index("ix_model_status_id", "status_cd", "id"),
        Index("ix_model_model_no_id", "model_no", "id"),
        Index("ix_model_model_no_status_id", "model_no", "status_cd", "id"),
    )

    @property
    def total_epoch(self) -> int:
        return int(self.params.get("total_epoch", 1))

    @property
    def val_interval(self) -> int:
        return int(self.params.get("val_interval", 1))


class Job(Base):
    """One container run (attempt) for a model: TRAIN (step1) or EVAL (step2)."""

    __tablename__ = "tb_model_train_job"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("tb_model_master.id", ondelete="CASCADE"))
    job_type: Mapped[str] = mapped_column(String(8))
    attempt: Mapped[int] = mapped_column(Integer)
    status_cd: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    image: Mapped[str] = mapped_column(String(255))
    resources: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    node: Mapped[str | None] = mapped_column(String(128))
    container_name: Mapped[str | None] = mapped_column(String(128))
    gpu_ids: Mapped[list[int] | None] = mapped_column(Json)
    exit_code: Mapped[int | None]  # the job's result: 0 normal, -1 stopped/canceled, else the code
    error_message: Mapped[str | None] = mapped_column(Text)
    # What the node saw when the container ended, recorded before the container is removed.
    # `complete_job` judges the job from these and the outputs (SPEC §5).
    container_exit_code: Mapped[int | None]
    container_missing: Mapped[bool | None] = mapped_column(Boolean)  # gone before anyone saw it end
    oom_killed: Mapped[bool | None] = mapped_column(Boolean)
    log_tail: Mapped[str | None] = mapped_column(Text)
    # Why no container could run, in the launcher's words ("IMAGE_NOT_FOUND: image 'x' is not on
    # node n1"); judged instead of the exit code. Never from the container, which is untrusted.
    launch_error: Mapped[str | None] = mapped_column(Text)
    container_ended_dttm: Mapped[datetime | None]
    node_lost: Mapped[bool | None] = mapped_column(Boolean)  # ended because its node went silent
    queued_dttm: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())
    claimed_dttm: Mapped[datetime | None]  # when a node took it (node, gpu_ids set)
    started_dttm: Mapped[datetime | None]
    finished_dttm: Mapped[datetime | None]
    # When its node confirmed the container removed (after recording exit code and log tail).
    # Until then the model may still have a live container, and no new one may start.
    container_gone_dttm: Mapped[datetime | None]
    # Bounded retries (Settings.bounds): how many times a node claimed the job to launch it
    # and how many times its judgement was tried, with when and why the last try failed.
    # In the row, so a worker restart does not reset them.
    launch_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    completion_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_attempt_dttm: Mapped[datetime | None]
    last_attempt_error: Mapped[str | None] = mapped_column(Text)
    # Automatic retry (app/services/retries.py): which retry of its run this attempt is (None:
    # a user started it), the retry cause its ending stands for (NODE_LOST, EXIT:3, …), and
    # why that ending was not retried (budget spent, thrash guard), when it was not.
    retry_number: Mapped[int | None] = mapped_column(Integer)
    end_cause: Mapped[str | None] = mapped_column(String(32))
    retry_note: Mapped[str | None] = mapped_column(Text)

    model: Mapped[Model] = relationship(back_populates="jobs")

    __table_args__ = (
        UniqueConstraint("model_id", "attempt", name="uq_job_model_attempt"),
        Index("ix_job_status", "status_cd"),
        Index("ix_job_model", "model_id", "id"),
    )

    @property
    def type(self) -> JobType:
        return JobType(self.job_type)

    @property
    def status(self) -> JobStatus:
        return JobStatus(self.status_cd)

    @property
    def container_phase(self) -> ContainerPhase:
        """Where its container's life stands (app/domain/container_phases.py); the columns
        behind it are written only by workers/container_writes.py. In SQL:
        app.services.queries.in_phase / holds_container."""
        return phase_of(
            claimed=self.node is not None,
            end_recorded=self.container_ended_dttm is not None,
            gone=self.container_gone_dttm is not None,
        )


# Metric tables: one row per CSV data row, the values in typed columns. A wide row of typed
# slots (m01…m32) rather than JSON or a long table lets ingest stream the file itself into
# COPY (bench/METRICS.md), keeps NaN and ±inf (JSON has neither) and keeps a curve one row
# per epoch. tb_model_metric_series says which metric each slot holds.
METRIC_SLOTS = 32
NO_STEP = -1  # `step` of a row from a CSV without a step column (it is part of the key)
DoubleArray = JSON().with_variant(ARRAY(Double()), "postgresql")


class _MetricRow:
    """Columns shared by the three metric tables.

    No foreign keys on purpose: a per-row RI trigger made COPY ~5x slower. Rows are written
    only by app.metrics, under the model's row lock, for a model and job it has just read;
    nothing deletes models or jobs (and a restart deletes a model's rows explicitly).
    """

    model_id: Mapped[int] = mapped_column(Id, autoincrement=False)
    epoch: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer, default=NO_STEP, server_default=str(NO_STEP))
    job_id: Mapped[int] = mapped_column(Id)


for _slot in range(1, METRIC_SLOTS + 1):
    setattr(_MetricRow, f"m{_slot:02d}", mapped_column(Double()))
# Metrics past the 32nd column of a CSV (e.g. many per-class test accuracies).
_MetricRow.extra = mapped_column(DoubleArray)  # type: ignore[attr-defined]


class TrainMetric(_MetricRow, Base):
    __tablename__ = "tb_model_metrics_train"
    __table_args__ = (PrimaryKeyConstraint("model_id", "epoch", "step"),)


class ValidationMetric(_MetricRow, Base):
    __tablename__ = "tb_model_metrics_validation"
    __table_args__ = (PrimaryKeyConstraint("model_id", "epoch", "step"),)


class TestMetric(_MetricRow, Base):
    """One row per EVAL job (each tests one epoch), so the job is part of the key."""

    __tablename__ = "tb_model_metrics_test"
    __table_args__ = (PrimaryKeyConstraint("model_id", "job_id", "epoch", "step"),)
    __test__ = False  # not a pytest class


class MetricSeries(Base):
    """What one metric CSV looked like: its metric names in file order (slot i holds name i)
    and a cached summary. One row per (model, split) for train/val, one per EVAL job for test.
    """

    __tablename__ = "tb_model_metric_series"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("tb_model_master.id", ondelete="CASCADE"), primary_key=True
    )
    split: Mapped[str] = mapped_column(String(8), primary_key=True)  # train | val | test
    job_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    metric_names: Mapped[list[str]] = mapped_column(Json)
    has_step: Mapped[bool] = mapped_column(Boolean, default=False)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by every write of the split's rows: a cached summary is kept only for the
    # generation it was computed from.
    generation: Mapped[int] = mapped_column(Integer, default=1)
    summary: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # What the rows were loaded from: the file's first `source_bytes` bytes (whole lines; the
    # next is line `source_lines`) and their SHA-256. A completion that finds the same prefix
    # in the final file keeps those rows and loads only the rest (app/metrics/ingest.py).
    source_bytes: Mapped[int | None] = mapped_column(Id)
    source_lines: Mapped[int | None] = mapped_column(Integer)
    source_digest: Mapped[str | None] = mapped_column(String(64))
    updated_dttm: Mapped[datetime] = mapped_column(
        server_default=func.current_timestamp(), onupdate=func.current_timestamp()
    )


class Installation(Base):
    """This installation's id: one row, created with the schema. Containers carry it in their
    name and labels, so installations sharing a Docker engine never touch each other's."""

    __tablename__ = "tb_installation"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_dttm: Mapped[datetime]


class Node(Base):
    """A worker node's heartbeat. A node silent for NODE_LOST_AFTER_S is presumed lost: the
    sweep ends its jobs by their outputs instead of leaving them RUNNING forever."""

    __tablename__ = "tb_node"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    gpu_ids: Mapped[list[int] | None] = mapped_column(Json)
    runtime: Mapped[str | None] = mapped_column(String(32))
    started_dttm: Mapped[datetime]
    last_seen_dttm: Mapped[datetime] = mapped_column(index=True)
    # The node's capacity (NODE_MAX_JOBS, NODE_MEMORY_MB), for operators to read. The claim
    # checks the node's own settings under a lock of this row (workers/capacity.py).
    max_jobs: Mapped[int | None]
    memory_mb: Mapped[int | None]
    # Drain (docs/deployment.md): set by `POST /api/nodes/<name>/drain` or `trainyard drain`,
    # read by the node at every claim; null: not drained. The node's legacy flag file
    # (`$TRAINYARD_HOME/drain-<node>`) drains it too; its heartbeat reports whether it exists.
    drain_dttm: Mapped[datetime | None]
    drain_by: Mapped[str | None] = mapped_column(String(128))
    drain_flag_file: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The images this node can run ("repo:tag", as `docker images` names them), refreshed with
    # each heartbeat; the API refuses an image no live node has. NULL: the node runs any image
    # reference (the process runtime) or reports none (an older worker).
    images: Mapped[list[str] | None] = mapped_column(Json)


class GpuLease(Base):
    """One GPU of one node held by one job. The primary key makes a double booking impossible,
    even when two launches race on one node."""

    __tablename__ = "tb_gpu_lease"

    node: Mapped[str] = mapped_column(String(128), primary_key=True)
    gpu_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(
        ForeignKey("tb_model_train_job.id", ondelete="CASCADE"), index=True
    )
    taken_dttm: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())


class OutboxMessage(Base):
    """A task to publish, written in the same transaction as the state change it follows.

    The relay publishes unsent rows after commit; the periodic sweep re-publishes any that
    a crash or a broker outage left behind. Consumers are idempotent, so a row published
    twice does no harm; a row never published would.
    """

    __tablename__ = "tb_outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    task_name: Mapped[str] = mapped_column(String(128))
    queue: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_dttm: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())
    published_dttm: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # After a failed publish the relay waits (Settings.bounds backoff) before the next try,
    # and gives the row up after the last one: the sweep and the nodes' reconcile re-derive
    # every launch, stop and judgement from the job rows, so nothing is lost with it.
    next_attempt_dttm: Mapped[datetime | None]
    given_up_dttm: Mapped[datetime | None]

    __table_args__ = (Index("ix_outbox_unpublished", "published_dttm", "id"),)


class WebhookEvent(Base):
    """One status change as webhook receivers get it (app/domain/webhooks.py builds the
    payload), written in the status write's own transaction."""

    __tablename__ = "tb_webhook_event"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid_lib.UUID] = mapped_column(Uuid, unique=True)  # X-Trainyard-Event-Id
    model_id: Mapped[int] = mapped_column(ForeignKey("tb_model_master.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(Id)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_dttm: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())


class WebhookDelivery(Base):
    """One event to one endpoint: its tries, and how they ended. PENDING until an answer
    2xx (DELIVERED) or the last allowed try failed (DEAD: the dead-letter record, kept)."""

    __tablename__ = "tb_webhook_delivery"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("tb_webhook_event.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[int] = mapped_column(Id)  # the history API filters by model
    target: Mapped[str] = mapped_column(String(16))  # "deployment" (WEBHOOK_URLS) or "model"
    url: Mapped[str] = mapped_column(String(2000))  # never served whole (it may be a secret)
    format: Mapped[str] = mapped_column(String(8))  # "json" or "slack"
    status: Mapped[str] = mapped_column(String(12), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the next try may start (NULL: now). A try in flight pushes it out by a lease, so
    # a worker that died mid-try leaves the delivery due again, never stuck.
    next_attempt_dttm: Mapped[datetime | None]
    # When a message for the next try was last handed to the broker: the sweep hands another
    # only when none was for a while (workers/reconcile.py).
    enqueued_dttm: Mapped[datetime | None]
    last_try_dttm: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_dttm: Mapped[datetime | None]
    dead_dttm: Mapped[datetime | None]
    created_dttm: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())

    __table_args__ = (
        Index("ix_webhook_delivery_model", "model_id", "id"),
        Index("ix_webhook_delivery_status_due", "status", "next_attempt_dttm"),
    )


class IdempotentResponse(Base):
    """The first answer to a command sent with an `Idempotency-Key` header."""

    __tablename__ = "tb_idempotency_key"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request: Mapped[str] = mapped_column(String(300))  # "POST /api/train/run/<uuid>"
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_dttm: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())


__all__ = [
    "Base",
    "GpuLease",
    "IdempotentResponse",
    "Job",
    "MetricSeries",
    "Model",
    "Node",
    "OutboxMessage",
    "TestMetric",
    "TrainMetric",
    "ValidationMetric",
    "WebhookDelivery",
    "WebhookEvent",
]
