"""The model view's log while a job runs: shown live (EventSource on …/logs?follow=1), with a
download link; once the container ended, the stored tail (issue 11, item 4)."""

from __future__ import annotations

from playwright.sync_api import expect


def test_the_log_is_shown_live_while_the_job_runs(page, live_server, node, shot) -> None:
    model = live_server.create_model(
        modelNo="G2",
        modelVer="v-live",
        params={"total_epoch": 8, "val_interval": 2, "epoch_seconds": 1},
        stallTimeoutS=600,
    )
    uid = model["uuid"]
    live_server.api("POST", f"/api/train/run/{uid}")
    # Every EventSource the page opens, to see that none is left open (init scripts are not
    # subject to the page's CSP).
    page.add_init_script(
        "window.__streams = []; window.EventSource = class extends window.EventSource {"
        " constructor(...a) { super(...a); window.__streams.push(this); } };"
    )
    page.goto(f"/#/models/{uid}/logs")
    panel = page.locator("#panel")
    live = panel.locator("pre[data-log-live]")
    expect(live).to_contain_text("trainer: TRAIN epochs", timeout=60_000)
    expect(live).to_contain_text("epoch 2", timeout=30_000)
    assert live_server.model(uid)["statusCd"] == "IN_PROGRESS"  # seen while it runs
    link = panel.locator("a[data-log-download]")
    expect(link).to_have_attribute("href", f"/api/models/{uid}/logs/download?jobId="
                                   f"{live_server.model(uid)['currentAttemptId']}")
    expect(panel.locator("[data-sec=info]")).to_contain_text("600초")
    shot(page, "20-live-log", full_page=False)

    # Straight to another model's view (back/forward, an edited link): this stream is closed.
    other = live_server.create_model(modelNo="G3", modelVer="v-other")
    page.evaluate(f"location.hash = '#/models/{other['uuid']}'")
    expect(page.locator("#panel-title")).to_contain_text("v-other")
    open_streams = "() => window.__streams.filter((s) => s.readyState !== 2).length"  # 2: CLOSED
    assert page.evaluate("() => window.__streams.length") > 0
    # At once (the job still runs): no later `end` from the server may be what closes it.
    assert page.evaluate(open_streams) == 0
    page.evaluate(f"location.hash = '#/models/{uid}/logs'")

    live_server.wait_for(uid, "statusCd", "COMPLETED")
    expect(panel.locator("pre[data-log]")).to_contain_text("finished 8 epochs", timeout=30_000)
    expect(panel.locator("pre[data-log-live]")).to_have_count(0)
    text = live_server.http.get(link.get_attribute("href") or "").text
    assert "trainer: TRAIN epochs" in text and "finished 8 epochs" in text
