"""Request schemas (validated with pydantic) and the JSON shapes the API answers with."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from app.domain import sandbox
from app.domain.job_params import RESERVED_PARAMS
from app.domain.retry import MAX_RETRIES, cause_problem
from app.domain.states import MODEL_NUMBERS, ModelStatus, TrainType
from app.domain.webhooks import FORMATS as WEBHOOK_FORMATS
from app.domain.webhooks import url_problem

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class _Strict(BaseModel):
    """Wrong JSON types are errors (no silent "3" → 3), and unknown fields are typos."""

    model_config = ConfigDict(
        strict=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class SplitRatios(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    train: Annotated[float, Field(ge=0, le=1)] = 0.8
    val: Annotated[float, Field(ge=0, le=1)] = 0.1
    test: Annotated[float, Field(ge=0, le=1)] = 0.1

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitRatios:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError("train + val + test must sum to 1")
        return self


class TrainParams(BaseModel):
    """The hyper-parameters the platform reads; every other key is passed to the trainer."""

    model_config = ConfigDict(strict=True, extra="allow")
    total_epoch: Annotated[StrictInt, Field(ge=1, le=100_000)]
    val_interval: Annotated[StrictInt, Field(ge=1)] = 1
    seed: StrictInt = 0
    best_metric: Annotated[str, Field(min_length=1, max_length=64)] = "val_loss"
    best_mode: Literal["min", "max"] = "min"
    split: SplitRatios = Field(default_factory=SplitRatios)
    epoch_seconds: Annotated[float, Field(ge=0, le=86_400)] = 0
    fail_at_epoch: StrictInt | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_reserved_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            taken = sorted(RESERVED_PARAMS & data.keys())
            if taken:
                raise ValueError(
                    f"{', '.join(taken)}: set by the platform for each job, not by a caller"
                )
        return data

    @model_validator(mode="after")
    def _interval_fits(self) -> TrainParams:
        if self.val_interval > self.total_epoch:
            raise ValueError("val_interval must not exceed total_epoch")
        return self


class Resources(BaseModel):
    """Stored and answered as given here (`memory_mb`, as the answer's `resources` names it);
    `memoryMb` is accepted too."""

    model_config = ConfigDict(strict=True, extra="forbid")
    gpus: Annotated[StrictInt, Field(ge=0, le=16)] = 0
    memory_mb: Annotated[
        StrictInt | None,
        Field(
            ge=16,
            le=sandbox.MAX_SIZE_MB,
            validation_alias=AliasChoices("memory_mb", "memoryMb"),
        ),
    ] = None
    cpus: Annotated[float, Field(gt=0, le=256)] | None = None


# Launch priority: higher launches first, first in first out within one (docs/workers.md).
PRIORITY_RANGE = Field(ge=-1000, le=1000)


def _retry_cause(value: str) -> str:
    problem = cause_problem(value)
    if problem is not None:
        raise PydanticCustomError("retry_cause", problem)
    return value


class RetryPolicyBody(BaseModel):
    """Automatic retry, opt-in (docs/retry.md): up to `max` new attempts of the training
    after it ends for one of the causes in `on`; each resumes from the latest checkpoint."""

    model_config = ConfigDict(strict=True, extra="forbid")
    max: Annotated[StrictInt, Field(ge=0, le=MAX_RETRIES, description="retries after the first")]
    on: Annotated[
        list[Annotated[str, AfterValidator(_retry_cause)]],
        Field(
            max_length=32,
            description="causes: NODE_LOST, SERVER_RESTART, OOM, STALLED, EXIT:<1..255>",
            examples=[["NODE_LOST", "EXIT:3"]],
        ),
    ]


class CreateModel(_Strict):
    model_no: Literal[MODEL_NUMBERS]  # type: ignore[valid-type]
    model_ver: Annotated[str, Field(min_length=1, max_length=64)]
    train_type: TrainType = TrainType.GENERAL
    memo: Annotated[str, Field(max_length=2000)] | None = None
    params: TrainParams
    image: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    # Absent: the node's default dataset (the demo). null: none at all, for an image that
    # brings its own data (nothing mounted, no split lists, no --dataset-dir).
    dataset: str | None = Field(
        None,
        description="a folder under DATASET_ROOT; absent: the node's default (demo); "
        "null: no dataset (nothing mounted, no --dataset-dir)",
    )
    resources: Resources = Field(default_factory=Resources)
    # stallTimeoutS: no log output and no progress.json change for this many seconds → the
    # job ends STALLED. null: the node's DEFAULT_STALL_TIMEOUT_S; 0: never (30 days at most).
    stall_timeout_s: Annotated[StrictInt, Field(ge=0, le=2_592_000)] | None = None
    priority: Annotated[StrictInt, PRIORITY_RANGE] = 0
    # null or absent: never retried automatically (the seed's behaviour).
    retry: RetryPolicyBody | None = None
    # The container's runtime (app/domain/sandbox.py, trainer/README.md "Sandbox").
    shm_size_mb: Annotated[
        StrictInt | None,
        Field(
            ge=16,
            le=sandbox.MAX_SIZE_MB,
            description="/dev/shm in MB; absent: half the memory limit, at least "
            f"{sandbox.SHM_FLOOR_MB}, at most the memory limit",
        ),
    ] = None
    env: dict[str, str] = Field(
        default_factory=dict,
        description=f"environment variables for the trainer (at most {sandbox.ENV_MAX_VARS}); "
        "names the platform sets (HOME, USER, LOGNAME, TMPDIR, CUDA_VISIBLE_DEVICES, "
        "TRAINYARD_*, NVIDIA_*) are refused",
    )
    network: bool = Field(
        False,
        description="true: Docker's bridge network (only where JOB_NETWORK_ALLOWED=1); "
        "false: none",
    )
    webhook_url: str | None = Field(
        None,
        description="an http(s) URL that gets a signed event on every status change of this "
        "model, besides the deployment's WEBHOOK_URLS (docs/webhooks.md); shown back only as "
        "scheme and host",
    )
    webhook_format: Literal[WEBHOOK_FORMATS] = Field(  # type: ignore[valid-type]
        "json", description='"json": the event itself; "slack": {"text": …} for Slack'
    )

    @property
    def uses_dataset(self) -> bool:
        """False only for an explicit `"dataset": null`."""
        return self.dataset is not None or "dataset" not in self.model_fields_set

    @field_validator("env")
    @classmethod
    def _env_is_the_users(cls, value: dict[str, str]) -> dict[str, str]:
        # PydanticCustomError: the message as written, without pydantic's "Value error, ".
        if len(value) > sandbox.ENV_MAX_VARS:
            raise PydanticCustomError(
                "env", f"at most {sandbox.ENV_MAX_VARS} variables, got {len(value)}"
            )
        for name, text in value.items():
            if not sandbox.ENV_NAME_RE.match(name):
                raise PydanticCustomError(
                    "env",
                    f"{name!r}: a variable name is letters, digits and _, not starting with a "
                    "digit (at most 128)",
                )
            if sandbox.reserved_env_name(name):
                reserved = sorted(sandbox.RESERVED_ENV_NAMES)
                reserved += [p + "*" for p in sandbox.RESERVED_ENV_PREFIXES]
                raise PydanticCustomError(
                    "env",
                    f"{name}: set by the platform for every job, not by a model "
                    f"(reserved: {', '.join(reserved)})",
                )
            if len(text) > sandbox.ENV_MAX_VALUE_CHARS:
                raise PydanticCustomError(
                    "env", f"{name}: value longer than {sandbox.ENV_MAX_VALUE_CHARS} characters"
                )
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url_is_http(cls, value: str | None) -> str | None:
        problem = url_problem(value) if value is not None else None
        if problem:
            raise PydanticCustomError("webhook_url", f"must be {problem}")
        return value

    @field_validator("dataset")
    @classmethod
    def _dataset_is_a_plain_name(cls, value: str | None) -> str | None:
        if value is not None and not _SAFE_NAME.match(value):
            raise ValueError("must be a folder name under DATASET_ROOT (letters, digits, . _ -)")
        return value


class RetryUpdate(_Strict):
    """POST /api/models/{uuid}/retry: the model's new retry policy (null: none)."""

    retry: RetryPolicyBody | None


class CommandOptions(_Strict):
    """The optional body of run, restart, resume and test run."""

    # This job's launch priority instead of the model's (e.g. an urgent test run).
    priority: Annotated[StrictInt, PRIORITY_RANGE] | None = None


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)
    status: ModelStatus | Literal[""] = ""
    model_no: Annotated[str, Field(max_length=16)] = ""
    page: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    size: Annotated[int, Field(ge=1, le=200)] = 20
    # Per-metric min / max / last of each listed model: a few lookups per model, so opt-in.
    with_summary: bool = False
    # docs/dashboard.md, "Sort, search and the metric column".
    q: Annotated[
        str, Field(max_length=100, description="modelVer or memo contains this (any case)")
    ] = ""
    sort: Annotated[
        str,
        Field(
            max_length=160,
            description="created (default), step1StrtDttm, step1EndDttm, step2StrtDttm, "
            "step2EndDttm, or best:[train.|val.]<metric>[:min|:max] (the metric's best value; "
            "min for names with loss/err, max otherwise, unless given)",
        ),
    ] = "created"
    dir: Annotated[
        Literal["asc", "desc", ""],
        Field(description="default: desc for times, best first for best:<metric>"),
    ] = ""
    metric: Annotated[
        str,
        Field(
            max_length=160,
            description="adds metricValue to each item: `best` (the model's own best_metric at "
            "its best epoch) or [train.|val.]<metric>[:min|:max] (that metric's best value)",
        ),
    ] = ""


class CompareQuery(BaseModel):
    """The query of GET /api/models/compare for the OpenAPI document (app/api/compare.py
    parses it by hand)."""

    uuids: Annotated[str, Field(description="1 to 12 comma-separated model uuids")]


class DeliveryQuery(BaseModel):
    """GET /api/webhooks/deliveries: newest first, optionally of one model or one status."""

    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)
    model_uuid: Annotated[
        str, Field(max_length=36, description="only this model's deliveries (a uuid)")
    ] = ""
    status: Literal["", "PENDING", "DELIVERED", "DEAD"] = Field(
        "", description="PENDING (tries left), DELIVERED (answered 2xx), DEAD (dead letter)"
    )
    page: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    size: Annotated[int, Field(ge=1, le=200)] = 20


class SeriesQuery(BaseModel):
    """The query of GET …/metrics for the OpenAPI document (app/api/metrics.py parses it by
    hand, with its own messages)."""

    split: Literal["train", "val"] = "train"
    maxPoints: Annotated[int, Field(ge=10, le=100_000)] = 500
    metrics: Annotated[str, Field(description="comma-separated metric names (default: all)")] = ""


class JobQuery(BaseModel):
    """?jobId= alone (GET …/logs/download), for the OpenAPI document."""

    jobId: Annotated[int, Field(ge=0, description="one of the model's jobs (default: current)")]


class LogQuery(JobQuery):
    """The query of GET …/logs for the OpenAPI document (parsed in app/api/results.py);
    every query parameter is documented as optional."""

    offset: Annotated[
        int,
        Field(
            ge=0,
            description="the whole stored log from this byte offset on: a JSON chunk "
            "(LogChunk), or with follow=1 where the stream starts (Last-Event-ID wins)",
        ),
    ]
    follow: Annotated[
        Literal["1", "0"],
        Field(
            description="1: a text/event-stream of the log, one event per line (`id:` the "
            "byte offset after it, `data:` the line), `event: end` when the container ended; "
            "each stream lasts at most LOG_FOLLOW_MAX_S, resume with Last-Event-ID"
        ),
    ]


def describe_validation_error(exc: Any) -> str:
    """`params.total_epoch: Input should be a valid integer` — the field named first."""
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
        parts.append(f"{location}: {error['msg']}" if location else error["msg"])
    return "; ".join(parts)
