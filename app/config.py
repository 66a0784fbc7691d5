"""Settings, read once from the environment (every variable is listed in README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

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
    # What the API accepts and where it may listen (docs/security.md).
    max_body_bytes: int  # a request body larger than this is a 413
    max_params_bytes: int  # a model's params larger than this, as JSON, are a 400
    allow_insecure_no_token: bool  # serve on a non-loopback address without API_TOKEN

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
        max_body_bytes=int(_env("API_MAX_BODY_BYTES", str(1024 * 1024))),
        max_params_bytes=int(_env("API_MAX_PARAMS_BYTES", str(64 * 1024))),
        allow_insecure_no_token=_env("ALLOW_INSECURE_NO_TOKEN", "0") == "1",
    )
