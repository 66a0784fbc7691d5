"""Webhooks through real worker processes: a receiver that is down while a model runs gets
every transition of the run once it is back, each event signed and under one id."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.integration.helpers import create_model
from tests.integration.receiver import Receiver
from tests.workers.conftest import wait_for_status, wait_until

SECRET = "whsec-workers"


def test_a_receiver_down_during_a_run_gets_every_transition_after_it_comes_back(
    client: FlaskClient, workers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver(up=False)  # its port refuses connections until up()
    try:
        # The API (this process) and the worker read the same deployment settings.
        for name, value in {
            "WEBHOOK_URLS": receiver.url,
            "WEBHOOK_SECRET": SECRET,
            "WEBHOOK_BACKOFF_S": "0.2",
            "WEBHOOK_BACKOFF_MAX_S": "1",
            "WEBHOOK_MAX_ATTEMPTS": "1000",
        }.items():
            monkeypatch.setenv(name, value)
        workers("node-a", WORKER_RUNTIME="process", PROCESS_STATE_DIR=str(tmp_path / "p"))
        uid = create_model(client, params={"total_epoch": 2, "epoch_seconds": 0.5})["uuid"]
        assert client.post(f"/api/train/run/{uid}").status_code == 200
        # Every status write went through while the receiver was down.
        wait_for_status(client, uid, "statusCd", "COMPLETED", 60)
        assert receiver.answered() == []

        receiver.up()

        def delivered() -> bool:
            page = client.get(f"/api/webhooks/deliveries?modelUuid={uid}").get_json()["data"]
            return bool(page["content"]) and all(
                d["status"] == "DELIVERED" for d in page["content"]
            )

        wait_until(delivered, 30, "every delivery DELIVERED")
        got = receiver.answered()
        assert all(r.signed_by(SECRET) for r in got)
        by_id = {r.event_id: r.event for r in got}
        for r in got:  # a repeat (at least once) is the same event under the same id
            assert r.event == by_id[r.event_id] and r.event["id"] == r.event_id
        events = sorted(by_id.values(), key=lambda e: e["sequence"])

        models = [e["model"]["status"] for e in events]
        assert models[0] == {"old": "READY", "new": "IN_PROGRESS"}
        assert models[-1] == {"old": "IN_PROGRESS", "new": "COMPLETED"}
        jobs = [e["job"]["status"] for e in events]
        assert jobs[0] == {"old": None, "new": "QUEUED"} and jobs[-1]["new"] == "SUCCESS"
        # No transition missing, none twice: each event starts where the one before ended.
        for before, after in pairwise(events):
            assert after["model"]["status"]["old"] == before["model"]["status"]["new"]
            assert after["job"]["status"]["old"] == before["job"]["status"]["new"]
            assert after["job"]["status"]["old"] != after["job"]["status"]["new"]
        assert len(events) <= 3  # run (QUEUED), started (RUNNING, when seen), succeeded
        print(f"{len(got)} requests for {len(events)} events: {[j['new'] for j in jobs]}")
    finally:
        receiver.close()
