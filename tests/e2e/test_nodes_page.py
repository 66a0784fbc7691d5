"""The dashboard's nodes page (/nodes) with a real worker: each GPU shows the job holding it,
and the drain button drains the node through the API (issue 14, item 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import LiveServer
from tests.workers.conftest import wait_until


def test_the_nodes_page_shows_gpu_holders_and_drains(
    page: Any, live_server: LiveServer, workers: Any, tmp_path: Path, shot: Any
) -> None:
    workers(
        "gpu-e2e",
        WORKER_RUNTIME="process",
        NODE_GPUS="0,1",
        PROCESS_STATE_DIR=str(tmp_path / "proc"),
    )
    model = live_server.create_model(
        # Long enough to outlast a slow browser start: canceled at the end.
        params={"total_epoch": 600, "val_interval": 2, "epoch_seconds": 0.5},
        resources={"gpus": 1},
    )
    uid = model["uuid"]
    live_server.api("POST", f"/api/train/run/{uid}")
    job = wait_until(
        lambda: (j := live_server.model(uid)["jobs"][0])["statusCd"] == "RUNNING" and j,
        60,
        "the GPU job running",
    )
    gpu = job["gpuIds"][0]
    free = 1 - gpu

    page.goto("/")
    page.click("#nodes-link")
    card = page.locator('[data-node="gpu-e2e"]')
    expect(card.locator("[data-state]")).to_have_text("정상")
    expect(card.locator(f'tr[data-gpu="{gpu}"] [data-holder]')).to_contain_text(
        f"작업 #{job['id']}"
    )
    expect(card.locator(f'tr[data-gpu="{gpu}"] a')).to_have_attribute("href", f"/#/models/{uid}")
    expect(card.locator(f'tr[data-gpu="{free}"] [data-holder]')).to_have_text("비어 있음")
    expect(card.locator(f'tr[data-job="{job["id"]}"]')).to_contain_text("실행중")
    shot(page, "nodes-01-gpu-held")

    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="⏸️ 드레인").click()
    expect(card.locator("[data-drain]")).to_have_text("드레인 중")
    assert live_server.api("GET", "/api/nodes/gpu-e2e")["drain"]["draining"] is True
    expect(card.get_by_role("button", name="▶️ 드레인 해제")).to_be_visible()
    shot(page, "nodes-02-draining")

    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="▶️ 드레인 해제").click()
    expect(card.locator("[data-drain]")).to_have_count(0)
    assert live_server.api("GET", "/api/nodes/gpu-e2e")["drain"]["draining"] is False
    live_server.api("POST", f"/api/train/cancel/{uid}")
