"""The dashboard driving real training: a real API over HTTP, a real worker, real containers,
headless Chromium. Each test leaves screenshots in artifacts/screenshots/."""

from __future__ import annotations

import re
import time
import zipfile
from io import BytesIO

from playwright.sync_api import expect

from tests.e2e.conftest import buttons, row

BADGE = ".cell-status .badge"


def test_create_run_and_watch_progress_to_completed(page, live_server, node, shot) -> None:
    page.goto("/")
    expect(page.locator("#empty")).to_be_visible()

    # The form shows the API's 400 message, naming the field.
    page.click("#create-btn")
    form = page.locator("#create-form")
    form.locator("[name=modelNo]").select_option("G2")
    form.locator("[name=modelVer]").fill("v2.0.0")
    form.locator("[name=total_epoch]").fill("12")
    form.locator("[name=val_interval]").fill("20")
    form.locator("[name=epoch_seconds]").fill("0.8")
    form.locator("[name=memo]").fill("e2e 진행률 테스트")
    page.click("#create-submit")
    expect(page.locator("#create-error")).to_contain_text(
        "val_interval must not exceed total_epoch"
    )
    expect(page.locator("#create-error")).to_contain_text("params")
    expect(form.locator("[name=val_interval]")).to_have_class(re.compile("invalid"))
    shot(page, "01-create-form-400", full_page=False)

    form.locator("[name=val_interval]").fill("2")
    page.click("#create-submit")
    expect(page.locator("#create-dialog")).to_be_hidden()
    models = live_server.api("GET", "/api/models/list")["content"]
    assert len(models) == 1 and models[0]["modelNo"] == "G2"
    uid = models[0]["uuid"]

    expect(row(page, uid).locator(BADGE)).to_have_text("⏸️ 대기")
    assert buttons(page, uid) == ["🚀 학습 실행"]
    shot(page, "02-ready")

    row(page, uid).get_by_role("button", name="🚀 학습 실행").click()
    expect(row(page, uid).locator(BADGE)).to_have_text("🔄 진행중")
    assert buttons(page, uid) == ["⏹️ 학습 취소"]
    expect(page.locator("#live-indicator")).to_be_visible()

    # The bar is a real one: epochs done / total, moving while the job runs.
    bar = row(page, uid).locator("progress")
    seen: list[int] = []
    deadline = time.monotonic() + 90
    midway_shot = False
    while time.monotonic() < deadline:
        if row(page, uid).locator(BADGE).inner_text().strip() == "✅ 완료":
            break
        if bar.count():
            try:
                done = int(bar.get_attribute("data-done", timeout=1000) or 0)
                assert bar.get_attribute("data-total", timeout=1000) == "12"
            except Exception:  # the row was re-rendered between the two reads
                continue
            if not seen or seen[-1] != done:
                seen.append(done)
            if 0 < done < 12 and not midway_shot:
                shot(page, "03-in-progress-bar")
                midway_shot = True
        time.sleep(0.25)
    expect(row(page, uid).locator(BADGE)).to_have_text("✅ 완료")
    intermediate = [d for d in seen if 0 < d < 12]
    assert len(set(intermediate)) >= 2, f"the bar did not move: {seen}"
    assert seen == sorted(seen)

    assert buttons(page, uid) == ["🧪 테스트 실행"]
    expect(row(page, uid).locator(".cell-step1")).to_contain_text("Best Epoch")
    expect(row(page, uid).locator(".cell-step1")).to_contain_text("완료")
    expect(row(page, uid).locator("td.time").first).to_contain_text("~")
    # Nothing runs any more: the page stops polling.
    expect(page.locator("#live-indicator")).to_be_hidden(timeout=15_000)
    shot(page, "04-completed")


def test_cancel_with_confirmation_then_resume(page, live_server, node, shot) -> None:
    model = live_server.create_model(
        modelNo="G3",
        modelVer="v3.1.0",
        params={"total_epoch": 10, "val_interval": 2, "epoch_seconds": 0.7},
    )
    uid = model["uuid"]
    page.goto("/")
    requests: list = []
    page.on("request", lambda r: requests.append(r) if r.method == "POST" else None)
    row(page, uid).get_by_role("button", name="🚀 학습 실행").click()
    expect(row(page, uid).locator(BADGE)).to_have_text("🔄 진행중")
    run_request = next(r for r in requests if "/api/train/run/" in r.url)
    assert re.fullmatch(r"[0-9a-f-]{36}", run_request.headers["idempotency-key"])

    # Wait for a checkpoint, so there is something to resume from.
    expect(row(page, uid).locator(".progress-text")).to_contain_text("체크포인트", timeout=60_000)

    row(page, uid).get_by_role("button", name="⏹️ 학습 취소").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("학습을 취소하시겠습니까?")
    shot(page, "05-cancel-confirmation", full_page=False)
    dialog.get_by_role("button", name="학습 취소").click()

    expect(row(page, uid).locator(BADGE)).to_have_text("⚠️ 중단됨")
    expect(row(page, uid).locator("[data-error]")).to_contain_text(
        "사용자가 취소함 — [재실행] 또는 [이어하기]"
    )
    assert buttons(page, uid) == ["🔄 재실행", "▶️ 이어하기"]
    checkpoint = live_server.model(uid)["progress"]["checkpointEpoch"]
    assert checkpoint and checkpoint >= 2
    shot(page, "06-stopped-restart-resume")

    row(page, uid).get_by_role("button", name="▶️ 이어하기").click()
    expect(dialog).to_contain_text("중단된 지점부터 학습을 이어가시겠습니까?")
    expect(dialog).to_contain_text(re.compile(r"Epoch \d+ 체크포인트에서 Epoch \d+부터 계속합니다"))
    dialog.get_by_role("button", name="이어하기").click()
    expect(row(page, uid).locator(BADGE)).to_have_text("🔄 진행중")
    expect(row(page, uid).locator("[data-error]")).to_have_count(0)
    expect(row(page, uid).locator(BADGE)).to_have_text("✅ 완료", timeout=90_000)
    assert buttons(page, uid) == ["🧪 테스트 실행"]
    # 학습 시간 covers both attempts (docs/dashboard.md, "학습 시간 after a resume").
    trained = live_server.model(uid)
    assert trained["step1Attempts"] == 2
    assert trained["step1FirstStrtDttm"] < trained["step1StrtDttm"]
    expect(row(page, uid).locator("[data-attempts]")).to_have_text("시도 2회 합계 (멈춘 사이 제외)")

    # The model view lists both attempts, the newest (the resume) first.
    row(page, uid).locator("a.model-link").first.click()
    panel = page.locator("#panel")
    expect(panel).to_be_visible()
    jobs = panel.locator("table.jobs tbody tr")
    expect(jobs).to_have_count(2)
    resumed_from = live_server.model(uid)["jobs"][-1]["params"]["resume_from"]
    assert resumed_from >= checkpoint
    expect(jobs.nth(0)).to_contain_text(f"이어하기 E{resumed_from}~")
    expect(jobs.nth(0)).to_contain_text("성공")
    expect(jobs.nth(1)).to_contain_text("취소")
    assert page.url.endswith(f"#/models/{uid}")
    page.locator("#sec-jobs").scroll_into_view_if_needed()
    shot(page, "07-resumed-model-view-attempts", full_page=False)


def test_test_run_then_results_with_curves(page, live_server, node, shot) -> None:
    model = live_server.create_model(
        modelNo="G4",
        modelVer="v4.0.0",
        params={"total_epoch": 6, "val_interval": 2, "epoch_seconds": 0.2},
    )
    uid = model["uuid"]
    live_server.api("POST", f"/api/train/run/{uid}")
    trained = live_server.wait_for(uid, "statusCd", "COMPLETED")
    best = trained["bestEpoch"]
    assert best in trained["checkpointEpochs"]

    page.goto("/")
    assert buttons(page, uid) == ["🧪 테스트 실행"]
    row(page, uid).get_by_role("button", name="🧪 테스트 실행").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text(f"Epoch {best}으로 테스트를 실행하시겠습니까?")
    expect(page.locator("#test-epoch")).to_have_value(str(best))
    options = page.locator("#test-epoch option").all_inner_texts()
    assert len(options) == len(trained["checkpointEpochs"])
    shot(page, "08-test-confirmation", full_page=False)
    dialog.get_by_role("button", name="테스트 실행").click()

    expect(row(page, uid).locator(".cell-step2 .badge")).to_have_text("✅ 완료", timeout=90_000)
    expect(row(page, uid).locator(BADGE)).to_have_text("✅ 완료")
    assert buttons(page, uid) == ["🧪 테스트 재실행", "📊 결과 보기", "⬇️ 다운로드"]
    shot(page, "09-test-completed")

    row(page, uid).get_by_role("button", name="📊 결과 보기").click()
    panel = page.locator("#panel")
    expect(panel).to_be_visible()
    metrics = panel.locator("[data-test-metrics]")
    expect(metrics).to_contain_text("test_accuracy")
    expect(panel.locator("[data-test-csv]")).to_contain_text(str(best))
    expect(panel.locator("table.confusion")).to_be_visible()

    # Curves: train and val, the best epoch marked, and the summary table.
    charts = panel.locator(".chart")
    expect(charts.first).to_be_visible(timeout=20_000)
    expect(panel.locator('.chart[data-metric="loss"] path[data-series]')).to_have_count(2)
    # the val series is named by its column, not "val val_loss"
    legend = panel.locator('.chart[data-metric="loss"] .chart-legend > span')
    expect(legend).to_have_text(["train loss", "val_loss"])
    expect(panel.locator(f'.chart line.best-line[data-best-epoch="{best}"]').first).to_be_attached()
    expect(panel.locator(".chart .best-label").first).to_have_text(f"★ Best Epoch {best}")
    expect(panel.locator("[data-metric-summary]")).to_contain_text("val_loss")
    expect(panel.locator("[data-log]")).to_be_visible()
    page.locator("#sec-curves").scroll_into_view_if_needed()
    shot(page, "10-results-curves", full_page=False)
    page.locator("#sec-results").scroll_into_view_if_needed()
    shot(page, "11-results-test-metrics", full_page=False)

    with page.expect_download() as download_info:
        panel.locator("a[data-download]").first.click()
    download = download_info.value
    assert download.suggested_filename.endswith(f"_results_epoch_{best}.zip")
    data = live_server.http.get(f"/api/models/{uid}/results/download").content
    assert set(zipfile.ZipFile(BytesIO(data)).namelist()) >= {"test.csv", "summary.json"}


def test_failing_model_shows_its_error_and_restart_only(page, live_server, node, shot) -> None:
    model = live_server.create_model(
        modelNo="G1",
        modelVer="v9.9.9",
        memo="fail_at_epoch 3",
        params={"total_epoch": 6, "val_interval": 2, "epoch_seconds": 0.2, "fail_at_epoch": 3},
    )
    uid = model["uuid"]
    page.goto("/")
    row(page, uid).get_by_role("button", name="🚀 학습 실행").click()
    expect(row(page, uid).locator(BADGE)).to_have_text("❌ 오류", timeout=90_000)
    assert buttons(page, uid) == ["🔄 재실행"]
    error = row(page, uid).locator("[data-error]")
    expect(error).to_contain_text("학습 코드 오류 (종료 코드 3) — [재실행]")
    expect(error).to_contain_text("CONTAINER_EXIT_3")
    shot(page, "12-failed-model")

    error.get_by_role("link", name="로그 보기").click()
    panel = page.locator("#panel")
    expect(panel).to_be_visible()
    expect(panel.locator("[data-sec=error]")).to_contain_text("학습 코드 오류")
    expect(panel.locator("[data-log]")).to_contain_text("fail_at_epoch=3")
    expect(panel.locator("[data-error-log]")).to_contain_text("fail_at_epoch=3")
    expect(panel.locator("table.jobs tbody tr")).to_have_count(1)
    expect(panel.locator("table.jobs")).to_contain_text("실패")
    shot(page, "13-failed-model-view", full_page=False)

    # Restart from scratch (with a confirmation) works from here.
    panel.get_by_role("button", name="🔄 재실행").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text("처음부터 다시 학습을 시작하시겠습니까?")
    dialog.get_by_role("button", name="처음부터 재실행").click()
    expect(panel.locator("#panel-title .badge")).to_have_text("🔄 진행중")
