"""GET /api/nodes, drain / undrain through the API and `trainyard drain`, and the per-node
gauges of /metrics (issue 14, item 4), on real PostgreSQL and Redis. The node is this test's
own claims (workers/launcher.claim_job, the worker's code), without a worker process; the
whole stack with worker processes is tests/workers/test_nodes.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from pydantic import TypeAdapter
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app import cli
from app.api import responses as r
from app.config import Settings
from app.db.models import Job, Node
from app.domain.timefmt import utcnow
from tests.conftest import TEST_DATABASE_URL
from tests.integration.helpers import create_model, process_node
from workers.context import WorkerContext
from workers.heartbeat import beat
from workers.launcher import Claim, claim_job

NODE = "gpu-node"


@pytest.fixture
def gpu_node(settings: Settings, db: sessionmaker[Session], tmp_path: Path):  # type: ignore[no-untyped-def]
    """A node that lends GPUs 0 and 1 (NODE_GPUS="0,1"), registered by its heartbeat."""
    ctx = process_node(
        settings, db, tmp_path, NODE, gpu_ids=(0, 1), max_jobs=4, default_memory_mb=1024
    )
    beat(ctx, started=True)
    yield ctx
    ctx.engine.dispose()


def _run_gpu_model(client: FlaskClient) -> tuple[str, int]:
    uid = create_model(client, resources={"gpus": 1})["uuid"]
    job = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]
    return uid, job["id"]


def _node(client: FlaskClient, name: str = NODE) -> dict:  # type: ignore[type-arg]
    response = client.get(f"/api/nodes/{name}")
    assert response.status_code == 200, response.get_json()
    return TypeAdapter(r.Ok[r.NodeInfo]).validate_python(response.get_json(), strict=True)["data"]


def test_the_api_shows_each_gpu_held_by_its_job(
    client: FlaskClient, gpu_node: WorkerContext
) -> None:
    uid, job_id = _run_gpu_model(client)
    claim = claim_job(gpu_node, job_id)
    assert isinstance(claim, Claim) and claim.gpu_ids == (0,)

    listing = client.get("/api/nodes")
    assert listing.status_code == 200
    data = TypeAdapter(r.Ok[r.NodeList]).validate_python(listing.get_json(), strict=True)["data"]
    assert [n["name"] for n in data["nodes"]] == [NODE]
    node = data["nodes"][0]
    assert node["state"] == "alive" and node["runtime"] == "ProcessRuntime"
    assert node["gpus"] == [
        {"gpuId": 0, "jobId": job_id, "modelUuid": uid, "modelNo": "G1", "modelVer": "v1.0.0"},
        {"gpuId": 1, "jobId": None, "modelUuid": None, "modelNo": None, "modelVer": None},
    ]
    assert (node["gpusLeased"], node["gpusFree"]) == (1, 1)
    assert [(j["jobId"], j["modelUuid"], j["gpuIds"]) for j in node["jobs"]] == [
        (job_id, uid, [0])
    ]
    assert node["capacity"] == {"maxJobs": 4, "memoryMb": 64_000, "jobsHeld": 1}
    assert node["drain"] == {
        "draining": False,
        "requestedDttm": None,
        "requestedBy": None,
        "flagFile": False,
    }
    # The model's own job agrees with the node's view.
    assert client.get(f"/api/models/{uid}").get_json()["data"]["jobs"][0]["gpuIds"] == [0]


def test_a_silent_node_is_lost(
    client: FlaskClient, gpu_node: WorkerContext, db: sessionmaker[Session], settings: Settings
) -> None:
    assert _node(client)["state"] == "alive"
    silent_for = timedelta(seconds=settings.node_lost_after_s + 5)
    with db.begin() as session:
        session.execute(update(Node).values(last_seen_dttm=utcnow() - silent_for))
    node = _node(client)
    assert node["state"] == "lost" and node["heartbeatAgeS"] >= settings.node_lost_after_s
    beat(gpu_node)
    assert _node(client)["state"] == "alive"


def test_drain_through_the_api_stops_new_claims_not_held_jobs(
    client: FlaskClient, gpu_node: WorkerContext, db: sessionmaker[Session]
) -> None:
    _, held = _run_gpu_model(client)
    assert isinstance(claim_job(gpu_node, held), Claim)
    _, waiting = _run_gpu_model(client)

    drained = client.post(f"/api/nodes/{NODE}/drain")
    assert drained.status_code == 200, drained.get_json()
    drain = drained.get_json()["data"]["drain"]
    assert drain["draining"] and drain["requestedBy"] == "api" and drain["requestedDttm"]

    assert claim_job(gpu_node, waiting) == (
        f"node {NODE} is draining: job {waiting} is left to other nodes"
    )
    with db() as session:
        job = session.get_one(Job, waiting)
        assert (job.status_cd, job.node) == ("QUEUED", None)
        # The job it already holds launches all the same (finish, don't take).
        assert isinstance(claim_job(gpu_node, held), Claim)

    again = client.post(f"/api/nodes/{NODE}/drain")  # idempotent: the first drain's time stays
    assert again.get_json()["data"]["drain"]["requestedDttm"] == drain["requestedDttm"]

    undrained = client.post(f"/api/nodes/{NODE}/undrain")
    assert undrained.status_code == 200
    assert undrained.get_json()["data"]["drain"]["draining"] is False
    claim = claim_job(gpu_node, waiting)
    assert isinstance(claim, Claim) and claim.gpu_ids == (1,)


def test_the_legacy_flag_file_still_drains_and_is_shown(
    client: FlaskClient, gpu_node: WorkerContext
) -> None:
    _, job_id = _run_gpu_model(client)
    gpu_node.node.drain_file.touch()
    beat(gpu_node)  # the heartbeat reports the flag file
    assert _node(client)["drain"] == {
        "draining": True,
        "requestedDttm": None,
        "requestedBy": None,
        "flagFile": True,
    }
    assert claim_job(gpu_node, job_id) == (
        f"node {NODE} is draining: job {job_id} is left to other nodes"
    )


def test_unknown_and_bad_node_names(client: FlaskClient, gpu_node: WorkerContext) -> None:
    for method, path in (
        ("GET", "/api/nodes/nope"),
        ("POST", "/api/nodes/nope/drain"),
        ("POST", "/api/nodes/nope/undrain"),
    ):
        answer = client.open(path, method=method)
        assert answer.status_code == 404, path
        assert answer.get_json()["error"]["code"] == "NODE_NOT_FOUND"
        assert "nope" in answer.get_json()["error"]["message"]
    too_long = client.post(f"/api/nodes/{'n' * 129}/drain")
    assert too_long.status_code == 400
    assert too_long.get_json()["error"]["code"] == "INVALID_NODE_NAME"
    assert client.get("/api/nodes/%01x").status_code == 400


def test_drain_needs_the_token_when_one_is_set(
    settings: Settings, db: sessionmaker[Session], broker, gpu_node: WorkerContext
) -> None:
    from app.factory import create_app
    from tests.conftest import JsonWritesClient

    app = create_app(settings.with_overrides(api_token="s3cret"))
    app.test_client_class = JsonWritesClient
    try:
        http = app.test_client()
        assert http.post(f"/api/nodes/{NODE}/drain").status_code == 401
        assert http.get("/api/nodes").status_code == 200  # reads stay open
        ok = http.post(
            f"/api/nodes/{NODE}/drain", headers={"Authorization": "Bearer s3cret"}
        )
        assert ok.status_code == 200
    finally:
        app.extensions["trainyard"].dispose()


def test_the_operator_cli_drains_through_the_database(
    gpu_node: WorkerContext,
    db: sessionmaker[Session],
    client: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", TEST_DATABASE_URL)
    monkeypatch.setenv("TRAINYARD_HOME", str(tmp_path))
    monkeypatch.setenv("USER", "ops")
    assert cli.main(["drain", NODE]) == 0
    assert "is draining" in capsys.readouterr().out
    drain = _node(client)["drain"]
    assert drain["draining"] and drain["requestedBy"] == "cli:ops"
    assert not (tmp_path / f"drain-{NODE}").exists(), "no flag file: the database holds it"

    (tmp_path / f"drain-{NODE}").touch()  # an old flag file where the command runs
    assert cli.main(["undrain", NODE]) == 0
    assert not (tmp_path / f"drain-{NODE}").exists()
    with db() as session:
        assert session.scalar(select(Node.drain_dttm).where(Node.name == NODE)) is None

    with pytest.raises(SystemExit, match="no node named 'ghost'"):
        cli.main(["drain", "ghost"])


def test_metrics_has_per_node_gauges(client: FlaskClient, gpu_node: WorkerContext) -> None:
    _, job_id = _run_gpu_model(client)
    assert isinstance(claim_job(gpu_node, job_id), Claim)
    client.post(f"/api/nodes/{NODE}/drain")
    text = client.get("/metrics").get_data(as_text=True)
    lines = set(text.splitlines())
    assert f'trainyard_node_up{{node="{NODE}"}} 1.0' in lines
    assert f'trainyard_node_gpus{{node="{NODE}",state="leased"}} 1.0' in lines
    assert f'trainyard_node_gpus{{node="{NODE}",state="free"}} 1.0' in lines
    assert f'trainyard_node_jobs_held{{node="{NODE}"}} 1.0' in lines
    # claimed, not yet started: no container runs
    assert f'trainyard_node_containers_running{{node="{NODE}"}} 0.0' in lines
    assert f'trainyard_node_draining{{node="{NODE}"}} 1.0' in lines
    age_series = f'trainyard_node_heartbeat_age_seconds{{node="{NODE}"}}'
    age = next(line for line in lines if line.startswith(age_series))
    assert 0 <= float(age.split()[-1]) < 60
