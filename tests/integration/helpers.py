"""Small helpers for integration tests: create models, read queue messages from Redis."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import Model, Node
from app.db.session import transaction
from app.domain.timefmt import utcnow
from app.services.queries import installation_id
from workers.context import WorkerContext, build_context
from workers.runtime.process import ProcessRuntime
from workers.settings import NodeSettings

CAPACITY_NODE = "cap-node"  # the node of the `node_ctx` fixture (tests/integration/conftest.py)


def process_node(
    settings: Settings, db: sessionmaker[Session], tmp_path: Path, name: str, **node: Any
) -> WorkerContext:
    """A node without a worker process: the process runtime under tmp_path/p, this database's
    installation, plenty of memory; `node` overrides its NodeSettings (max_jobs, gpu_ids, …).
    Dispose of its engine when done."""
    fields: dict[str, Any] = {
        "node": name,
        "state_dir": tmp_path / "p",
        "drain_file": tmp_path / f"drain-{name}",
        "memory_mb": 64_000,
        **node,
    }
    with db() as session:
        installation = installation_id(session)
    runtime = ProcessRuntime(tmp_path / "p", name, installation=installation)
    return build_context(settings, replace(NodeSettings.from_env(), **fields), runtime)


def documented_path(rule: str) -> str:
    """A Flask route as the OpenAPI document writes it: `<model_uuid>` is `{uuid}`, any other
    `<name>` is `{name}`."""
    return re.sub(r"<(\w+)>", r"{\1}", rule.replace("<model_uuid>", "{uuid}"))


def create_model(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "modelNo": "G1",
        "modelVer": "v1.0.0",
        "trainType": "GENERAL",
        "memo": "테스트 학습",
        "params": {"total_epoch": 4, "val_interval": 2},
    }
    body.update(overrides)
    response = client.post("/api/models", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def queued_tasks(broker: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The Celery messages waiting on a queue (a Redis list), oldest first, decoded."""
    tasks = []
    for raw in reversed(broker.lrange(queue, 0, -1)):
        message = json.loads(raw)
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        tasks.append(
            {
                "task": message["headers"]["task"],
                "id": message["headers"]["id"],
                "args": args,
                "kwargs": kwargs,
            }
        )
    return tasks


def force_states(db: sessionmaker[Session], model_id: int, **values: Any) -> None:
    """Put a model into a state directly: a test fixture, standing in for a finished worker."""
    with db.begin() as session:
        session.execute(update(Model).where(Model.id == model_id).values(**values))


def sse_events(response: Any) -> Iterator[dict[str, str]]:
    """The stream's events as they come: {id, event, data}; comments as {comment}."""
    buffer = b""
    for piece in response.response:
        buffer += piece if isinstance(piece, bytes) else piece.encode()
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            event: dict[str, str] = {}
            for line in block.decode().split("\n"):
                field, _, value = line.partition(":")
                if field == "":
                    event.setdefault("comment", value.strip())
                else:
                    event[field] = value[1:] if value.startswith(" ") else value
            yield event


def sse_lines(events: Iterator[dict[str, str]], count: int) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []
    for event in events:
        if "data" in event and "event" not in event:
            got.append(event)
            if len(got) == count:
                return got
    raise AssertionError(f"the stream ended after {len(got)} of {count} lines")


def beat(db: sessionmaker[Session], name: str, images: list[str] | None, age_s: float = 0) -> None:
    """A node's heartbeat row as workers/heartbeat.py writes it, `age_s` seconds old."""
    seen = utcnow() - timedelta(seconds=age_s)
    with transaction(db) as session:
        session.merge(Node(name=name, started_dttm=seen, last_seen_dttm=seen, images=images))
