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

from pydantic import ConfigDict, Field, WithJsonSchema
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from app.domain.states import JobStatus, JobType, ModelStatus, StepState, TrainType
from app.domain.transitions import Command

_CLOSED = ConfigDict(extra="forbid")  # additionalProperties: false


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


class Progress(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    epochsDone: int
    totalEpoch: int
    percent: float
    checkpointEpoch: int | None


class MetricStats(TypedDict):
    """One metric's min / max / last value with their epochs."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    min: MetricValue
    minEpoch: int | None
    max: MetricValue
    maxEpoch: int | None
    last: MetricValue
    lastEpoch: int | None


#: {split (train, val, test): {metric: stats}} for the splits that have rows.
MetricSummary = dict[str, dict[str, MetricStats]]


class ModelSummary(TypedDict):
    """A model as the list shows it (user document §2.1), with live progress and the
    commands the state rules accept now."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
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
    allowedCommands: list[CommandName]
    # On GET /api/models/{uuid}, and on list items with withSummary=true.
    metricSummary: NotRequired[MetricSummary]


class Job(TypedDict):
    """One attempt of a step: a TRAIN (step1) or EVAL (step2) job."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    id: int
    attempt: int
    jobType: JobTypeCd
    statusCd: JobStatusCd
    statusName: str
    exitCode: int | None
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


class ResourceRequests(TypedDict, total=False):
    """What the model's jobs ask of a node (absent: no limit)."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    gpus: int
    memory_mb: int
    cpus: float


class ModelDetail(ModelSummary):
    """One model with its jobs (oldest first)."""

    params: dict[str, Any]
    image: str
    dataset: str | None
    resources: ResourceRequests
    createdDttm: Dttm
    checkpointEpochs: list[int]
    jobs: list[Job]


class CommandAnswer(ModelSummary):
    """The model after an accepted command, and the job it queued (null when none)."""

    job: Job | None


class SyncReport(TypedDict):
    """What asking the owning node to reconcile did."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    requested: bool
    reason: NotRequired[str]
    node: NotRequired[str]
    jobId: NotRequired[int]
    answered: NotRequired[bool]
    result: NotRequired[Any]


class SyncAnswer(ModelSummary):
    sync: SyncReport


class ModelPage(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    content: list[ModelSummary]
    totalElements: int
    totalPages: int


class SplitCount(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    total: int
    labels: dict[str, int]


class SplitCounts(TypedDict):
    """Samples per split (train, val, test) and per label."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    source: Literal["created", "planned"]
    total: int
    splits: dict[str, SplitCount]


class CreatedSplits(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    splitDir: str
    total: int
    splits: dict[str, SplitCount]


class Chart(TypedDict):
    """A split's metric curve; long series are thinned (first, last and best epoch kept)."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    split: Literal["train", "val"]
    columns: list[str]
    points: list[MetricRow]
    total: int
    downsampled: bool
    method: Literal["none", "minmax-buckets", "stride"]
    bestEpoch: int | None


class MetricsOverview(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    bestEpoch: int | None
    bestEpochFinal: bool
    bestMetric: str
    bestMode: str
    splits: MetricSummary


class TestRows(TypedDict):
    """test.csv rows of every EVAL job: {jobId, epoch, step, <metric>…}."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    __test__ = False  # not a pytest test class, whatever its name
    columns: list[str]
    rows: list[MetricRow]


class LogAnswer(TypedDict):
    """A job's stored log tail; a model without jobs has only the first four keys."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    jobId: int | None
    logTail: str | None
    available: bool
    note: str | None
    attempt: NotRequired[int]
    jobType: NotRequired[JobTypeCd]
    statusCd: NotRequired[JobStatusCd]
    statusName: NotRequired[str]
    exitCode: NotRequired[int | None]
    oomKilled: NotRequired[bool | None]
    errorMessage: NotRequired[str | None]
    finishedDttm: NotRequired[Dttm]
    running: NotRequired[bool]


class Results(TypedDict):
    """The latest successful test: summary.json and test.csv, as the job wrote them."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
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


class DependencyCheck(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    ok: bool
    dialect: NotRequired[str]
    error: NotRequired[str]


class Health(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    status: Literal["ok", "degraded"]
    database: DependencyCheck
    broker: DependencyCheck


DataT = TypeVar("DataT")


class Ok(TypedDict, Generic[DataT]):
    """The envelope of every answer that succeeded (SPEC §7)."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    success: Literal[True]
    data: DataT


class HealthAnswer(TypedDict):
    """success is false (HTTP 503) when a dependency is down."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    success: bool
    data: Health


class ErrorDetail(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    code: str
    message: str


class Error(TypedDict):
    """The envelope of every error: the code names the rule, the message the field."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    success: Literal[False]
    error: ErrorDetail
