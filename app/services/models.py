"""Creating a model (POST /api/models): the checks that need the settings, and the row."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.datasets import dataset_exists
from app.db.models import Model
from app.db.session import transaction
from app.domain.retry import InvalidRetryPolicy, parse_retry_policy
from app.services.images import missing_image
from app.services.status_writes import lock_model


class InvalidField(ValueError):
    """A field the body's schema accepted that this installation cannot take; the message
    names the field."""


class ImageNotFound(ValueError):
    """No live node has the model's image (app/services/images.py); the message names it."""


def create_model(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    model_no: str,
    model_ver: str,
    train_type: str,
    memo: str | None,
    params: dict[str, Any],
    image: str | None,
    dataset: str | None,
    resources: dict[str, Any],
    stall_timeout_s: int | None = None,
    priority: int = 0,
    retry_policy: dict[str, Any] | None = None,
    uses_dataset: bool = True,
    shm_size_mb: int | None = None,
    env: dict[str, str] | None = None,
    network: bool = False,
    webhook_url: str | None = None,
    webhook_format: str = "json",
) -> Model:
    """Insert a READY model and return it, every column loaded (the API serializes it after
    the commit)."""
    if dataset and not dataset_exists(settings.dataset_root, dataset):
        raise InvalidField(f"dataset: no dataset '{dataset}' under DATASET_ROOT.")
    _require_params_fit(params, settings.max_params_bytes)
    image = image or settings.default_image
    with transaction(factory) as session:
        missing = missing_image(session, image)
        if missing is not None:
            raise ImageNotFound(f"image: {missing}")
        model = Model(
            model_no=model_no,
            model_ver=model_ver,
            train_type=train_type,
            memo=memo,
            params=params,
            image=image,
            dataset=dataset,
            resources=resources,
            stall_timeout_s=stall_timeout_s,
            priority=priority,
            retry_policy=_valid_retry_policy(retry_policy),
            uses_dataset=uses_dataset,
            shm_size_mb=shm_size_mb,
            env=dict(env or {}),
            network=network,
            webhook_url=webhook_url,
            webhook_format=webhook_format if webhook_url else None,
        )
        session.add(model)
        session.flush()
        session.refresh(model)  # the server's defaults (created_dttm, …), read in this commit
    return model


def set_retry_policy(
    factory: sessionmaker[Session], model_uuid: uuid.UUID, policy: dict[str, Any] | None
) -> bool:
    """Replace a model's retry policy (None: none). Not a status: the model row is locked
    only so that an ending being judged now reads the old policy or the new one, whole.
    False when there is no such model."""
    stored = _valid_retry_policy(policy)
    with transaction(factory) as session:
        model = lock_model(session, model_uuid)
        if model is None:
            return False
        model.retry_policy = stored
    return True


def _valid_retry_policy(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """As stored: the domain's reading of it (duplicates once), or None for no policy."""
    try:
        policy = parse_retry_policy(raw)
    except InvalidRetryPolicy as exc:
        raise InvalidField(str(exc)) from None
    return policy.as_json() if policy is not None else None


def _require_params_fit(params: dict[str, Any], limit: int) -> None:
    """Params travel with every job (database row, queue message, trainer argv): keep them
    small whatever the body limit is."""
    size = len(json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode())
    if size > limit:
        raise InvalidField(
            f"params: {size} bytes as JSON, more than the {limit} allowed (API_MAX_PARAMS_BYTES)."
        )
