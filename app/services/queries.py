"""Read side: find and list models and jobs; the named conditions on a job's container phase."""

from __future__ import annotations

import functools
import math
import threading
import time
import uuid
from collections import namedtuple
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, Executable, and_, bindparam, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from app.db import driver_rows
from app.db.models import Installation, Job, MetricSeries, Model
from app.domain.container_phases import ContainerPhase
from app.domain.states import JobStatus, JobType, StepState


class ModelRow(Protocol):
    """What a list row is read from: a `Model`, or a row of `SUMMARY_COLUMNS` (no ORM object:
    building 20 of them, and decoding each one's params document, was a third of a page)."""

    @property
    def id(self) -> int: ...
    @property
    def uuid(self) -> uuid.UUID: ...
    @property
    def model_no(self) -> str: ...
    @property
    def model_ver(self) -> str: ...
    @property
    def train_type(self) -> str: ...
    @property
    def memo(self) -> str | None: ...
    @property
    def image(self) -> str: ...
    @property
    def status_cd(self) -> str: ...
    @property
    def step1_state(self) -> str: ...
    @property
    def step2_state(self) -> str: ...
    @property
    def step1_strt_dttm(self) -> datetime | None: ...
    @property
    def step1_end_dttm(self) -> datetime | None: ...
    @property
    def step2_strt_dttm(self) -> datetime | None: ...
    @property
    def step2_end_dttm(self) -> datetime | None: ...
    @property
    def step1_metric_save_yn(self) -> bool: ...
    @property
    def step2_metric_save_yn(self) -> bool: ...
    @property
    def current_attempt_id(self) -> int | None: ...
    @property
    def best_epoch(self) -> int | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def retry_status(self) -> str | None: ...
    @property
    def epochs_done(self) -> int | None: ...
    @property
    def checkpoint_epoch(self) -> int | None: ...
    @property
    def total_epoch(self) -> int: ...
    @property
    def val_interval(self) -> int: ...


def _param(name: str) -> ColumnElement[int]:
    """`Model.total_epoch` / `Model.val_interval` in SQL: the params value, 1 when absent."""
    return func.coalesce(Model.params[name].as_integer(), 1).label(name)


#: The columns a list row shows (serialize.model_summary), fetched as plain rows.
SUMMARY_COLUMNS = (
    Model.id,
    Model.uuid,
    Model.model_no,
    Model.model_ver,
    Model.train_type,
    Model.memo,
    Model.status_cd,
    Model.step1_state,
    Model.step2_state,
    Model.step1_strt_dttm,
    Model.step1_end_dttm,
    Model.step2_strt_dttm,
    Model.step2_end_dttm,
    Model.step1_metric_save_yn,
    Model.step2_metric_save_yn,
    Model.current_attempt_id,
    Model.best_epoch,
    Model.last_error,
    Model.retry_status,
    Model.image,
    Model.epochs_done,
    Model.checkpoint_epoch,
    _param("total_epoch"),
    _param("val_interval"),
)


@dataclass(frozen=True)
class Page:
    items: list[ModelRow]
    total: int
    pages: int
    exact_total: bool = True  # False: a count kept from before the last commit (CountCache)


def installation_id(session: Session) -> str:
    """This installation's id (made once by the migrations)."""
    value = session.scalar(select(Installation.id))
    if value is None:
        raise RuntimeError("tb_installation is empty: run `trainyard migrate` on this database")
    return value


def in_phase(phase: ContainerPhase) -> ColumnElement[bool]:
    """SQL for `Job.container_phase is phase` (the same columns as phase_of reads)."""
    claimed, ended, gone = (
        Job.node.is_not(None),
        Job.container_ended_dttm.is_not(None),
        Job.container_gone_dttm.is_not(None),
    )
    return {
        ContainerPhase.UNCLAIMED: Job.node.is_(None),
        ContainerPhase.CLAIMED: and_(claimed, ~ended, ~gone),
        ContainerPhase.ENDED: and_(ended, ~gone),
        ContainerPhase.GONE: gone,
    }[phase]


def holds_container() -> ColumnElement[bool]:
    """SQL for `Job.container_phase.holds_container`: claimed by a node, container not
    confirmed gone. Until then the job counts on its node and its model starts no other."""
    return and_(Job.node.is_not(None), Job.container_gone_dttm.is_(None))


def held_by(node: str) -> ColumnElement[bool]:
    """The jobs `node` holds (claimed by it, container not confirmed gone)."""
    return and_(Job.node == node, holds_container())


# Built once, values bound at execution: building and hashing a statement cost more than
# running it on every request that reads a model.
_MODEL_BY_UUID = select(Model).where(Model.uuid == bindparam("uuid"))


def find_model(session: Session, model_uuid: uuid.UUID) -> Model | None:
    return session.scalars(_MODEL_BY_UUID, {"uuid": model_uuid}).one_or_none()


@dataclass(frozen=True)
class ModelDetailRows:
    """A model's detail as plain rows (serialize.model_detail): no ORM objects to build."""

    model: Any  # a row of DETAIL_COLUMNS: reads like a `Model`
    jobs: list[Any]  # rows of the model's jobs (JOB_DETAIL_COLUMNS), by id
    has_metrics: bool  # any metric series row: without one, its summary needs no query


#: The columns a model's detail shows: a list row's and the rest of the model.
DETAIL_COLUMNS = (
    *SUMMARY_COLUMNS,
    Model.params,
    Model.dataset,
    Model.uses_dataset,
    Model.resources,
    Model.shm_size_mb,
    Model.env,
    Model.network,
    Model.stall_timeout_s,
    Model.priority,
    Model.retry_policy,
    Model.webhook_url,
    Model.webhook_format,
    Model.created_dttm,
)

#: The job columns a detail shows (serialize.job_detail reads a row of them like a `Job`):
#: not the log tail and the bookkeeping, which every column more costs to fetch and describe.
JOB_DETAIL_COLUMNS = (
    Job.id,
    Job.attempt,
    Job.job_type,
    Job.status_cd,
    Job.exit_code,
    Job.container_exit_code,
    Job.oom_killed,
    Job.error_message,
    Job.node,
    Job.container_name,
    Job.gpu_ids,
    Job.params,
    Job.queued_dttm,
    Job.started_dttm,
    Job.finished_dttm,
    Job.priority,
    Job.retry_number,
    Job.end_cause,
    Job.retry_note,
)
_JobRow = namedtuple("_JobRow", [c.key for c in JOB_DETAIL_COLUMNS])  # type: ignore[misc]


def _job_row(values: Iterable[Any]) -> Any:
    """A row of `JOB_DETAIL_COLUMNS` that reads like a `Job` (by the same names)."""
    return _JobRow(*values)


# Built once, values bound at execution (the detail is read on every dashboard click). One
# round trip: the model's columns, then its jobs' (a row per job, the model's repeated; one
# row of NULL job columns when it has none). The job columns' names that clash with the
# model's get a suffix, so the row reads like the model and its tail is the job.
DETAIL_STATEMENT = (
    select(
        *DETAIL_COLUMNS,
        select(MetricSeries.model_id)
        .where(MetricSeries.model_id == Model.id)
        .exists()
        .label("has_metrics"),
        *JOB_DETAIL_COLUMNS,
    )
    .outerjoin(Job, Job.model_id == Model.id)
    .where(Model.uuid == bindparam("uuid"))
    .order_by(Job.id)
)


def find_model_detail(session: Session, model_uuid: uuid.UUID) -> ModelDetailRows | None:
    """The model, its jobs and whether it has metrics, in one Core statement run on the
    driver's cursor (building the ORM `Model` and its `Job`s, in two round trips with the
    metric series, was most of a detail's time; SQLAlchemy's execute path, half the rest)."""
    rows = driver_rows.rows(session, DETAIL_STATEMENT, {"uuid": model_uuid})
    if not rows:
        return None
    first = len(DETAIL_COLUMNS) + 1
    jobs = [job for job in (_job_row(row[first:]) for row in rows) if job.id is not None]
    return ModelDetailRows(rows[0], jobs, bool(rows[0].has_metrics))


def jobs_of(session: Session, model: Model) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.model_id == model.id).order_by(Job.id)))


def job_to_show(session: Session, model: Model, job_id: int | None) -> Job | None:
    """The model's job `job_id` (LookupError when it has none such), else its current
    attempt, else its last job; None when it has no jobs."""
    jobs = jobs_of(session, model)
    if job_id is not None:
        for job in jobs:
            if job.id == job_id:
                return job
        raise LookupError(f"model {model.uuid} has no job {job_id}")
    for job in jobs:
        if job.id == model.current_attempt_id:
            return job
    return jobs[-1] if jobs else None


def latest_successful_eval(session: Session, model: Model) -> Job | None:
    """The model's newest EVAL job that succeeded: the one its results come from."""
    return session.scalars(
        select(Job)
        .where(
            Job.model_id == model.id,
            Job.job_type == JobType.EVAL.value,
            Job.status_cd == JobStatus.SUCCESS.value,
        )
        .order_by(Job.id.desc())
        .limit(1)
    ).one_or_none()


def launch_order() -> tuple[Any, ...]:
    """The order nodes launch waiting jobs in (workers/capacity.py): higher priority first,
    first in, first out within one priority (queued time, then id)."""
    return (Job.priority.desc(), Job.queued_dttm, Job.id)


def launches_before(
    priority: Any, queued: Any, job_id: Any, job: Any = Job
) -> ColumnElement[bool]:
    """Jobs (`job`: Job or an alias of it) ahead, in `launch_order()`, of a job with this
    priority, queued time and id (values, or another alias's columns)."""
    return tuple_(-job.priority, job.queued_dttm, job.id) < tuple_(-priority, queued, job_id)


def queue_position(session: Session, job: Job) -> int | None:
    """1-based place of a QUEUED job among all QUEUED jobs of the installation in launch order
    (`launch_order()`); None for a job that is not QUEUED. Jobs already claimed by a node but
    not yet started count ahead."""
    if job.status_cd != JobStatus.QUEUED.value or job.id is None:
        return None
    return session.scalar(_queue_position_statement(), {"job_id": job.id})


def queue_positions(session: Session, models: Iterable[ModelRow]) -> dict[int, int]:
    """Model id -> `queue_position` of its QUEUED job, for the models that have one, in one
    query for a whole list page. Only a model with a step IN_PROGRESS can have a waiting job,
    so a page without one costs no query."""
    in_progress = StepState.IN_PROGRESS.value
    ids = [m.id for m in models if in_progress in (m.step1_state, m.step2_state)]
    if not ids:
        return {}
    rows = session.connection().execute(_queue_positions_statement(), {"ids": ids})
    # A model has at most one live job; were there two, the newest wins (dict keeps the last).
    return {model_id: place for model_id, place in rows}


def _place_in_queue() -> ColumnElement[int]:
    """SQL for `queue_position` of the `Job` row a statement selects."""
    ahead = aliased(Job)
    places_ahead = (
        select(func.count(ahead.id))
        .where(
            ahead.status_cd == JobStatus.QUEUED.value,
            launches_before(Job.priority, Job.queued_dttm, Job.id, job=ahead),
        )
        .scalar_subquery()
    )
    return places_ahead + 1


# Built once (building one took longer than running it), values bound at execution.
@functools.cache
def _queue_position_statement() -> Executable:
    """The `queue_position` of the QUEUED job `job_id` (no row when it is not QUEUED)."""
    return select(_place_in_queue()).where(
        Job.id == bindparam("job_id"), Job.status_cd == JobStatus.QUEUED.value
    )


@functools.cache
def _queue_positions_statement() -> Executable:
    """The QUEUED jobs of the models `ids`, each with its `queue_position`."""
    return (
        select(Job.model_id, _place_in_queue())
        .where(
            Job.model_id.in_(bindparam("ids", expanding=True)),
            Job.status_cd == JobStatus.QUEUED.value,
        )
        .order_by(Job.id)
    )


class CountCache:
    """Row counts per (status, modelNo, search) filter, kept per API process: exact while no
    model changed since they were counted (`changes`: app/api/answer_cache.py), and reused for
    `ttl_s` seconds after one did.

    Counting 10,000 rows for every list request was a third of its cost; a total that is at
    most a second old is fine for a page footer. ttl_s = 0 turns it off (exact counts).
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._counts: dict[tuple[str, str, str], tuple[float, int | None, int]] = {}
        self._lock = threading.Lock()

    def get(
        self,
        session: Session,
        status: str,
        model_no: str,
        search: str = "",
        changes: int | None = None,
    ) -> tuple[int, bool]:
        """The count, and whether it is exact: counted now, or at `changes` (the change
        counter now, when an answer read now may be kept under it)."""
        key = (status, model_no, search)
        now = time.monotonic()
        if self.ttl_s > 0:
            with self._lock:
                cached = self._counts.get(key)
            if cached is not None:
                counted, at, total = cached
                if changes is not None and at == changes:
                    return total, True
                if now - counted < self.ttl_s:
                    return total, False
        count = _list_statements(bool(status), bool(model_no), bool(search))[0]
        params = {"status": status, "model_no": model_no, "search": like_pattern(search)}
        total = session.connection().execute(count, params).scalar() or 0
        if self.ttl_s > 0:
            with self._lock:
                self._counts[key] = (now, changes, total)
        return total, True


@dataclass(frozen=True)
class ListOrder:
    """How a list page is sorted: `column` (a key of TIME_ORDERS) or, with `metric_split`
    set, the best value of the bound `metric` in that split by `metric_mode`
    (app/metrics/ranking.py). Models without a value come last either way; ties newest first."""

    column: str = "created"
    descending: bool = True
    metric_split: str | None = None
    metric_mode: str = "min"


#: The list's time sorts (API `sort=` names): creation (the id's order) and the step times.
TIME_ORDERS: dict[str, Any] = {
    "created": Model.id,
    "step1StrtDttm": Model.step1_strt_dttm,
    "step1EndDttm": Model.step1_end_dttm,
    "step2StrtDttm": Model.step2_strt_dttm,
    "step2EndDttm": Model.step2_end_dttm,
}
NEWEST_FIRST = ListOrder()


def like_pattern(search: str) -> str:
    """`search` as a LIKE pattern matching it anywhere, its own % _ and \\ taken literally."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_models(
    session: Session,
    status: str,
    model_no: str,
    page: int,
    size: int,
    counts: CountCache,
    *,
    search: str = "",
    order: ListOrder = NEWEST_FIRST,
    metric: str = "",
    changes: int | None = None,
) -> Page:
    """Newest first unless `order` says otherwise; `status` and `model_no` filter when not
    empty (indexed: see models.py), `search` matches modelVer or memo anywhere, any case
    (trigram-indexed on PostgreSQL: migration 0015); `metric` is the name `order` ranks by;
    `changes`: see `CountCache.get`."""
    total, exact = counts.get(session, status, model_no, search, changes)
    dialect = session.get_bind().dialect.name  # a metric order's SQL differs per dialect
    query = _list_statements(bool(status), bool(model_no), bool(search), order, dialect)[1]
    params = {
        "status": status,
        "model_no": model_no,
        "search": like_pattern(search),
        "metric": metric,
        "offset": page * size,
        "limit": size,
    }
    # On the driver's cursor: no ORM objects, and not SQLAlchemy's execute path.
    items = cast(list[ModelRow], driver_rows.rows(session, query, params))
    return Page(items, total, math.ceil(total / size) if total else 0, exact)


@functools.cache
def _list_statements(
    by_status: bool,
    by_model_no: bool,
    by_search: bool = False,
    order: ListOrder = NEWEST_FIRST,
    dialect: str = "postgresql",
) -> tuple[Executable, Executable]:
    """(count, page) statements for one combination of filters and order, values bound at
    execution: built once, they skip building and hashing a statement on every request."""
    conditions = []
    if by_status:
        conditions.append(Model.status_cd == bindparam("status"))
    if by_model_no:
        conditions.append(Model.model_no == bindparam("model_no"))
    if by_search:
        pattern: ColumnElement[str] = bindparam("search")
        conditions.append(
            or_(
                Model.model_ver.ilike(pattern, escape="\\"),
                Model.memo.ilike(pattern, escape="\\"),
            )
        )
    count = select(func.count(Model.id)).where(*conditions)
    page = select(*SUMMARY_COLUMNS).where(*conditions)
    if order.metric_split is not None:
        from app.metrics import ranking  # here: app.metrics imports this module

        best = ranking.best_values(order.metric_split, order.metric_mode, dialect).c.best
        page = page.outerjoin(best.table, best.table.c.model_id == Model.id)
        key: Any = best
    else:
        key = TIME_ORDERS[order.column]
    sort = key.desc() if order.descending else key.asc()
    if key is Model.id:
        # Not NULLS LAST: ids are never null, and `id DESC NULLS LAST` is not the primary
        # key index's order, so PostgreSQL would sort the whole table.
        page = page.order_by(sort)
    else:
        page = page.order_by(sort.nulls_last(), Model.id.desc())
    page = page.offset(bindparam("offset")).limit(bindparam("limit"))
    return count, page
