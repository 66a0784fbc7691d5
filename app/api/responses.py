"""What the API answers with: one typed definition per answer body, the only one.

These are TypedDicts that pydantic reads: the serializers (app/api/serialize.py and the views)
build them (`ModelSummary(id=…, …)` is a plain dict at run time, so the hot list pays nothing
for validation), a type checker holds each builder to its type, and app/api/docs.py generates
the OpenAPI document from them. tests/integration/test_openapi_fuzz.py checks at run time that
every answer conforms (`additionalProperties: false` everywhere: a key the schema lacks fails).

Keys are the wire names the spec fixes (camelCase, `step1StrtDttm`, …), so no aliasing.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Generic, Literal, NotRequired, TypeVar

from pydantic import ConfigDict, Field, WithJsonSchema, with_config
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from app.domain.states import JobStatus, JobType, ModelStatus, StepState, TrainType
from app.domain.transitions import Command

#: additionalProperties: false, so a key an answer has and its type lacks fails the tests.
closed = with_config(ConfigDict(extra="forbid"))


def _one_of(values: type[Enum] | list[str]) -> WithJsonSchema:
    names = [m.value for m in values] if isinstance(values, type) else values
    return WithJsonSchema({"type": "string", "enum": names})


Dttm = Annotated[
    str | None, Field(description="YYYY-MM-DD HH:mm:ss in the display time zone (DISPLAY_TZ)")
]
Duration = Annotated[str | None, Field(description="Korean style, e.g. 2시간 15분 0초")]
ModelStatusCd = Annotated[str, _one_of(ModelStatus)]
StepStatusCd = Annotated[str, _one_of(StepState)]
JobStatusCd = Annotated[str, _one_of(JobStatus)]
JobTypeCd = Annotated[str, _one_of(JobType)]
CommandName = Annotated[str, _one_of([c.api_name for c in Command])]
# A train type added by configuration or an old row is served as stored, so no enum here.
TrainTypeCd = Annotated[str, Field(examples=[t.value for t in TrainType])]
#: A metric value: a number, null for a missing cell, "NaN" / "Infinity" / "-Infinity".
MetricValue = float | Literal["NaN", "Infinity", "-Infinity"] | None
#: A row of a metrics table: epoch, step, jobId (test rows) and one value per metric.
MetricRow = dict[str, MetricValue]


@closed
class Progress(TypedDict):
    epochsDone: int
    totalEpoch: int
    percent: float
    checkpointEpoch: int | None


@closed
class MetricStats(TypedDict):
    """One metric's min / max / last value with their epochs."""

    min: MetricValue
    minEpoch: int | None
    max: MetricValue
    maxEpoch: int | None
    last: MetricValue
    lastEpoch: int | None


#: {split (train, val, test): {metric: stats}} for the splits that have rows.
MetricSummary = dict[str, dict[str, MetricStats]]


@closed
class MetricColumn(TypedDict):
    """The list's metric column for one model: `name` in `split`, its best value by `mode`
    and the epoch of it (earliest on ties)."""

    name: str
    split: Literal["train", "val"]
    mode: Literal["min", "max"]
    value: MetricValue
    epoch: int | None


@closed
class ModelSummary(TypedDict):
    """A model as the list shows it (user document §2.1), with live progress and the
    commands the state rules accept now."""

    id: int
    uuid: Annotated[str, Field(json_schema_extra={"format": "uuid"})]
    modelVer: str
    statusCd: ModelStatusCd
    statusName: str
    step1Status: StepStatusCd
    step1StatusName: str
    step2Status: StepStatusCd
    step2StatusName: str
    step1StrtDttm: Dttm
    step1EndDttm: Dttm
    step1Duration: Duration
    # The current training across its attempts (a run or restart and the resumes after it,
    # docs/dashboard.md "학습 시간"): the first attempt's start, the attempts' run times added
    # up (the pauses between them left out; null until one ended), how many attempts ran.
    step1FirstStrtDttm: Dttm
    step1TotalDuration: Duration
    step1Attempts: int
    step2StrtDttm: Dttm
    step2EndDttm: Dttm
    step2Duration: Duration
    modelNo: str
    trainType: TrainTypeCd
    trainTypeName: str
    currentAttemptId: int | None
    memo: str | None
    bestEpoch: int | None
    lastError: str | None
    step1MetricSaveYn: bool
    step2MetricSaveYn: bool
    progress: Progress
    # 1-based place of the model's waiting job among all QUEUED jobs (launch order); null
    # when nothing of it waits.
    queuePosition: int | None
    allowedCommands: list[CommandName]
    # "retrying (2/3) after NODE_LOST" while an automatic retry's training is in progress
    # (docs/retry.md); null otherwise.
    retryStatus: str | None
    # On GET /api/models/{uuid}, and on list items with withSummary=true.
    metricSummary: NotRequired[MetricSummary]
    # On list items with metric=…: the chosen metric's best value (null: the model has none).
    metricValue: NotRequired[MetricColumn]


@closed
class Job(TypedDict):
    """One attempt of a step: a TRAIN (step1) or EVAL (step2) job."""

    id: int
    attempt: int
    jobType: JobTypeCd
    statusCd: JobStatusCd
    statusName: str
    exitCode: int | None
    # The container's own exit code (e.g. 143: it ended on SIGTERM after a cancel, when the
    # job's exitCode is -1); null while it runs or when no container ever ran.
    containerExitCode: int | None
    oomKilled: bool | None
    errorMessage: str | None
    node: str | None
    containerName: str | None
    gpuIds: list[int] | None
    params: dict[str, Any]
    queuedDttm: Dttm
    startedDttm: Dttm
    finishedDttm: Dttm
    duration: Duration
    queuePosition: int | None  # null unless QUEUED
    priority: int  # launch priority: higher first, FIFO within one (docs/workers.md)
    # Automatic retry (docs/retry.md): which retry of its run this attempt is (null: a user
    # started it); the retry cause its ending stands for (NODE_LOST, SERVER_RESTART, OOM,
    # STALLED, EXIT:<code>; null: none); why it was or was not retried.
    retryNumber: int | None
    endCause: str | None
    retryNote: str | None


@closed
class ResourceRequests(TypedDict, total=False):
    """What the model's jobs ask of a node (absent: no limit)."""

    gpus: int
    memory_mb: int
    cpus: float


@closed
class RetryPolicy(TypedDict):
    """Automatic retry (docs/retry.md): up to `max` new attempts after an ending for a cause
    in `on` (NODE_LOST, SERVER_RESTART, OOM, STALLED, EXIT:<code>)."""

    max: int
    on: list[str]


@closed
class ModelDetail(ModelSummary):
    """One model with its jobs (oldest first)."""

    params: dict[str, Any]
    image: str
    # null with usesDataset true: the node's default dataset (DEFAULT_DATASET); null with
    # usesDataset false: none (created with "dataset": null; nothing is mounted).
    dataset: str | None
    usesDataset: bool
    resources: ResourceRequests
    # The container's runtime (trainer/README.md, "Sandbox"). shmSizeMb null: the default,
    # half the memory limit, at least 1024 MB, at most the memory limit.
    shmSizeMb: int | None
    env: dict[str, str]
    network: bool
    # No log output and no progress.json change this long → the job ends STALLED; null: the
    # node's DEFAULT_STALL_TIMEOUT_S (0 unless set: off), 0: never.
    stallTimeoutS: int | None
    priority: int  # its jobs' launch priority unless a command gives one
    retryPolicy: RetryPolicy | None  # null: never retried automatically (the default)
    # The model's own webhook (docs/webhooks.md): scheme and host only, the rest may be a
    # secret; null: none (the deployment's WEBHOOK_URLS still get its events).
    webhookEndpoint: str | None
    webhookFormat: Literal["json", "slack"] | None
    createdDttm: Dttm
    checkpointEpochs: list[int]
    jobs: list[Job]


@closed
class CommandAnswer(ModelSummary):
    """The model after an accepted command, and the job it queued (null when none)."""

    job: Job | None


@closed
class SyncReport(TypedDict):
    """What asking the owning node to reconcile did."""

    requested: bool
    reason: NotRequired[str]
    node: NotRequired[str]
    jobId: NotRequired[int]
    answered: NotRequired[bool]
    result: NotRequired[Any]


@closed
class SyncAnswer(ModelSummary):
    sync: SyncReport


@closed
class MetricNames(TypedDict):
    """Every metric name some model has, per split (what sort=best:… and metric=… take)."""

    val: list[str]
    train: list[str]


@closed
class ComparedModel(TypedDict):
    """One model of a comparison: who it is, its parameters and its metrics."""

    uuid: Annotated[str, Field(json_schema_extra={"format": "uuid"})]
    modelNo: str
    modelVer: str
    memo: str | None
    statusCd: ModelStatusCd
    statusName: str
    bestEpoch: int | None
    bestMetric: str
    bestMode: str
    params: dict[str, Any]
    metricSummary: MetricSummary


@closed
class Comparison(TypedDict):
    """GET /api/models/compare: the models in the order asked, and the parameter keys whose
    values are not the same in all of them (a key one model lacks differs)."""

    models: list[ComparedModel]
    differingParams: list[str]


@closed
class ModelPage(TypedDict):
    content: list[ModelSummary]
    totalElements: int
    totalPages: int


@closed
class SplitCount(TypedDict):
    total: int
    labels: dict[str, int]


@closed
class SplitCounts(TypedDict):
    """Samples per split (train, val, test) and per label."""

    source: Literal["created", "planned"]
    total: int
    splits: dict[str, SplitCount]


@closed
class CreatedSplits(TypedDict):
    splitDir: str
    total: int
    splits: dict[str, SplitCount]


@closed
class Chart(TypedDict):
    """A split's metric curve; long series are thinned (first, last and best epoch kept)."""

    split: Literal["train", "val"]
    columns: list[str]
    points: list[MetricRow]
    total: int
    downsampled: bool
    method: Literal["none", "minmax-buckets", "stride"]
    bestEpoch: int | None


@closed
class MetricsOverview(TypedDict):
    bestEpoch: int | None
    bestEpochFinal: bool
    bestMetric: str
    bestMode: str
    splits: MetricSummary


@closed
class EvalTestRows(TypedDict):
    """test.csv rows of every EVAL job: {jobId, epoch, step, <metric>…}."""

    columns: list[str]
    rows: list[MetricRow]


@closed
class LogAnswer(TypedDict):
    """A job's stored log tail; a model without jobs has only the first four keys."""

    jobId: int | None
    logTail: str | None
    available: bool
    note: str | None
    attempt: NotRequired[int]
    jobType: NotRequired[JobTypeCd]
    statusCd: NotRequired[JobStatusCd]
    statusName: NotRequired[str]
    exitCode: NotRequired[int | None]
    containerExitCode: NotRequired[int | None]
    oomKilled: NotRequired[bool | None]
    errorMessage: NotRequired[str | None]
    finishedDttm: NotRequired[Dttm]
    running: NotRequired[bool]
    streamUrl: NotRequired[str]  # the whole log, live (text/event-stream)
    downloadUrl: NotRequired[str]  # the whole stored log as a text file


@closed
class LogChunk(TypedDict):
    """GET …/logs?offset=N: the stored log from byte `offset` (later than N when that part
    was rotated away, JOB_LOG_MAX_MB), escaped (invalid UTF-8 and NUL as \\xNN)."""

    jobId: int
    text: str
    offset: int
    nextOffset: int  # ask for this offset next
    complete: bool  # the container ended and nothing follows nextOffset


@closed
class Results(TypedDict):
    """The latest successful test: summary.json and test.csv, as the job wrote them."""

    jobId: int
    attempt: int
    epoch: int | None
    finishedDttm: Dttm
    summary: dict[str, Any] | None
    columns: list[str]
    rows: list[dict[str, Any]]
    downloadAvailable: bool
    downloadUrl: str | None
    problems: list[str]


Uuid = Annotated[str, Field(json_schema_extra={"format": "uuid"})]


@closed
class NodeJob(TypedDict):
    """A job a node holds: claimed by it, its container not yet confirmed removed."""

    jobId: int
    modelUuid: Uuid
    modelNo: str
    modelVer: str
    jobType: JobTypeCd
    attempt: int
    statusCd: JobStatusCd
    statusName: str
    gpuIds: list[int]
    claimedDttm: Dttm
    startedDttm: Dttm
    containerRunning: bool  # started and not yet seen ended


@closed
class NodeGpu(TypedDict):
    """One GPU of a node (NODE_GPUS) and the job that leases it (null: free)."""

    gpuId: int
    jobId: int | None
    modelUuid: Uuid | None
    modelNo: str | None
    modelVer: str | None


@closed
class NodeCapacity(TypedDict):
    maxJobs: int | None  # NODE_MAX_JOBS
    memoryMb: int | None  # NODE_MEMORY_MB
    jobsHeld: int


@closed
class NodeDrain(TypedDict):
    """Drained: takes no new job, finishes the ones it holds."""

    draining: bool
    requestedDttm: Dttm  # when the API or `trainyard drain` drained it (null: not so)
    requestedBy: str | None
    flagFile: bool  # the node's legacy flag file $TRAINYARD_HOME/drain-<node> exists


@closed
class NodeInfo(TypedDict):
    """A worker node as its heartbeat row, GPU leases and held jobs describe it."""

    name: str
    state: Literal["alive", "lost"]  # lost: no heartbeat for NODE_LOST_AFTER_S
    lastHeartbeatDttm: Dttm
    heartbeatAgeS: float
    startedDttm: Dttm
    runtime: str | None
    capacity: NodeCapacity
    gpus: list[NodeGpu]
    gpusFree: int
    gpusLeased: int
    containersRunning: int
    jobs: list[NodeJob]
    drain: NodeDrain


@closed
class NodeList(TypedDict):
    nodes: list[NodeInfo]
    lostAfterS: float  # NODE_LOST_AFTER_S of the API


@closed
class WebhookStates(TypedDict):
    old: str
    new: str


@closed
class WebhookJobStates(TypedDict):
    old: str | None  # null: the job was created by this change
    new: str


@closed
class WebhookModel(TypedDict):
    uuid: Uuid
    modelNo: str
    modelVer: str
    status: WebhookStates
    step1: WebhookStates
    step2: WebhookStates


@closed
class WebhookJob(TypedDict):
    id: int
    type: JobTypeCd
    attempt: int
    status: WebhookJobStates
    exitCode: int | None
    node: str | None


@closed
class WebhookCause(TypedDict):
    kind: Literal["command", "observation"]
    name: str  # the command ("run", "test cancel", …) or the observed event ("failed", …)
    code: str | None  # the error code of the model's lastError (OOM_KILLED, …)
    message: str | None  # the model's lastError (at most 500 characters)


@closed
class WebhookLinks(TypedDict):
    api: str
    dashboard: str


@closed
class WebhookEventBody(TypedDict):
    """The JSON a webhook receiver gets (WEBHOOK_FORMAT=json) on every status change."""

    id: Uuid  # also X-Trainyard-Event-Id: dedup by it (delivery is at least once)
    type: Literal["model.status_changed"]
    occurredAt: str  # ISO 8601, UTC
    sequence: int  # grows with every event: orders one model's events
    model: WebhookModel
    job: WebhookJob | None  # the job the change ended, started or created
    newJob: WebhookJob | None  # a job created by a change that also ended `job`
    cause: WebhookCause
    links: WebhookLinks


@closed
class WebhookDeliveryInfo(TypedDict):
    """One event to one endpoint, and how its tries went."""

    id: int
    eventId: Uuid
    modelUuid: Uuid
    jobId: int | None
    target: Literal["deployment", "model"]  # WEBHOOK_URLS, or the model's webhookUrl
    endpoint: str  # scheme and host only: the URL may be a secret
    format: Literal["json", "slack"]
    status: Literal["PENDING", "DELIVERED", "DEAD"]
    attempts: int
    lastStatusCode: int | None
    lastError: str | None
    createdDttm: Dttm
    lastAttemptDttm: Dttm
    nextAttemptDttm: Dttm  # PENDING: not before then
    deliveredDttm: Dttm
    deadDttm: Dttm  # DEAD: when the last allowed try failed (the dead letter)
    event: WebhookEventBody


@closed
class WebhookDeliveryPage(TypedDict):
    content: list[WebhookDeliveryInfo]
    totalElements: int
    totalPages: int


@closed
class DependencyCheck(TypedDict):
    ok: bool
    dialect: NotRequired[str]
    error: NotRequired[str]


@closed
class Health(TypedDict):
    status: Literal["ok", "degraded"]
    database: DependencyCheck
    broker: DependencyCheck
    down: list[Literal["database", "broker"]]  # what is down (names, never hosts)


DataT = TypeVar("DataT")


@closed
class Ok(TypedDict, Generic[DataT]):
    """The envelope of every answer that succeeded (SPEC §7)."""

    success: Literal[True]
    data: DataT


@closed
class HealthAnswer(TypedDict):
    """success is false (HTTP 503) when a dependency is down."""

    success: bool
    data: Health


@closed
class ErrorDetail(TypedDict):
    code: str
    message: str


@closed
class Error(TypedDict):
    """The envelope of every error: the code names the rule, the message the field."""

    success: Literal[False]
    error: ErrorDetail
