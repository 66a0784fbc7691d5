"""The dashboard says exactly what the status guide says (status-guide.ko.txt §7 and §8).

Table-driven: every §8 code, bare and behind both prefixes that carry it
(`OUTPUT_INCOMPLETE: <code>` from a container that exited 0, and
`SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE: <code>` from the restart sweep), renders the
guide's §8.2 title and message and §8.1's "프론트 표시" word for word. The expected words are
copied here from the guide (not from the page), so a drift on either side fails.
"""

from __future__ import annotations

from typing import NamedTuple

from playwright.sync_api import expect

from tests.e2e.conftest import row
from tests.e2e.test_dashboard_table import _force


class GuideWords(NamedTuple):
    icon: str
    severity: str  # the errbox's class: sev-warning / sev-error
    title: str
    message: str
    display: str  # §8.1 "프론트 표시"


SERVER_RESTART = "SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE"

# §8.1 (L684-694) and §8.2 (L698-716). A code §8.2 leaves out keeps §8.1's display as its title
# and its "의미" as its message, with the error severity (docs/dashboard.md).
GUIDE: dict[str, GuideWords] = {
    SERVER_RESTART: GuideWords(
        "⚠️",
        "warning",
        "서버 재시작으로 인한 중단",
        "서버가 재시작되면서 학습이 중단되었습니다. 산출물을 확인하여 학습 상태를 복구합니다.",
        "서버 재시작으로 인한 중단 - 산출물 확인 필요",
    ),
    "val.csv-lines-mismatch": GuideWords(
        "📊",
        "warning",
        "검증 데이터 부족",
        "검증 데이터 라인 수가 예상보다 적습니다. 학습이 완료되지 않았을 가능성이 있습니다.",
        "검증 데이터 부족 - 학습이 완료되지 않음",
    ),
    "val.csv-missing": GuideWords(
        "❌",
        "error",
        "검증 파일 없음",
        "val.csv 파일을 찾을 수 없습니다. 학습이 실패했을 가능성이 높습니다.",
        "검증 파일 없음 - 학습 실패",
    ),
    "total-epoch-missing": GuideWords(
        "❌", "error", "설정 오류", "paramsJson에 total_epoch 없음", "설정 오류 - 에폭 정보 없음"
    ),
    "output-dir-missing": GuideWords(
        "❌",
        "error",
        "산출물 디렉토리 없음",
        "산출물 디렉토리 없음",
        "산출물 디렉토리 없음 - 학습 실패",
    ),
}
REASONS = [code for code in GUIDE if code != SERVER_RESTART]

STOPPED = {"status_cd": "STOPPED", "step1_state": "STOPPED", "checkpoint_epoch": 2}
FAILED = {"status_cd": "ERROR", "step1_state": "ERROR"}


def _error_box(page, uid: str):
    return row(page, uid).locator("[data-error]")


def _expect_words(box, words: GuideWords) -> None:
    expect(box.locator(".err-title")).to_have_text(f"{words.icon} {words.title}")
    expect(box).to_contain_text(words.message)
    expect(box).to_contain_text(words.display)
    expect(box).to_have_class(f"errbox sev-{words.severity}")


def test_every_section_8_code_in_the_guide_words_behind_either_prefix(
    page, live_server, db, shot
) -> None:
    cases: dict[str, tuple[dict, str]] = {SERVER_RESTART: (STOPPED, SERVER_RESTART)}
    for code in REASONS:
        cases[f"bare {code}"] = (FAILED, code)
        cases[f"OUTPUT_INCOMPLETE {code}"] = (FAILED, f"OUTPUT_INCOMPLETE: {code}")
        cases[f"{SERVER_RESTART} {code}"] = (STOPPED, f"{SERVER_RESTART}: {code}")
    cases["unknown"] = (FAILED, "SOME_FUTURE_CODE: detail")
    uids: dict[str, str] = {}
    for i, (name, (values, error)) in enumerate(cases.items()):
        model = live_server.create_model(modelNo=f"G{i % 4 + 1}", modelVer=f"v9.{i}", memo=name)
        _force(db, model["uuid"], last_error=error, epochs_done=1, **values)
        uids[name] = model["uuid"]

    page.goto("/")
    restart_box = _error_box(page, uids[SERVER_RESTART])
    _expect_words(restart_box, GUIDE[SERVER_RESTART])
    # §7 (L580, L672): the stop's status line names it.
    expect(row(page, uids[SERVER_RESTART]).locator(".cell-status")).to_contain_text(
        "산출물 부족으로 중단됨"
    )
    for code in REASONS:
        for name in (f"bare {code}", f"OUTPUT_INCOMPLETE {code}"):
            _expect_words(_error_box(page, uids[name]), GUIDE[code])
        # Behind the restart prefix the restart's words lead (as §8.2's own lookup finds them)
        # and the reason follows in its own words.
        box = _error_box(page, uids[f"{SERVER_RESTART} {code}"])
        _expect_words(box, GUIDE[SERVER_RESTART])
        reason = box.locator("[data-error-reason]")
        expect(reason).to_contain_text(f"{GUIDE[code].icon} {GUIDE[code].title}")
        expect(reason).to_contain_text(GUIDE[code].message)
        expect(reason).to_contain_text(GUIDE[code].display)
    unknown = _error_box(page, uids["unknown"])
    expect(unknown.locator(".err-title")).to_have_text("⚠️ 오류 발생")
    expect(unknown).to_contain_text("SOME_FUTURE_CODE: detail")
    expect(unknown).to_have_class("errbox sev-error")
    shot(page, "16-guide-words")


def test_particles_are_filled_and_the_cancel_is_named(page, live_server, db) -> None:
    trained = live_server.create_model(memo="cancelled training")
    _force(db, trained["uuid"], last_error="CANCELED_BY_USER", **STOPPED)
    tested = live_server.create_model(memo="failed test")
    _force(
        db,
        tested["uuid"],
        status_cd="COMPLETED",
        step1_state="COMPLETED",
        step2_state="ERROR",
        best_epoch=2,
        last_error="COMPLETION_FAILED: LockNotAvailable",
    )
    page.goto("/")
    cancelled = row(page, trained["uuid"])
    # §7 scenario 3 (L646)
    expect(cancelled.locator(".cell-status")).to_contain_text("사용자가 학습을 취소함")
    expect(cancelled.locator("[data-error]")).to_contain_text("사용자가 학습을 취소했습니다.")
    expect(row(page, tested["uuid"]).locator("[data-error]")).to_contain_text(
        "테스트는 끝났지만"
    )
    body = page.locator("body").inner_text()
    for unfilled in ("(를)", "(가)", "(는)"):
        assert unfilled not in body
