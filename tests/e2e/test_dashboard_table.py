"""The dashboard's table without containers: 1,000 models, filters and pages, polling only while
something runs, the §8 error messages, a refused command's message, Flower and the token.

States are put straight into the database here (as a finished worker would leave them)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import insert, update

from app.db.models import Model, Node
from app.domain.timefmt import utcnow
from tests.e2e.conftest import buttons, row

BADGE = ".cell-status .badge"

# (status, step1, step2) of the models the 1,000 cycle through
_STATES = [
    ("READY", "READY", "READY"),
    ("IN_PROGRESS", "IN_PROGRESS", "READY"),
    ("COMPLETED", "COMPLETED", "READY"),
    ("COMPLETED", "COMPLETED", "COMPLETED"),
    ("STOPPED", "STOPPED", "READY"),
    ("ERROR", "ERROR", "READY"),
]


def _insert_models(db, count: int, states: list[tuple[str, str, str]]) -> None:
    rows = []
    for i in range(count):
        status, step1, step2 = states[i % len(states)]
        rows.append(
            {
                "uuid": uuid.uuid4(),
                "model_no": f"G{i % 4 + 1}",
                "model_ver": f"v1.{i // 100}.{i % 100}",
                "train_type": "GENERAL",
                "memo": f"대량 모델 {i}",
                "params": {"total_epoch": 10, "val_interval": 2},
                "image": "trainyard/trainer:latest",
                "resources": {},
                "status_cd": status,
                "step1_state": step1,
                "step2_state": step2,
                "epochs_done": 4 if step1 != "READY" else None,
                "checkpoint_epoch": 4 if step1 != "READY" else None,
                "best_epoch": 8 if step1 == "COMPLETED" else None,
            }
        )
    with db.begin() as session:
        session.execute(insert(Model), rows)


def _force(db, uid: str, **values: Any) -> None:
    with db.begin() as session:
        session.execute(update(Model).where(Model.uuid == uuid.UUID(uid)).values(**values))


def _list_requests(requests: list[str]) -> list[str]:
    return [u for u in requests if "/api/models/list" in u]


def test_a_thousand_models_pages_filters_and_no_per_row_requests(
    page, live_server, db, shot
) -> None:
    idle = [s for s in _STATES if s[0] != "IN_PROGRESS"]
    _insert_models(db, 1000, idle)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/" in r.url else None)

    started = time.monotonic()
    page.goto("/")
    expect(page.locator("#total-count")).to_have_text("총 1,000개 모델")
    assert time.monotonic() - started < 10
    expect(page.locator("tbody[data-uuid]")).to_have_count(20)
    expect(page.locator("#pager button[data-page='49']")).to_have_text("50")
    # One list request for the page, none per row (the metric names, once per page load).
    per_row = [u for u in requests if "/api/models/" in u and "/list" not in u]
    assert [u for u in per_row if not u.endswith("/api/models/metric-names")] == []
    assert len(_list_requests(requests)) == 1

    page.locator("#pager button[data-page='49']").click()
    expect(page.locator("#pager button[aria-current=page]")).to_have_text("50")
    expect(page.locator("tbody[data-uuid]")).to_have_count(20)
    assert "page=49" in page.url

    page.locator("#filter-status").select_option("ERROR")
    expect(page.locator("#total-count")).to_have_text("총 200개 모델")
    expect(page.locator(f"tbody[data-uuid] {BADGE}").first).to_have_text("❌ 오류")
    assert set(page.locator(f"tbody[data-uuid] {BADGE}").all_inner_texts()) == {"❌ 오류"}
    page.locator("#filter-model-no").select_option("G3")
    expect(page.locator("#total-count")).to_have_text("총 50개 모델")
    cells = page.locator("tbody[data-uuid] a.model-link").all_inner_texts()
    assert set(cells) == {"G3"} and len(cells) == 20
    page.locator("#page-size").select_option("100")
    expect(page.locator("tbody[data-uuid]")).to_have_count(50)
    expect(page.locator("#pager button")).to_have_count(0)
    shot(page, "14-filter-error-g3", full_page=False)

    # Reloading keeps the filters (they live in the address).
    page.reload()
    expect(page.locator("#filter-status")).to_have_value("ERROR")
    expect(page.locator("#total-count")).to_have_text("총 50개 모델")
    # Times are written in DISPLAY_TZ, and the columns say so.
    expect(page.locator("thead .tz")).to_have_text(["(Asia/Seoul)", "(Asia/Seoul)"])

    # A filter nothing matches offers to clear the filters, not to create a model.
    page.locator("#filter-status").select_option("IN_PROGRESS")
    expect(page.locator("#empty-text")).to_have_text("필터에 맞는 모델이 없습니다.")
    page.locator("#clear-filters").click()
    expect(page.locator("#total-count")).to_have_text("총 1,000개 모델")
    expect(page.locator("#filter-model-no")).to_have_value("")
    expect(page.locator("#empty")).to_be_hidden()

    # Nothing is IN_PROGRESS: no polling at all.
    before = len(_list_requests(requests))
    page.wait_for_timeout(7000)
    assert len(_list_requests(requests)) == before
    expect(page.locator("#live-indicator")).to_be_hidden()


def test_polls_while_something_runs_and_stops_after(page, live_server, db, shot) -> None:
    a = live_server.create_model(modelNo="G1", params={"total_epoch": 10, "val_interval": 2})
    b = live_server.create_model(modelNo="G2")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/" in r.url else None)
    page.goto("/")
    expect(page.locator("tbody[data-uuid]")).to_have_count(2)

    _force(db, a["uuid"], status_cd="IN_PROGRESS", step1_state="IN_PROGRESS", epochs_done=3)
    page.click("#refresh-btn")
    expect(row(page, a["uuid"]).locator("progress")).to_have_attribute("data-done", "3")
    expect(page.locator("#live-indicator")).to_be_visible()
    start = len(_list_requests(requests))
    _force(db, a["uuid"], epochs_done=7, checkpoint_epoch=6)
    expect(row(page, a["uuid"]).locator("progress")).to_have_attribute("data-done", "7")
    expect(row(page, a["uuid"]).locator(".progress-text")).to_have_text(
        "7 / 10 에폭 · 70% · 체크포인트 E6"
    )
    page.wait_for_timeout(7000)
    polled = len(_list_requests(requests)) - start
    assert 2 <= polled <= 5, f"{polled} list requests in ~7 s (want every 3 s)"

    # The other row was not re-rendered by the polls (a click on it is never lost).
    handle = row(page, b["uuid"]).element_handle()
    page.wait_for_timeout(3500)
    assert handle.evaluate("el => el.isConnected")

    _force(db, a["uuid"], status_cd="STOPPED", step1_state="STOPPED", last_error="CANCELED_BY_USER")
    expect(row(page, a["uuid"]).locator(BADGE)).to_have_text("⚠️ 중단됨", timeout=10_000)
    expect(page.locator("#live-indicator")).to_be_hidden(timeout=15_000)
    settled = len(_list_requests(requests))
    page.wait_for_timeout(6500)
    assert len(_list_requests(requests)) == settled


def test_section_8_error_messages_and_the_buttons_they_leave(page, live_server, db, shot) -> None:
    cases = {
        "canceled": (
            {"status_cd": "STOPPED", "step1_state": "STOPPED", "checkpoint_epoch": 4},
            "CANCELED_BY_USER",
            "⚠️ 사용자가 취소함 — [재실행] 또는 [이어하기]",
            ["🔄 재실행", "▶️ 이어하기"],
        ),
        "canceled-no-checkpoint": (
            {"status_cd": "STOPPED", "step1_state": "STOPPED", "checkpoint_epoch": None},
            "CANCELED_BY_USER",
            "⚠️ 사용자가 취소함 — [재실행]",
            ["🔄 재실행"],
        ),
        "server-restart": (
            {"status_cd": "STOPPED", "step1_state": "STOPPED", "checkpoint_epoch": 2},
            "SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE: val.csv-lines-mismatch",
            "서버 재시작으로 인한 중단 — [이어하기] 또는 [재실행]",
            ["🔄 재실행", "▶️ 이어하기"],
        ),
        "exit": (
            {"status_cd": "ERROR", "step1_state": "ERROR"},
            "CONTAINER_EXIT_3",
            "학습 코드 오류 (종료 코드 3) — [재실행]",
            ["🔄 재실행"],
        ),
        "oom": (
            {"status_cd": "ERROR", "step1_state": "ERROR"},
            "OOM_KILLED",
            "메모리 부족 (OOM) — [재실행]",
            ["🔄 재실행"],
        ),
        "incomplete": (
            {"status_cd": "ERROR", "step1_state": "ERROR"},
            "OUTPUT_INCOMPLETE: val.csv-missing",
            "검증 파일 없음 — [재실행]",
            ["🔄 재실행"],
        ),
        "completion-failed": (
            {"status_cd": "ERROR", "step1_state": "ERROR"},
            "COMPLETION_FAILED: LockNotAvailable: canceling statement due to lock timeout",
            "학습 결과 처리 실패 — [재실행]",
            ["🔄 재실행"],
        ),
        "launch-failed": (
            {"status_cd": "ERROR", "step1_state": "ERROR"},
            "LAUNCH_FAILED: ConnectionError: Connection refused",
            "학습 시작 실패 — [재실행]",
            ["🔄 재실행"],
        ),
        # Launches that ran no container (issue 11 item 2): never a training-code error, and
        # no restart that would fail the same way (allowedCommands).
        "image-missing": (
            {"status_cd": "ERROR", "step1_state": "ERROR", "image": "me/gone:1"},
            "IMAGE_NOT_FOUND: image 'me/gone:1' is not on node e2e-node",
            "학습 이미지 없음 — 관리자에게 이미지를 노드에 빌드하거나 불러와",
            [],
        ),
        "settings-refused": (
            {"status_cd": "ERROR", "step1_state": "ERROR"},
            "INVALID_RUNTIME_SETTINGS: the engine refused the container's settings: cpus",
            "실행 설정 오류 — 노드가 받아들이는 설정으로 새 모델을 등록하세요",
            [],
        ),
        "dataset-missing": (
            {"status_cd": "ERROR", "step1_state": "ERROR"},
            "DATASET_NOT_FOUND: dataset 'd1' is not under DATASET_ROOT on node e2e-node",
            "데이터셋 없음 — 데이터셋을 DATASET_ROOT에 다시 넣은 뒤 [재실행]",
            ["🔄 재실행"],
        ),
        # The node ended these (stallTimeoutS, JOB_SCRATCH_MAX_MB) as FAILED: the model is
        # ERROR, so restart is the way on; the row names the checkpoint that is kept.
        "stalled": (
            {"status_cd": "ERROR", "step1_state": "ERROR"},
            "STALLED: no log output and no progress for 600 s",
            "학습 멈춤 감지 (STALLED) — [재실행]",
            ["🔄 재실행"],
        ),
        "scratch-full": (
            {"status_cd": "ERROR", "step1_state": "ERROR", "checkpoint_epoch": 2},
            "SCRATCH_LIMIT_EXCEEDED: /scratch holds 2100 MB, over JOB_SCRATCH_MAX_MB=2048",
            "스크래치 용량 초과 — [재실행]",
            ["🔄 재실행"],
        ),
        "unknown-code": (
            {"status_cd": "ERROR", "step1_state": "ERROR"},
            "SOME_FUTURE_CODE: detail",
            "오류 발생 — [재실행]",
            ["🔄 재실행"],
        ),
        "csv": (
            {"status_cd": "ERROR", "step1_state": "ERROR"},
            "OUTPUT_INCOMPLETE: metrics-parse-error: train.csv line 4: 'abc' is not a number",
            "메트릭 CSV 형식 오류 — [재실행]",
            ["🔄 재실행"],
        ),
        "test-failed": (
            {
                "status_cd": "COMPLETED",
                "step1_state": "COMPLETED",
                "step2_state": "ERROR",
                "checkpoint_epoch": 10,
                "best_epoch": 8,
            },
            "CONTAINER_EXIT_2",
            "테스트 코드 오류 (종료 코드 2) — [테스트 재실행]",
            ["🧪 테스트 재실행"],
        ),
    }
    uids = {}
    for i, (name, (values, error, _, _)) in enumerate(cases.items()):
        model = live_server.create_model(modelNo=f"G{i % 4 + 1}", modelVer=f"v0.{i}", memo=name)
        _force(db, model["uuid"], last_error=error, epochs_done=3, **values)
        uids[name] = model["uuid"]
    now = utcnow()  # a live node that has every image but "me/gone:1"
    with db.begin() as session:
        session.add(Node(name="e2e-node", started_dttm=now, last_seen_dttm=now,
                         images=["trainyard/trainer:latest"]))  # fmt: skip
    page.goto("/")
    for name, (_, _error, text, expected_buttons) in cases.items():
        box = row(page, uids[name]).locator("[data-error]")
        expect(box).to_contain_text(text)
        assert buttons(page, uids[name]) == expected_buttons, name
    expect(row(page, uids["server-restart"]).locator("[data-error]")).to_contain_text(
        "검증 데이터 부족"
    )
    expect(row(page, uids["csv"]).locator("[data-error]")).to_contain_text("train.csv line 4")
    expect(row(page, uids["oom"]).locator("[data-error]")).to_contain_text("batch size")
    expect(row(page, uids["completion-failed"]).locator("[data-error]")).to_contain_text(
        "마지막 오류: LockNotAvailable"
    )
    expect(row(page, uids["unknown-code"]).locator("[data-error]")).to_contain_text(
        "SOME_FUTURE_CODE: detail"
    )
    # A launch that ran no container, a stall and a full /scratch are never called a code
    # error (the title CONTAINER_EXIT_n gets); the launch codes say so in their text.
    for name in ("image-missing", "settings-refused", "dataset-missing", "stalled", "scratch-full"):
        title = row(page, uids[name]).locator("[data-error] .err-title")
        expect(title).not_to_contain_text("코드 오류")
    expect(row(page, uids["exit"]).locator("[data-error] .err-title")).to_contain_text("코드 오류")
    expect(row(page, uids["image-missing"]).locator("[data-error]")).to_contain_text(
        "학습 코드 오류가 아닙니다"
    )
    for name in ("image-missing", "settings-refused", "dataset-missing"):
        expect(row(page, uids[name]).locator("[data-error] .err-text")).to_contain_text(
            "시작하지 못했습니다"
        )
    expect(row(page, uids["stalled"]).locator("[data-error]")).to_contain_text("stallTimeoutS")
    expect(row(page, uids["scratch-full"]).locator("[data-error]")).to_contain_text(
        "마지막 체크포인트: Epoch 2"
    )
    shot(page, "15-section-8-errors")


def test_refused_command_shows_the_api_message(page, live_server, db, shot) -> None:
    model = live_server.create_model(modelNo="G2", modelVer="v2.2.2")
    uid = model["uuid"]
    page.goto("/")
    assert buttons(page, uid) == ["🚀 학습 실행"]
    # Someone else moves the model on; this page has not seen it yet.
    _force(db, uid, status_cd="ERROR", step1_state="ERROR", last_error="OOM_KILLED")
    posts: list[Any] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    page.get_by_role("button", name="🚀 학습 실행").click()
    banner = page.locator("#banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("학습 실행 실패 — 현재 상태에서는 할 수 없는 작업입니다")
    expect(banner).to_contain_text("Can't run when the model is ERROR")
    # The list was refreshed: the row shows the real state and its buttons.
    expect(row(page, uid).locator(BADGE)).to_have_text("❌ 오류")
    assert buttons(page, uid) == ["🔄 재실행"]
    assert posts and posts[0].headers.get("idempotency-key")
    # A command has no body, and is JSON all the same: the API refuses other writes (415).
    assert posts[0].headers.get("content-type") == "application/json"
    shot(page, "16-refused-command")


def test_flower_link_and_token(page, live_server, db, monkeypatch) -> None:
    page.goto("/")
    expect(page.locator("#flower-link")).to_have_attribute("href", "http://127.0.0.1:5555")
    monkeypatch.setenv("FLOWER_URL", "https://flower.example.org/")
    page.reload()
    expect(page.locator("#flower-link")).to_have_attribute("href", "https://flower.example.org/")

    # With API_TOKEN set, a command without a token asks for one.
    runtime = live_server.app.extensions["trainyard"]
    model = live_server.create_model()
    runtime.settings = runtime.settings.with_overrides(api_token="s3cret")
    page.goto("/")
    page.get_by_role("button", name="🚀 학습 실행").click()
    expect(page.locator("#banner")).to_contain_text("API 토큰이 필요합니다")
    expect(page.locator("#token-dialog")).to_be_visible()
    page.fill("#token-input", "s3cret")
    page.locator("#token-form button[type=submit]").click()
    page.get_by_role("button", name="🚀 학습 실행").click()
    expect(row(page, model["uuid"]).locator(BADGE)).to_have_text("🔄 진행중")


def test_page_is_self_contained(live_server) -> None:
    response = live_server.http.get("/")
    assert response.status_code == 200
    html = response.text
    assert '<html lang="ko">' in html and "모델 번호" in html
    assert "default-src 'self'" in response.headers["content-security-policy"]
    for asset in ("common.js", "dashboard.js", "dashboard.css"):
        assert f"/static/{asset}?v=" in html
        assert live_server.http.get(f"/static/{asset}").status_code == 200
    # Nothing from another server: no CDN, no third-party code.
    assert 'src="http' not in html and 'href="http' not in html


def test_the_create_form_sets_a_priority_and_the_model_view_shows_it(page, live_server) -> None:
    page.goto("/")
    page.click("#create-btn")
    form = page.locator("#create-form")
    form.locator("[name=modelVer]").fill("v-urgent")
    form.locator("[name=priority]").fill("7")
    page.click("#create-submit")
    expect(page.locator("#create-dialog")).to_be_hidden()
    (model,) = live_server.api("GET", "/api/models/list")["content"]
    assert live_server.model(model["uuid"])["priority"] == 7
    page.goto(f"/#/models/{model['uuid']}")
    # The value leads the field (a bare "7" could be any digit of the hint after it).
    expect(page.locator("[data-priority]")).to_have_text(re.compile(r"^7\s"))
