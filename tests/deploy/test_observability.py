"""Structured logs that carry the model and job, and the API's Prometheus `/metrics`."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.migrate import upgrade
from app.db.models import Job
from app.db.session import make_engine, make_session_factory
from app.factory import create_app
from app.observability import ContextFilter, JsonFormatter, TextFormatter, log_context
from tests.conftest import JsonWritesClient
from tests.integration.helpers import create_model

# --- logs ---------------------------------------------------------------------------------


def _logger(formatter: logging.Formatter, **static: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter(static))
    logger = logging.getLogger(f"test.observability.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_lines_carry_the_bound_model_and_job() -> None:
    logger, stream = _logger(JsonFormatter(), node="gpu-1")
    logger.info("outside")
    with log_context(model_uuid="m-1", job_id=7):
        logger.info("job %s started", 7)
        with log_context(job_id=8):
            logger.warning("nested")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    logger.info("explicit", extra={"job_id": 9})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "outside",
        "job 7 started",
        "nested",
        "failed",
        "explicit",
    ]
    assert all(line["node"] == "gpu-1" for line in lines)
    assert "model_uuid" not in lines[0] and "job_id" not in lines[0]
    assert (lines[1]["model_uuid"], lines[1]["job_id"], lines[1]["level"]) == ("m-1", 7, "INFO")
    assert (lines[2]["model_uuid"], lines[2]["job_id"]) == ("m-1", 8)
    assert lines[3]["exc"].startswith("Traceback") and "ValueError: boom" in lines[3]["exc"]
    assert lines[4]["job_id"] == 9 and "model_uuid" not in lines[4]
    assert datetime.fromisoformat(lines[0]["ts"]).tzinfo is not None


def test_text_lines_name_the_model_and_job() -> None:
    logger, stream = _logger(TextFormatter())
    with log_context(model_uuid="m-1", job_id=7):
        logger.info("hello")
    logger.info("plain")
    first, second = stream.getvalue().splitlines()
    assert first.endswith("hello [model_uuid=m-1 job_id=7]")
    assert second.endswith("plain")


def test_api_requests_about_a_model_log_its_uuid(
    settings: Settings, db, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)

    def probe(model_uuid: str) -> str:
        logging.getLogger("app.api.probe").info("probing")
        return "ok"

    app.add_url_rule("/api/models/<model_uuid>/probe", view_func=probe)
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_trainyard", False))
    caplog.handler.addFilter(next(f for f in handler.filters if isinstance(f, ContextFilter)))
    try:
        with caplog.at_level(logging.INFO, logger="app.api.probe"):
            app.test_client().get("/api/models/m-42/probe")
            logging.getLogger("app.api.probe").info("after the request")
    finally:
        app.extensions["trainyard"].dispose()
    during, after = [r for r in caplog.records if r.name == "app.api.probe"]
    assert during.model_uuid == "m-42"
    assert after.model_uuid is None  # unbound when the request ended


# --- /metrics -----------------------------------------------------------------------------


def _scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _finish(db: sessionmaker[Session], job_id: int) -> None:
    """Timestamps of a job that waited 3 s to start and took 0.5 s to be judged."""
    queued = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    with db.begin() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status_cd="SUCCESS",
                queued_dttm=queued,
                started_dttm=queued + timedelta(seconds=3),
                container_ended_dttm=queued + timedelta(seconds=60),
                finished_dttm=queued + timedelta(seconds=60.5),
            )
        )


def _check_metrics(client: FlaskClient, db: sessionmaker[Session]) -> None:
    first = create_model(client)
    second = create_model(client)
    job = client.post(f"/api/train/run/{first['uuid']}").get_json()["data"]["job"]
    client.post(f"/api/train/run/{second['uuid']}")

    samples = _scrape(client)
    assert _value(samples, "trainyard_up", component="database") == 1
    assert _value(samples, "trainyard_up", component="broker") == 1
    assert _value(samples, "trainyard_jobs", status="QUEUED") == 2
    assert _value(samples, "trainyard_jobs", status="SUCCESS") == 0
    assert _value(samples, "trainyard_models", status="IN_PROGRESS") == 2
    assert _value(samples, "trainyard_queue_depth", queue="launch.cpu") == 2
    assert _value(samples, "trainyard_queue_depth", queue="launch.gpu") == 0
    assert _value(samples, "trainyard_job_dispatch_seconds_count", type="TRAIN") == 0

    _finish(db, job["id"])
    samples = _scrape(client)
    assert _value(samples, "trainyard_jobs", status="QUEUED") == 1
    assert _value(samples, "trainyard_jobs", status="SUCCESS") == 1
    dispatch = "trainyard_job_dispatch_seconds"
    assert _value(samples, f"{dispatch}_bucket", type="TRAIN", le="2.5") == 0
    assert _value(samples, f"{dispatch}_bucket", type="TRAIN", le="5.0") == 1
    assert _value(samples, f"{dispatch}_bucket", type="TRAIN", le="+Inf") == 1
    assert _value(samples, f"{dispatch}_count", type="TRAIN") == 1
    assert _value(samples, f"{dispatch}_sum", type="TRAIN") == pytest.approx(3.0, abs=0.01)
    completion = "trainyard_job_completion_seconds"
    assert _value(samples, f"{completion}_bucket", type="TRAIN", le="0.25") == 0
    assert _value(samples, f"{completion}_bucket", type="TRAIN", le="0.5") == 1
    assert _value(samples, f"{completion}_sum", type="TRAIN") == pytest.approx(0.5, abs=0.01)
    assert _value(samples, f"{completion}_count", type="EVAL") == 0


def test_metrics_on_postgresql(client: FlaskClient, db: sessionmaker[Session]) -> None:
    _check_metrics(client, db)


def test_metrics_on_sqlite(settings: Settings, broker: redis.Redis, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trainyard.db'}"
    upgrade(url)
    app = create_app(settings.with_overrides(database_url=url))
    engine = make_engine(url)
    try:
        app.test_client_class = JsonWritesClient
        _check_metrics(app.test_client(), make_session_factory(engine))
    finally:
        engine.dispose()
        app.extensions["trainyard"].dispose()


def test_metrics_answer_while_the_broker_is_down(settings: Settings, db) -> None:
    app = create_app(settings.with_overrides(broker_url="redis://127.0.0.1:1/0"))
    try:
        samples = _scrape(app.test_client())
    finally:
        app.extensions["trainyard"].dispose()
    assert _value(samples, "trainyard_up", component="broker") == 0
    assert _value(samples, "trainyard_up", component="database") == 1
    assert _value(samples, "trainyard_jobs", status="QUEUED") == 0
