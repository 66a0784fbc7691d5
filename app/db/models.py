"""Tables. Names follow the user document (`tb_model_master.status_cd`, `step1_state`, …);
the rest is what a real system needs (uuid, params, resources, node, versions, outbox)."""

from __future__ import annotations

import uuid as uuid_lib
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

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

    __mapper_args__: ClassVar = {"version_id_col": version}
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
    container_ended_dttm: Mapped[datetime | None]
    queued_dttm: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())
    claimed_dttm: Mapped[datetime | None]  # when a node took it (node, gpu_ids set)
    started_dttm: Mapped[datetime | None]
    finished_dttm: Mapped[datetime | None]
    # When its node confirmed the container removed (after recording exit code and log tail).
    # Until then the model may still have a live container, and no new one may start.
    container_gone_dttm: Mapped[datetime | None]

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


class _MetricRow:
    """Columns shared by the three metric tables: one row per CSV data row."""

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("tb_model_master.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[int] = mapped_column(ForeignKey("tb_model_train_job.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    step: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TrainMetric(_MetricRow, Base):
    __tablename__ = "tb_model_metrics_train"


class ValidationMetric(_MetricRow, Base):
    __tablename__ = "tb_model_metrics_validation"


class TestMetric(_MetricRow, Base):
    __tablename__ = "tb_model_metrics_test"
    __test__ = False  # not a pytest class


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

    __table_args__ = (Index("ix_outbox_unpublished", "published_dttm", "id"),)


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
    "Model",
    "OutboxMessage",
    "TestMetric",
    "TrainMetric",
    "ValidationMetric",
]
