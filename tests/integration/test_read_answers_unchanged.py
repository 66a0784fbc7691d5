"""The list and detail answer the very same bytes as recorded (issue 13, item 7: their read
path was rewritten for speed, and no client may see a difference).

One deterministic database — the API bench's seed (bench/api_bench.py: fixed uuids, times and
states) plus live nodes where some models' image is missing, waiting jobs with their queue
places, and metric series of every split — and a sample of list pages (filters, pages, sizes,
`withSummary`) and details, each body compared byte for byte with
`read_answers_golden.json`. Recorded from the code before the rewrite; when an answer changes
on purpose, record it again with `TRAINYARD_RECORD_GOLDEN=1` and review the diff.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from app.metrics import store
from app.metrics.csvfile import Header, Row
from bench.api_bench import seed
from tests.conftest import TEST_DATABASE_URL

GOLDEN = Path(__file__).with_name("read_answers_golden.json")
N_MODELS = 48
BASE = datetime(2025, 3, 1, tzinfo=UTC)


def _header(file: str, names: tuple[str, ...]) -> Header:
    return Header(
        file=file,
        width=len(names) + 1,
        epoch_at=0,
        step_at=None,
        metric_at=tuple(range(1, len(names) + 1)),
        metric_names=names,
        data_offset=0,
        complete=True,
    )


def _add_metrics(session: Session, model_id: int, job_id: int, eval_job: int | None) -> None:
    """train and val series (val with a NaN and an infinity: JSON's odd values), and a test
    series when the model has an EVAL job."""
    names = ("loss", "accuracy")
    for split, epochs in (("train", range(1, 11)), ("val", range(2, 11, 2))):
        rows = [
            Row(e, -1, (1.0 / e if e != 4 else float("nan"), e / 10 if e != 6 else float("inf")), e)
            for e in epochs
        ]
        store.write_series(session, split, model_id, job_id, _header(f"{split}.csv", names), 0)
        store.write_rows(session, split, _header(f"{split}.csv", names), rows, model_id, job_id)
    if eval_job is not None:
        header = _header("test.csv", ("accuracy",))
        store.write_series(session, "test", model_id, eval_job, header, 0)
        store.write_rows(session, "test", header, [Row(10, -1, (0.93,), 2)], model_id, eval_job)


def _seed(engine: Engine, sessions: sessionmaker[Session]) -> None:
    seed(TEST_DATABASE_URL, N_MODELS, 20250101)
    with engine.begin() as conn:
        now = datetime.now(UTC)  # only liveness reads it; no answer shows it
        conn.execute(
            text(
                "insert into tb_node (name, started_dttm, last_seen_dttm, images) values "
                "('node-a', :now, :now, '[\"trainyard/trainer:latest\"]'), "
                "('node-b', :now, :now, '[\"other:1\"]'), "
                "('node-lost', :old, :old, null)"
            ),
            {"now": now, "old": now - timedelta(days=1)},
        )
        # Every seventh model asks for an image no live node has (allowedCommands shrink).
        conn.execute(text("update tb_model_master set image = 'absent/img:2' where id % 7 = 0"))
        # Five READY models wait in the launch queue, in priority then time order.
        ready = conn.execute(
            text(
                "select id from tb_model_master where step1_state = 'READY' "
                "and step2_state = 'READY' order by id limit 5"
            )
        ).scalars()
        for place, model_id in enumerate(ready):
            job_id = conn.execute(
                text(
                    "insert into tb_model_train_job (model_id, job_type, attempt, status_cd, "
                    "params, image, resources, priority, queued_dttm) values (:m, 'TRAIN', 1, "
                    "'QUEUED', '{\"total_epoch\": 10, \"val_interval\": 2}', "
                    "'trainyard/trainer:latest', '{}', :p, :q) returning id"
                ),
                {"m": model_id, "p": place % 2, "q": BASE + timedelta(minutes=place)},
            ).scalar_one()
            conn.execute(
                text(
                    "update tb_model_master set step1_state = 'IN_PROGRESS', "
                    "status_cd = 'IN_PROGRESS', current_attempt_id = :j where id = :m"
                ),
                {"j": job_id, "m": model_id},
            )
        completed = conn.execute(
            text(
                "select m.id, min(j.id) filter (where j.job_type = 'TRAIN'), "
                "max(j.id) filter (where j.job_type = 'EVAL') from tb_model_master m "
                "join tb_model_train_job j on j.model_id = m.id "
                "where m.step1_state = 'COMPLETED' group by m.id order by m.id desc limit 6"
            )
        ).all()
    with sessions() as session, session.begin():
        for model_id, train_job, eval_job in completed:
            _add_metrics(session, model_id, train_job, eval_job)


def _requests(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        # Every other model: all states, waiting, missing images and metrics among them.
        uuids = conn.execute(
            text("select uuid::text from tb_model_master where id % 2 = 0 order by id")
        ).scalars()
        details = [f"/api/models/{u}" for u in uuids]
    lists = [
        "/api/models/list",
        "/api/models/list?status=&page=0&size=20",
        "/api/models/list?page=4&size=10",
        "/api/models/list?page=9&size=20",  # past the end
        "/api/models/list?size=7&page=3",
        "/api/models/list?status=READY",
        "/api/models/list?status=COMPLETED&size=5",
        "/api/models/list?status=IN_PROGRESS",
        "/api/models/list?status=STOPPED",
        "/api/models/list?status=ERROR",
        "/api/models/list?modelNo=G2&size=10",
        "/api/models/list?status=COMPLETED&modelNo=G1",
        "/api/models/list?withSummary=true&status=COMPLETED&size=10",
        "/api/models/list?status=NOPE",  # 400
    ]
    missing = [
        "/api/models/00000000-0000-4000-8000-000000000000",  # 404
        "/api/models/not-a-uuid",  # 400
    ]
    return lists + details + missing


def test_list_and_detail_answer_the_recorded_bytes(
    client: FlaskClient, pg_engine: Engine, db: sessionmaker[Session]
) -> None:
    _seed(pg_engine, db)
    answers = {}
    for path in _requests(pg_engine):
        response = client.get(path)
        answers[path] = {"status": response.status_code, "body": response.get_data(as_text=True)}
    if os.environ.get("TRAINYARD_RECORD_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n")
    recorded = json.loads(GOLDEN.read_text())
    assert list(answers) == list(recorded)
    for path, answer in answers.items():
        assert answer == recorded[path], path


def test_stored_json_numbers_come_back_exact(client: FlaskClient) -> None:
    """The driver reads JSON columns with orjson where that gives what `json` gives
    (app/db/session.py): an integer past 64 bits, which orjson would read as a float, and a
    float of 17 significant digits still come back as they were sent."""
    params = {"total_epoch": 4, "val_interval": 2, "seed": 2**70 + 1, "lr": 0.30000000000000004}
    created = client.post(
        "/api/models",
        json={"modelNo": "G1", "modelVer": "v1", "trainType": "GENERAL", "params": params},
    )
    assert created.status_code == 201, created.get_json()
    detail = client.get(f"/api/models/{created.get_json()['data']['uuid']}")
    assert detail.status_code == 200, detail.get_json()
    assert b'"seed":1180591620717411303425' in detail.data
    shown = detail.get_json()["data"]["params"]  # with the defaults the API filled in
    assert {key: shown[key] for key in params} == params
    assert isinstance(shown["seed"], int)
