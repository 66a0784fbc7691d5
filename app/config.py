"""Settings, read once from the environment (every variable is listed in README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from app.jobfiles import Limits, MiB

DEFAULT_DATA_DIR = Path(os.environ.get("TRAINYARD_HOME", Path.cwd() / "var"))


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class Settings:
    database_url: str
    broker_url: str
    api_token: str | None
    display_tz: str
    output_root: Path
    dataset_root: Path
    default_image: str
    publish_timeout_s: float
    list_count_cache_s: float  # how long a list page's totalElements may be reused
    # Job outputs are hostile input (docs/security.md): the size cap of each kind of job file.
    job_file_limits: Limits = field(default_factory=Limits)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.display_tz)

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **overrides)


def load_settings() -> Settings:
    data_dir = DEFAULT_DATA_DIR
    return Settings(
        database_url=_env("DATABASE_URL", f"sqlite:///{data_dir / 'trainyard.db'}"),
        broker_url=_env("BROKER_URL", "redis://127.0.0.1:6379/0"),
        api_token=os.environ.get("API_TOKEN") or None,
        display_tz=_env("DISPLAY_TZ", "Asia/Seoul"),
        output_root=Path(_env("OUTPUT_ROOT", str(data_dir / "outputs"))),
        dataset_root=Path(_env("DATASET_ROOT", str(data_dir / "datasets"))),
        default_image=_env("TRAINER_IMAGE", "trainyard/trainer:latest"),
        publish_timeout_s=float(_env("PUBLISH_TIMEOUT_S", "2")),
        list_count_cache_s=float(_env("LIST_COUNT_CACHE_S", "1")),
        job_file_limits=Limits(
            metrics_csv=int(_env("JOB_FILE_MAX_CSV_MB", "2048")) * MiB,
            json=int(_env("JOB_FILE_MAX_JSON_MB", "5")) * MiB,
            split_list=int(_env("JOB_FILE_MAX_SPLIT_LIST_MB", "256")) * MiB,
            results_zip=int(_env("JOB_FILE_MAX_ZIP_MB", "8192")) * MiB,
        ),
    )
