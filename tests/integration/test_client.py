"""The Python client (app/client.py) and the user commands of `trainyard` (app/usercli.py)
against the real API served over HTTP (an ephemeral port), on real PostgreSQL and Redis. No
worker runs here: states a worker would write are forced; the commands against a live worker
are tests/e2e/test_cli.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from app import cli
from app.client import ApiError, TrainyardClient, _events, load_config
from app.config import Settings
from app.db.models import Node
from app.domain.timefmt import utcnow
from app.factory import create_app
from tests.integration.helpers import force_states


def _serve(settings: Settings) -> Iterator[str]:
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        app.extensions["trainyard"].dispose()


@pytest.fixture
def url(settings: Settings, db: sessionmaker[Session], broker: Any) -> Iterator[str]:
    yield from _serve(settings)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting of the machine running the tests leaks in."""
    for name in ("TRAINYARD_URL", "TRAINYARD_TOKEN", "API_TOKEN", "TRAINYARD_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def _cli(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = cli.main([*args, "--url", url])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_client_creates_runs_and_reports_errors(url: str) -> None:
    with TrainyardClient(url) as api:
        model = api.create_model(
            {"modelNo": "G2", "modelVer": "v1", "params": {"total_epoch": 3}}
        )
        assert model["statusCd"] == "READY"
        listed = api.list_models(model_no="G2")
        assert [m["uuid"] for m in listed["content"]] == [model["uuid"]]
        ran = api.run(model["uuid"], idempotency_key="k-1")
        assert ran["job"] is not None and ran["job"]["statusCd"] == "QUEUED"
        assert api.run(model["uuid"], idempotency_key="k-1") == ran  # the first answer again
        with pytest.raises(ApiError) as refused:
            api.run(model["uuid"])
        assert refused.value.status == 409 and refused.value.message
        assert api.model(model["uuid"])["jobs"][0]["id"] == ran["job"]["id"]
        with pytest.raises(ApiError) as missing:
            api.model("00000000-0000-4000-8000-000000000000")
        assert missing.value.status == 404
        with pytest.raises(ApiError, match="INVALID_UUID"):
            api.model("not-a-uuid")
    with TrainyardClient("http://127.0.0.1:9") as nowhere, pytest.raises(ApiError) as down:
        nowhere.nodes()
    assert down.value.status == 0 and down.value.code == "UNREACHABLE"


def test_cli_models_and_commands(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(
        capsys, url, "models", "create", "--model-ver", "v7", "--epochs", "3",
        "--set", "lr=0.1", "--set", "optimizer=adam", "--memory-mb", "64", "--json",
    )
    assert code == 0
    model = json.loads(out)
    assert model["params"]["total_epoch"] == 3 and model["params"]["lr"] == 0.1
    assert model["params"]["optimizer"] == "adam" and model["resources"]["memory_mb"] == 64
    uid = model["uuid"]

    code, out, _ = _cli(capsys, url, "models", "list")
    assert code == 0 and uid in out and "1 model(s)" in out
    code, out, _ = _cli(capsys, url, "models", "list", "--search", "V7", "--sort", "best:val_loss")
    assert code == 0 and uid in out and "VAL_LOSS" in out  # no curves yet: "-"
    code, out, _ = _cli(capsys, url, "models", "list", "--search", "nothing-like-it")
    assert code == 0 and "0 model(s)" in out
    code, _, err = _cli(capsys, url, "models", "list", "--sort", "bogus")
    assert code == 3 and "400 INVALID_QUERY: sort" in err
    code, out, _ = _cli(capsys, url, "models", "show", uid)
    assert code == 0 and "READY" in out and "G1 v7" in out

    code, out, _ = _cli(capsys, url, "run", uid)
    assert code == 0 and out.startswith(f"run: model {uid} IN_PROGRESS, job 1 QUEUED")
    code, out, err = _cli(capsys, url, "run", uid)  # a 4xx: the API's message, exit 3
    assert code == 3 and out == ""
    assert err.startswith("error: 409 ") and len(err.strip()) > len("error: 409 X: ")
    code, _, err = _cli(capsys, url, "models", "show", "00000000-0000-4000-8000-000000000000")
    assert code == 3 and "404 MODEL_NOT_FOUND" in err

    code, out, _ = _cli(capsys, url, "cancel", uid, "--json")
    assert code == 0 and json.loads(out)["step1Status"] == "STOPPED"

    code, _, err = _cli(capsys, url, "models", "create", "--model-ver", "v1", "--epochs", "0")
    assert code == 3 and err.startswith("error: 400 ")


def test_cli_wait_exit_status(
    url: str, capsys: pytest.CaptureFixture[str], db: sessionmaker[Session]
) -> None:
    with TrainyardClient(url) as api:
        done, failed, running = (
            api.create_model({"modelNo": "G1", "modelVer": f"v{i}", "params": {"total_epoch": 1}})
            for i in range(3)
        )
    force_states(db, done["id"], status_cd="COMPLETED", step1_state="COMPLETED")
    force_states(
        db, failed["id"], status_cd="ERROR", step1_state="ERROR", last_error="CONTAINER_EXIT_3"
    )
    force_states(db, running["id"], status_cd="IN_PROGRESS", step1_state="IN_PROGRESS")

    code, out, _ = _cli(capsys, url, "wait", done["uuid"])
    assert (code, out.strip()) == (0, f"model {done['uuid']}: COMPLETED")
    code, out, _ = _cli(capsys, url, "wait", failed["uuid"])
    assert (code, out.strip()) == (1, f"model {failed['uuid']}: ERROR (CONTAINER_EXIT_3)")
    code, out, err = _cli(capsys, url, "wait", running["uuid"], "--timeout", "0.5",
                          "--interval", "0.1")
    assert code == 124 and "still IN_PROGRESS" in err
    # A trained model whose test failed: `wait --test` judges the test.
    force_states(db, done["id"], step2_state="ERROR")
    assert _cli(capsys, url, "wait", done["uuid"], "--test")[0] == 1
    assert _cli(capsys, url, "wait", done["uuid"])[0] == 0


def test_cli_logs_without_a_stream_falls_back_to_the_stored_tail(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with TrainyardClient(url) as api:
        uid = api.create_model({"modelNo": "G1", "modelVer": "v1", "params": {"total_epoch": 1}})[
            "uuid"
        ]
    code, out, err = _cli(capsys, url, "logs", uid)
    assert code == 0 and out == "" and err.strip()  # no job yet: the API's note
    code, out, _ = _cli(capsys, url, "logs", uid, "--json")
    assert code == 0 and json.loads(out)["available"] is False


def test_cli_nodes_and_drain_through_the_api(
    url: str, capsys: pytest.CaptureFixture[str], db: sessionmaker[Session]
) -> None:
    now = utcnow()
    with db.begin() as session:
        session.add(
            Node(name="n1", gpu_ids=[0, 1], runtime="DockerRuntime", started_dttm=now,
                 last_seen_dttm=now, max_jobs=2, memory_mb=8192)
        )
    code, out, _ = _cli(capsys, url, "nodes")
    assert code == 0 and "n1" in out and "alive" in out and "0:free 1:free" in out
    code, out, _ = _cli(capsys, url, "nodes", "drain", "n1")
    assert code == 0 and "node n1 is draining" in out
    code, out, _ = _cli(capsys, url, "nodes", "--json")
    assert json.loads(out)["nodes"][0]["drain"]["draining"] is True
    code, out, _ = _cli(capsys, url, "nodes", "undrain", "n1", "--json")
    assert code == 0 and json.loads(out)["drain"]["draining"] is False
    code, _, err = _cli(capsys, url, "nodes", "drain", "ghost")
    assert code == 3 and "404 NODE_NOT_FOUND" in err
    code, _, err = _cli(capsys, url, "nodes", "drain")
    assert code == 3 and "needs a node name" in err


def test_the_token_comes_from_the_environment_or_the_config_file(
    settings: Settings,
    db: sessionmaker[Session],
    broker: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for url in _serve(settings.with_overrides(api_token="t0ken")):
        body = ["models", "create", "--model-ver", "v1", "--epochs", "1"]
        code, _, err = _cli(capsys, url, *body)
        assert code == 3 and "401 UNAUTHORIZED" in err

        config = tmp_path / "config" / "trainyard" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f'url = "{url}"\ntoken = "t0ken"\n')
        assert load_config().url == url
        assert cli.main(body) == 0  # url and token from the file
        capsys.readouterr()

        config.write_text('token = "wrong"\n')
        monkeypatch.setenv("TRAINYARD_TOKEN", "t0ken")  # the environment wins over the file
        assert _cli(capsys, url, *body)[0] == 0

        config.write_text("token = \n")
        code, _, err = _cli(capsys, url, *body)
        assert code == 3 and "BAD_CONFIG" in err


def test_server_sent_events_are_parsed_as_the_logs_contract_says() -> None:
    stream = [
        ": keep-alive",
        "id: 12",
        "data: epoch 1 loss 0.9",
        "",
        "id: 30",
        "data: two",
        "data: lines",
        "",
        "event: end",
        "data: {}",
        "",
    ]
    events = list(_events(iter(stream)))
    assert [(e.name, e.id, e.data) for e in events] == [
        ("message", 12, "epoch 1 loss 0.9"),
        ("message", 30, "two\nlines"),
        ("end", None, "{}"),
    ]


def test_follow_resumes_after_a_dropped_stream_from_the_last_event_id() -> None:
    """The reconnect rule of the logs contract, against a scripted event stream (the live
    endpoint itself is tested with a worker where it is served)."""
    import httpx

    uid = "00000000-0000-4000-8000-000000000001"
    seen: list[dict[str, str | None]] = []
    answers = [
        "retry: 1000\n: job 1\n\nid: 6\ndata: one\n\nid: 12\ndata: two\n\n",  # no end: dropped
        "id: 20\ndata: three\n\nevent: end\ndata:\n\n",
    ]

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(
            {
                "path": request.url.path,
                "follow": request.url.params.get("follow"),
                "last": request.headers.get("Last-Event-ID"),
            }
        )
        body = answers[len(seen) - 1]
        return httpx.Response(200, text=body, headers={"Content-Type": "text/event-stream"})

    api = TrainyardClient("http://api.test", transport=httpx.MockTransport(serve))
    lines = [(line.offset, line.text) for line in api.follow_logs(uid)]
    assert lines == [(6, "one"), (12, "two"), (20, "three")]
    assert seen == [
        {"path": f"/api/models/{uid}/logs", "follow": "1", "last": None},
        {"path": f"/api/models/{uid}/logs", "follow": "1", "last": "12"},
    ]


def test_cli_retry_policy_on_create_and_later(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, url, "models", "create", "--model-ver", "r1", "--epochs", "3",
                          "--retry", "2:NODE_LOST,EXIT:137")  # fmt: skip
    assert code == 0, err
    uid = out.strip()
    with TrainyardClient(url) as api:
        assert api.model(uid)["retryPolicy"] == {"max": 2, "on": ["NODE_LOST", "EXIT:137"]}

    code, out, err = _cli(capsys, url, "retry", uid, "1:OOM")
    assert (code, out.strip()) == (0, f"{uid}: retried up to 1 time(s) on OOM"), err
    code, out, _ = _cli(capsys, url, "retry", uid, "off", "--json")
    assert code == 0 and json.loads(out)["retryPolicy"] is None

    # A malformed policy is refused before any request; an unknown cause by the API, named.
    code, _, err = _cli(capsys, url, "retry", uid, "three:OOM")
    assert code == 3 and "expected MAX:CAUSE" in err
    code, _, err = _cli(capsys, url, "retry", uid, "2:NODE_LOST,REBOOT")
    assert code == 3 and "retry.on.1" in err and "REBOOT" in err


def test_cli_lists_webhook_deliveries(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The model's own endpoint (nothing listens there; no worker delivers here): the run's
    # status change is recorded as a PENDING delivery, which the command lists.
    body = {"modelNo": "G1", "modelVer": "w1", "params": {"total_epoch": 2},
            "webhookUrl": "http://127.0.0.1:9/hook"}  # fmt: skip
    with TrainyardClient(url) as api:
        uid = api.create_model(body)["uuid"]
        api.run(uid)
    code, out, err = _cli(capsys, url, "webhooks", "--model", uid)
    assert code == 0, err
    header, row, *rest = out.splitlines()
    assert header.split()[:3] == ["ID", "MODEL", "JOB"]
    assert uid in row and "READY -> IN_PROGRESS" in row and "http://127.0.0.1:9" in row
    assert "PENDING" in row
    assert rest[-1] == "page 1 of 1; 1 in all"
    code, out, _ = _cli(capsys, url, "webhooks", "--status", "DEAD", "--json")
    assert code == 0 and json.loads(out)["content"] == []
