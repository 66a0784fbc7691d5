"""A job's whole log over the API (app/api/logstream.py) on PostgreSQL: chunks by offset, the
live event stream with its resume and its end, the download, and what bad input gets.

The stored log is written here with app.joblogs, as the node's log collector writes it; the
end of the container is the job row's `container_ended_dttm`, as the node records it after
storing the rest of the log. tests/workers/test_live_logs.py runs the same against a real
container."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from app import jobfiles, joblogs
from app.config import Settings
from app.db.models import Job, Model
from app.db.session import transaction
from app.domain.timefmt import utcnow
from app.factory import create_app
from tests.conftest import JsonWritesClient
from tests.integration.helpers import create_model, sse_events, sse_lines
from tests.metrics.conftest import new_job


def _running_job(client: FlaskClient, db: sessionmaker[Session]) -> tuple[str, int]:
    model = create_model(client)
    with transaction(db) as session:
        job = new_job(session, session.get_one(Model, model["id"]), "TRAIN", "RUNNING")
        job.node = "node-a"
        session.flush()
        job_id = job.id
    return model["uuid"], job_id


def _print(settings: Settings, uid: str, job_id: int, data: bytes) -> None:
    joblogs.append(joblogs.log_dir(jobfiles.job_root(settings), uid, job_id), data)


def _container_ends(db: sessionmaker[Session], job_id: int) -> None:
    with transaction(db) as session:
        session.get_one(Job, job_id).container_ended_dttm = utcnow()


def test_a_chunk_by_offset_says_where_it_starts_and_when_it_is_complete(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    uid, job_id = _running_job(client, db)
    _print(settings, uid, job_id, b"epoch 1\nepoch 2\n")
    first = client.get(f"/api/models/{uid}/logs?offset=0").get_json()["data"]
    assert first == {
        "jobId": job_id, "text": "epoch 1\nepoch 2\n", "offset": 0, "nextOffset": 16,
        "complete": False,
    }  # fmt: skip
    _print(settings, uid, job_id, b"bad \xff\x00 bytes\n")
    _container_ends(db, job_id)
    rest = client.get(f"/api/models/{uid}/logs?offset=16&jobId={job_id}").get_json()["data"]
    assert rest["text"] == "bad \\xff\\x00 bytes\n"  # escaped, never raw
    assert (rest["offset"], rest["nextOffset"], rest["complete"]) == (16, 29, True)


def test_follow_streams_lines_resumes_after_the_last_id_and_ends(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    uid, job_id = _running_job(client, db)
    _print(settings, uid, job_id, b"line 1\nline 2\r\nline 3\n")
    response = client.get(f"/api/models/{uid}/logs?follow=1", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = sse_events(response)
    first = sse_lines(events, 2)
    assert [e["data"] for e in first] == ["line 1", "line 2"]
    assert [int(e["id"]) for e in first] == [7, 15]  # the byte offset just after each line
    response.close()  # the connection drops after line 2 (line 3 was never received)

    _print(settings, uid, job_id, b"line 4 \xff\npartial")
    again = client.get(
        f"/api/models/{uid}/logs?follow=1", headers={"Last-Event-ID": first[-1]["id"]},
        buffered=False,
    )  # fmt: skip
    events = sse_events(again)
    resumed = sse_lines(events, 2)
    assert [e["data"] for e in resumed] == ["line 3", "line 4 \\xff"]  # nothing lost or repeated
    _container_ends(db, job_id)  # the unfinished last line is sent once the container ended
    rest = list(events)
    again.close()
    assert [e["data"] for e in rest if "id" in e] == ["partial"]
    assert int([e for e in rest if "id" in e][-1]["id"]) == len(b"line 1\nline 2\r\nline 3\n"
                                                                 b"line 4 \xff\npartial")
    assert rest[-1].get("event") == "end"


def test_follow_resumes_from_an_offset_in_the_query(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    uid, job_id = _running_job(client, db)
    _print(settings, uid, job_id, b"a\nb\nc\n")
    _container_ends(db, job_id)
    with client.get(f"/api/models/{uid}/logs?follow=1&offset=2") as response:
        events = list(sse_events(response))
    assert [(e["id"], e["data"]) for e in events if "id" in e] == [("4", "b"), ("6", "c")]
    assert events[-1]["event"] == "end"


def test_a_stream_ends_after_its_bound_without_end_and_keeps_alive_while_idle(
    settings: Settings, db: sessionmaker[Session], broker: Any
) -> None:
    app = _app(settings.with_overrides(log_follow_max_s=1.6, log_follow_keepalive_s=0.5))
    client = app.test_client()
    uid, job_id = _running_job(client, db)
    _print(settings, uid, job_id, b"only line\n")
    with client.get(f"/api/models/{uid}/logs?follow=1") as response:
        events = list(sse_events(response))
    assert [e["data"] for e in events if "data" in e] == ["only line"], events
    assert any(e.get("comment") == "keep-alive" for e in events)
    assert not any(e.get("event") == "end" for e in events)  # the container still runs
    app.extensions["trainyard"].dispose()


def test_streams_per_process_are_bounded(
    settings: Settings, db: sessionmaker[Session], broker: Any
) -> None:
    app = _app(settings.with_overrides(log_follow_streams=1, log_follow_max_s=5))
    client = app.test_client()
    uid, _job_id = _running_job(client, db)
    held = client.get(f"/api/models/{uid}/logs?follow=1", buffered=False)
    refused = client.get(f"/api/models/{uid}/logs?follow=1", buffered=False)
    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "TOO_MANY_LOG_STREAMS"
    held.close()  # closed before its first event: the slot comes back all the same
    again = client.get(f"/api/models/{uid}/logs?follow=1", buffered=False)
    assert again.status_code == 200
    again.close()
    app.extensions["trainyard"].dispose()


def test_the_download_is_the_whole_stored_log_as_an_attachment(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    uid, job_id = _running_job(client, db)
    _print(settings, uid, job_id, "학습 시작\nNUL \x00 here\n".encode())
    response = client.get(f"/api/models/{uid}/logs/download")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["Content-Disposition"].endswith(f'_job_{job_id}.log"')
    assert response.get_data(as_text=True) == "학습 시작\nNUL \\x00 here\n"


def test_the_json_answer_names_the_stream_the_download_and_the_container_exit(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    uid, job_id = _running_job(client, db)
    with transaction(db) as session:
        job = session.get_one(Job, job_id)
        job.status_cd, job.exit_code, job.container_exit_code = "CANCELED", -1, 143
    data = client.get(f"/api/models/{uid}/logs").get_json()["data"]
    assert (data["exitCode"], data["containerExitCode"]) == (-1, 143)
    assert data["streamUrl"] == f"/api/models/{uid}/logs?follow=1&jobId={job_id}"
    assert data["downloadUrl"] == f"/api/models/{uid}/logs/download?jobId={job_id}"
    detail = client.get(f"/api/models/{uid}").get_json()["data"]
    assert detail["jobs"][-1]["containerExitCode"] == 143


@pytest.mark.parametrize(
    ("query", "headers", "named"),
    [
        ("offset=-1", {}, "offset"),
        ("offset=abc", {}, "offset"),
        ("follow=yes", {}, "follow"),
        ("follow=1", {"Last-Event-ID": "12x"}, "Last-Event-ID"),
    ],
)
def test_bad_log_queries_are_a_400_naming_the_parameter(
    client: FlaskClient, db: sessionmaker[Session], query: str, headers: dict[str, str],
    named: str,
) -> None:  # fmt: skip
    uid, _job_id = _running_job(client, db)
    response = client.get(f"/api/models/{uid}/logs?{query}", headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith(f"{named}:")


def test_a_model_without_jobs_has_no_log_to_follow_or_download(client: FlaskClient) -> None:
    uid = create_model(client)["uuid"]
    assert client.get(f"/api/models/{uid}/logs?follow=1").status_code == 404
    assert client.get(f"/api/models/{uid}/logs?offset=0").status_code == 404
    assert client.get(f"/api/models/{uid}/logs/download").status_code == 404
    assert client.get(f"/api/models/{uid}/logs").get_json()["data"]["jobId"] is None


def test_stall_timeout_is_taken_stored_and_answered(client: FlaskClient) -> None:
    model = create_model(client, stallTimeoutS=600)
    assert model["stallTimeoutS"] == 600
    assert create_model(client)["stallTimeoutS"] is None
    for wrong in (-1, "60", 2_592_001):
        response = client.post(
            "/api/models",
            json={"modelNo": "G1", "modelVer": "v1", "params": {"total_epoch": 1},
                  "stallTimeoutS": wrong},
        )  # fmt: skip
        assert response.status_code == 400
        assert "stallTimeoutS" in response.get_json()["error"]["message"]


def _app(settings: Settings) -> Flask:
    app = create_app(settings)
    app.test_client_class = JsonWritesClient
    return app
