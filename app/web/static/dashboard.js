/* trainyard dashboard — hand-written, no dependencies.
 *
 * The model table of the user document §2.2, the buttons of §5.1–5.3 / §6.1 as SPEC §4
 * resolves them, the last_error messages of §8, live polling while anything is IN_PROGRESS,
 * and a model view (#/models/<uuid>) with curves drawn as SVG.
 */
(() => {
  'use strict';

  // The helpers both pages use (common.js, loaded first).
  const { TOKEN_KEY, JOB_STATUS, $, $$, esc, ApiFailure, api, svg, niceTicks } = window.trainyard;
  // Search, sort, the metric column, row selection and the compare view (compare.js).
  const list = window.trainyardList;

  // ---- constants ---------------------------------------------------------------------------

  // User document §2.2: colours (in dashboard.css), icons and Korean names.
  const STATUS = {
    READY: { icon: '⏸️', name: '대기' },
    IN_PROGRESS: { icon: '🔄', name: '진행중' },
    COMPLETED: { icon: '✅', name: '완료' },
    STOPPED: { icon: '⚠️', name: '중단됨' },
    ERROR: { icon: '❌', name: '오류' },
  };
  const POLL_ACTIVE_MS = 3000; // while anything is IN_PROGRESS (the document asks for ≤ 10 s)
  const POLL_HIDDEN_MS = 10000; // while the tab is in the background
  const POLL_RETRY_MS = 10000; // after a failed load
  const AFTER_COMMAND_MS = 8000; // keep watching this long after any command
  const MAX_POINTS = 500;

  // ---- small helpers -----------------------------------------------------------------------

  // crypto.randomUUID needs a secure context; getRandomValues works on plain http too.
  function newUuid() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  function fmtNum(v) {
    if (v === null || v === undefined || v === '') return '-';
    if (typeof v !== 'number') return String(v);
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a >= 1000) return v.toFixed(0);
    if (a >= 1) return v.toFixed(3);
    if (a >= 0.001) return v.toFixed(4);
    return v.toPrecision(3);
  }

  // "2시간 15분 0초" → "2시간 15분" (the table of §2.2 shows it that way); seconds-only stays.
  function shortDuration(d) {
    if (!d) return '';
    return d.includes('분') || d.includes('시간') ? d.replace(/ 0초$/, '') : d;
  }

  // "2026-04-05 10:30:00" ~ "2026-04-05 12:45:00" → "2026-04-05 10:30 ~ 12:45"
  function timeRange(start, end) {
    if (!start) return '-';
    const s = start.slice(0, 16);
    if (!end) return `${s} ~`;
    const e = end.slice(0, 10) === start.slice(0, 10) ? end.slice(11, 16) : end.slice(0, 16);
    return `${s} ~ ${e}`;
  }

  function badge(code, name, extraClass = '') {
    const s = STATUS[code] || { icon: '', name: code };
    return `<span class="badge badge-${esc(code)} ${extraClass}" data-status="${esc(code)}">${s.icon} ${esc(name || s.name)}</span>`;
  }

  function jobBadge(code) {
    const s = JOB_STATUS[code] || { cls: 'READY', icon: '', name: code };
    return `<span class="badge badge-${s.cls}" data-job-status="${esc(code)}">${s.icon} ${esc(s.name)}</span>`;
  }

  // ---- the API -----------------------------------------------------------------------------

  // api() and ApiFailure: common.js (shared with the nodes page).

  // A failed command, in plain words, with the API's own message after it.
  const FAILURE_HINTS = {
    STATE_CONFLICT: '현재 상태에서는 할 수 없는 작업입니다 (다른 곳에서 상태가 바뀌었을 수 있어 목록을 새로 고쳤습니다).',
    NO_CHECKPOINT: '이어할 체크포인트가 없습니다 — [재실행]으로 처음부터 학습하세요.',
    MODEL_NOT_FOUND: '모델을 찾을 수 없습니다.',
    UNAUTHORIZED: 'API 토큰이 필요합니다 — 위의 [🔑 토큰]에 입력하세요.',
    INVALID_EPOCH: '선택한 에폭으로는 테스트할 수 없습니다.',
    IDEMPOTENCY_KEY_REUSED: '같은 요청 키가 다른 요청에 쓰였습니다. 다시 눌러 주세요.',
    INTERNAL_ERROR: '서버 내부 오류입니다. 서버 로그를 확인하세요.',
    SERVICE_UNAVAILABLE: '서버의 의존 서비스(DB/브로커)가 응답하지 않습니다.',
  };

  function plainFailure(err) {
    if (err.code === 'NETWORK') return err.message;
    const hint = FAILURE_HINTS[err.code] || (err.status >= 500 ? FAILURE_HINTS.INTERNAL_ERROR : '');
    return hint ? `${hint}\n서버 메시지: ${err.message}` : err.message;
  }

  // ---- state -------------------------------------------------------------------------------

  const state = {
    status: '',
    modelNo: '',
    page: 0,
    size: 20,
    models: [],
    totalElements: 0,
    totalPages: 0,
    loaded: false,
    listSeq: 0,
    inflight: new Set(), // uuids with a command on its way
    watchUntil: 0,
    pollTimer: null,
    panel: null, // {uuid, detail, metrics, results, logs, …}
  };

  // ---- buttons (§5.1–5.3, §6.1 as SPEC §4 resolves them) -----------------------------------

  // The rules live in the domain (app/domain/transitions.py): the API serves what decide()
  // accepts now as `allowedCommands`, and the page draws exactly that.
  function allowed(m) {
    const cmds = new Set(m.allowedCommands || []);
    return {
      run: cmds.has('run'),
      cancel: cmds.has('cancel'),
      restart: cmds.has('restart'),
      resume: cmds.has('resume'),
      test: cmds.has('testRun'),
      testCancel: cmds.has('testCancel'),
      results: m.step2Status === 'COMPLETED', // a view, not a command
    };
  }

  function actionButtons(m, { inPanel = false } = {}) {
    const can = allowed(m);
    const busy = state.inflight.has(m.uuid);
    // aria-disabled, not disabled: a disabled button cannot hold focus, which would fall to <body>.
    const dis = busy ? ' aria-disabled="true" aria-busy="true"' : '';
    const u = esc(m.uuid);
    const b = (cmd, cls, label) =>
      `<button type="button" class="btn ${cls}" data-cmd="${cmd}" data-uuid="${u}"${dis}>${label}</button>`;
    const out = [];
    if (can.run) out.push(b('run', 'btn-primary', '🚀 학습 실행'));
    if (can.cancel) out.push(b('cancel', 'btn-danger', '⏹️ 학습 취소'));
    if (can.restart) out.push(b('restart', 'btn-warning', '🔄 재실행'));
    if (can.resume) out.push(b('resume', 'btn-info', '▶️ 이어하기'));
    if (can.test) {
      out.push(b('test', 'btn-success', m.step2Status === 'READY' ? '🧪 테스트 실행' : '🧪 테스트 재실행'));
    }
    if (can.testCancel) out.push(b('testCancel', 'btn-danger', '⏹️ 테스트 취소'));
    if (can.results) {
      if (!inPanel) out.push(b('results', 'btn-primary', '📊 결과 보기'));
      out.push(`<a class="btn btn-plain" data-download="${u}" href="/api/models/${u}/results/download" download>⬇️ 다운로드</a>`);
    }
    if (inPanel) out.push(b('sync', 'btn-plain', '🔁 상태 동기화'));
    if (busy) out.push('<span class="muted" data-busy>요청 중…</span>');
    return `<div class="actions" data-actions="${u}">${out.join('')}</div>`;
  }

  // ---- last_error (§8) ---------------------------------------------------------------------

  /** A Korean noun with its particle filled: josa('학습', '이', '가') → '학습이', josa('테스트', '을', '를') → '테스트를'. */
  function josa(word, withFinal, withoutFinal) {
    const code = word.charCodeAt(word.length - 1) - 0xac00;
    const hasFinal = code >= 0 && code <= 11171 && code % 28 !== 0;
    return word + (hasFinal ? withFinal : withoutFinal);
  }

  // The guide's §8 words, exactly as written there (status-guide.ko.txt §8.1 L684-694, §8.2
  // L698-716). `display` is §8.1's "프론트 표시"; `title`/`message`/`icon`/`sev` are §8.2's.
  // A code §8.2 leaves out takes its title from §8.1's display, its message from §8.1's "의미"
  // and the ❌ error severity.
  // Messages name the step ("학습"): `{what}` is filled with 학습 or 테스트 and its particle.
  const GUIDE_CODES = {
    'SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE': {
      icon: '⚠️', sev: 'warning', title: '서버 재시작으로 인한 중단',
      message: '서버가 재시작되면서 {what이} 중단되었습니다. 산출물을 확인하여 {what} 상태를 복구합니다.',
      display: '서버 재시작으로 인한 중단 - 산출물 확인 필요',
    },
    'val.csv-lines-mismatch': {
      icon: '📊', sev: 'warning', title: '검증 데이터 부족',
      message: '검증 데이터 라인 수가 예상보다 적습니다. {what이} 완료되지 않았을 가능성이 있습니다.',
      display: '검증 데이터 부족 - {what이} 완료되지 않음',
    },
    'val.csv-missing': {
      icon: '❌', sev: 'error', title: '검증 파일 없음',
      message: 'val.csv 파일을 찾을 수 없습니다. {what이} 실패했을 가능성이 높습니다.',
      display: '검증 파일 없음 - {what} 실패',
    },
    'total-epoch-missing': {
      icon: '❌', sev: 'error', title: '설정 오류',
      message: 'paramsJson에 total_epoch 없음',
      display: '설정 오류 - 에폭 정보 없음',
    },
    'output-dir-missing': {
      icon: '❌', sev: 'error', title: '산출물 디렉토리 없음',
      message: '산출물 디렉토리 없음',
      display: '산출물 디렉토리 없음 - {what} 실패',
    },
  };

  // Reasons of the test step (EVAL) that the guide does not list.
  const TEST_REASONS = {
    'test.csv-missing': '테스트 결과 파일(test.csv) 없음',
    'results-zip-missing': '테스트 결과 ZIP 파일 없음',
  };

  function fillStep(text, what) {
    return text
      .replace(/\{what이\}/g, josa(what, '이', '가'))
      .replace(/\{what\}/g, what);
  }

  /** The first key of `table` that `text` contains (§8.2 looks codes up so: `lastError.includes(key)`). */
  function keyIn(table, text) {
    return Object.keys(table).find((k) => text.includes(k));
  }

  /** The guide's entry for a code or reason, in explainError's shape (`text` is §8.2's message). */
  function guideEntry(text, what) {
    const key = keyIn(GUIDE_CODES, text);
    if (!key) return null;
    const g = GUIDE_CODES[key];
    return {
      sev: g.sev, icon: g.icon, title: g.title,
      text: fillStep(g.message, what), display: fillStep(g.display, what),
    };
  }

  function explainReason(reason, what = '학습') {
    if (!reason) return '';
    const r = reason.trim();
    if (r.startsWith('metrics-parse-error')) {
      const detail = r.replace(/^metrics-parse-error:?\s*/, '');
      return `메트릭 CSV 형식 오류 — ${detail || 'CSV를 읽을 수 없음'}`;
    }
    const entry = guideEntry(r, what);
    if (entry) return `${entry.display}: ${entry.text}`;
    const key = keyIn(TEST_REASONS, r);
    return key ? TEST_REASONS[key] : r;
  }

  const EXIT_HINTS = {
    1: '예상하지 못한 오류로 종료되었습니다.',
    2: '입력 또는 설정 오류입니다 (데이터셋, 분할 목록, 체크포인트를 확인하세요).',
    3: '학습 코드가 오류를 내고 종료되었습니다.',
    137: '강제 종료되었습니다 (SIGKILL — 메모리 부족일 수 있습니다).',
    143: '종료 신호(SIGTERM)로 멈췄습니다.',
  };

  /** A launch that ran no container (docs/dashboard.md): what happened and what to do. */
  function launchErrorText(code, what, again) {
    const retryWhenReady = (fix) => (again ? `${fix} 뒤 ${again}` : fix);
    switch (code) {
      case 'IMAGE_NOT_FOUND':
        return {
          title: `${what} 이미지 없음`,
          text: `노드에 이 모델의 학습 이미지가 없어 컨테이너를 시작하지 못했습니다. 학습 코드 오류가 아닙니다.`,
          action: again
            ? retryWhenReady('이미지를 노드에 준비한')
            : '관리자에게 이미지를 노드에 빌드하거나 불러와(docker build / docker load) 달라고 요청하세요. 준비되면 [재실행] 버튼이 나타납니다',
        };
      case 'INVALID_RUNTIME_SETTINGS':
        return {
          title: '실행 설정 오류',
          text: `노드가 이 모델의 실행 설정(resources: memory_mb, cpus, gpus 등)을 거부해 ${what} 컨테이너를 시작하지 못했습니다. 같은 설정으로는 다시 실행해도 실패합니다.`,
          action: '노드가 받아들이는 설정으로 새 모델을 등록하세요',
        };
      case 'DATASET_NOT_FOUND':
        return {
          title: '데이터셋 없음',
          text: `이 모델의 데이터셋 폴더가 노드의 DATASET_ROOT에 없어 ${josa(what, '을', '를')} 시작하지 못했습니다.`,
          action: retryWhenReady('데이터셋을 DATASET_ROOT에 다시 넣은'),
        };
      case 'DATASET_INVALID':
        return {
          title: '데이터셋 형식 오류',
          text: `데이터셋의 manifest.csv를 읽을 수 없어 ${josa(what, '을', '를')} 시작하지 못했습니다.`,
          action: retryWhenReady('manifest.csv를 고친'),
        };
      default: // CONTAINER_START_FAILED
        return {
          title: `${what} 컨테이너 시작 실패`,
          text: `컨테이너를 시작하지 못했습니다 (이미지의 ENTRYPOINT 실행 실패, 출력 폴더 준비 실패 등). 학습 코드가 실행되기 전의 오류입니다.`,
          action: retryWhenReady('관리자에게 노드 상태를 확인해 달라고 요청한'),
        };
    }
  }

  /** A running job the node ended (its log says more): what happened and what to change.
   * SCRATCH_LIMIT_EXCEEDED keeps the epochs done (workers/scratch.py), hence the checkpoint. */
  function endedByNode(code, what, ckptText) {
    switch (code) {
      case 'STALLED': // no log output and no progress for stallTimeoutS (workers/logcollector.py)
        return {
          icon: '⏳', title: `${what} 멈춤 감지 (STALLED)`,
          text: `${josa(what, '이', '가')} 설정된 시간 동안 로그 출력도 진행(progress.json) 변화도 없어 중단시켰습니다. `
            + 'DataLoader 워커의 공유 메모리 부족, 교착 상태, 네트워크 대기 등을 로그에서 확인하세요. '
            + '정상적으로 오래 걸리는 작업이라면 모델의 멈춤 감지 시간(stallTimeoutS)을 늘리세요.',
        };
      case 'OOM_KILLED':
        return {
          icon: '❌', title: '메모리 부족 (OOM)',
          text: '컨테이너가 메모리 한도를 넘어 강제 종료되었습니다. batch size를 줄이거나 메모리 한도(memory_mb)를 늘린 뒤 다시 실행하세요.',
        };
      default: // SCRATCH_LIMIT_EXCEEDED
        return {
          icon: '💾', title: '스크래치 용량 초과',
          text: `${josa(what, '이', '가')} /scratch(TMPDIR)에 노드 한도(JOB_SCRATCH_MAX_MB)보다 많이 써서 중단되었습니다. `
            + `임시 파일을 줄이거나 관리자에게 한도를 늘려 달라고 요청하세요.${ckptText}`,
        };
    }
  }

  /** The reason after a code's colon ("…_OUTPUT_INCOMPLETE: val.csv-missing"), in the guide's words. */
  function reasonOf(err, what) {
    const reason = err.split(':').slice(1).join(':').trim();
    if (!reason) return null;
    return guideEntry(reason, what)
      || { icon: '📊', title: '', text: explainReason(reason, what), display: '' };
  }

  /** What to say about a model's last_error, or null when nothing is wrong now. */
  function explainError(m) {
    const trainCtx = m.statusCd === 'STOPPED' || m.statusCd === 'ERROR';
    const testCtx = !trainCtx && m.step1Status === 'COMPLETED'
      && (m.step2Status === 'STOPPED' || m.step2Status === 'ERROR');
    if (!trainCtx && !testCtx) return null;
    const err = (m.lastError || '').trim();
    const can = allowed(m);
    const what = trainCtx ? '학습' : '테스트';
    const retry = trainCtx ? (can.resume ? '[재실행] 또는 [이어하기]' : '[재실행]') : '[테스트 재실행]';
    // After an interruption (server restart, lost node) resume comes first where it is possible:
    // §8.1 (L686) says [재실행], §7 (L673) [재실행] [이어하기]; resume is offered when a
    // checkpoint makes it possible (docs/dashboard.md, "Where the guide contradicts itself").
    const resumeFirst = trainCtx ? (can.resume ? '[이어하기] 또는 [재실행]' : '[재실행]') : retry;
    const ckpt = m.progress && m.progress.checkpointEpoch;
    const ckptText = trainCtx
      ? (ckpt ? ` 마지막 체크포인트: Epoch ${ckpt}.` : ' 남은 체크포인트가 없어 처음부터 다시 학습해야 합니다.')
      : '';

    if (testCtx && m.step2Status === 'STOPPED' && !/^(SERVER_RESTART|NODE_LOST)/.test(err)) {
      return { sev: 'warning', icon: '⚠️', title: '테스트 중단됨', text: '테스트가 중단되었습니다.', action: retry, code: '' };
    }
    if (!err) {
      return {
        sev: m.statusCd === 'ERROR' || m.step2Status === 'ERROR' ? 'error' : 'warning',
        icon: '⚠️', title: `${what} ${m.statusCd === 'STOPPED' ? '중단됨' : '오류'}`,
        text: `${josa(what, '이', '가')} 끝나지 못했습니다.${ckptText}`, action: retry, code: '',
      };
    }
    if (err.startsWith('CANCELED_BY_USER')) {
      return {
        sev: 'warning', icon: '⚠️', title: '사용자가 취소함',
        text: `사용자가 ${josa(what, '을', '를')} 취소했습니다.${ckptText}`, action: retry, code: err,
      };
    }
    if (err.startsWith('SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE')) {
      const g = guideEntry('SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE', what);
      return {
        ...g, text: g.text + ckptText, reason: reasonOf(err, what), action: resumeFirst, code: err,
      };
    }
    if (err.startsWith('NODE_LOST_OUTPUT_INCOMPLETE')) {
      return {
        sev: 'warning', icon: '⚠️', title: '노드 응답 없음으로 인한 중단',
        text: `${josa(what, '을', '를')} 실행하던 노드가 응답하지 않아 중단으로 처리했습니다.`
          + ckptText + ' 새 실행은 그 노드가 돌아와 이전 컨테이너를 정리한 뒤 시작됩니다.',
        reason: reasonOf(err, what), action: resumeFirst, code: err,
      };
    }
    const launch = /^(IMAGE_NOT_FOUND|INVALID_RUNTIME_SETTINGS|DATASET_NOT_FOUND|DATASET_INVALID|CONTAINER_START_FAILED)\b:?\s*([\s\S]*)$/.exec(err);
    if (launch) {
      // No container ran: never the training code's fault. The buttons come from
      // allowedCommands: restart and test run are not offered while no live node has the
      // image, and never again after a node refused the model's settings.
      const [, code, reason] = launch;
      const again = trainCtx ? (can.restart ? '[재실행]' : '') : (can.test ? '[테스트 재실행]' : '');
      const info = launchErrorText(code, what, again);
      return {
        sev: 'error', icon: '🚫', title: info.title,
        text: `${info.text}${reason ? ` (${reason})` : ''}`,
        action: info.action, code: err,
      };
    }
    const exit = /^CONTAINER_EXIT_(-?\d+)/.exec(err);
    if (exit) {
      const n = Number(exit[1]);
      return {
        sev: 'error', icon: '❌', title: `${what} 코드 오류 (종료 코드 ${n})`,
        text: `${EXIT_HINTS[n] || '컨테이너가 오류로 종료되었습니다.'} 로그 마지막 부분을 확인하세요.`,
        action: retry, code: err, showLog: true,
      };
    }
    const ended = /^(STALLED|OOM_KILLED|SCRATCH_LIMIT_EXCEEDED)\b/.exec(err);
    if (ended) {
      return { sev: 'error', ...endedByNode(ended[1], what, ckptText), action: retry, code: err, showLog: true };
    }
    if (err.startsWith('OUTPUT_INCOMPLETE')) {
      const reason = err.replace(/^OUTPUT_INCOMPLETE:?\s*/, '');
      const csv = reason.startsWith('metrics-parse-error');
      const g = csv ? null : guideEntry(reason, what);
      if (g) return { ...g, action: retry, code: err, showLog: true };
      return {
        sev: 'error', icon: csv ? '📊' : '❌', title: csv ? '메트릭 CSV 형식 오류' : '산출물 부족',
        text: csv
          ? `${what} 산출물의 CSV를 읽을 수 없습니다: ${reason.replace(/^metrics-parse-error:?\s*/, '')}. 학습 코드가 CSV를 올바르게 쓰는지 확인하세요.`
          : `컨테이너는 정상 종료했지만 산출물이 부족합니다: ${explainReason(reason)}.`,
        action: retry, code: err, showLog: true,
      };
    }
    if (err.startsWith('COMPLETION_FAILED') || err.startsWith('LAUNCH_FAILED')) {
      // The platform gave up after RETRY_MAX_ATTEMPTS tries (docs/workers.md, "Bounds").
      const launch = err.startsWith('LAUNCH_FAILED');
      const reason = err.replace(/^[A-Z_]+:?\s*/, '');
      return {
        sev: 'error', icon: '❌', title: launch ? `${what} 시작 실패` : `${what} 결과 처리 실패`,
        text: (launch
          ? `${what} 컨테이너를 여러 번 시도했지만 시작하지 못했습니다 (노드의 Docker 응답 없음 등).`
          : `${josa(what, '은', '는')} 끝났지만 결과 판정·메트릭 저장이 여러 번 실패해 중단했습니다.`)
          + (reason ? ` 마지막 오류: ${reason}.` : '') + ' 관리자에게 노드 상태를 확인해 달라고 요청한 뒤 다시 실행하세요.',
        action: retry, code: err,
      };
    }
    const g = guideEntry(err, what);  // a bare §8 reason, whatever carries it
    if (g) {
      return { ...g, action: retry, code: err };
    }
    // A code this page does not know (a newer server): say so, and show it as it came.
    return { sev: 'error', icon: '⚠️', title: '오류 발생', text: err, action: retry, code: '' };
  }

  /** The guide's words for the reason a code carries: its title and message, then §8.1's display. */
  function reasonLine(reason) {
    if (!reason) return '';
    const head = reason.title ? `${reason.icon} <b>${esc(reason.title)}</b>: ` : '';
    const display = reason.display ? ` <span class="muted">(${esc(reason.display)})</span>` : '';
    return `<div class="err-reason" data-error-reason>${head}${esc(reason.text)}${display}</div>`;
  }

  function errorBox(info, { logTail = null, uuid = null } = {}) {
    if (!info) return '';
    const logLink = info.showLog && uuid
      ? ` <a href="#/models/${esc(uuid)}/logs" class="model-link">로그 보기</a>` : '';
    return `<div class="errbox sev-${info.sev}" data-error>
      <span class="err-title">${info.icon} ${esc(info.title)}</span>
      — <span class="err-action">${esc(info.action)}</span>${logLink}
      ${info.display ? `<div class="err-display" data-error-display>${esc(info.display)}</div>` : ''}
      <div class="err-text">${esc(info.text)}${info.code ? ` <span class="err-code">${esc(info.code)}</span>` : ''}</div>
      ${reasonLine(info.reason)}
      ${logTail ? `<pre data-error-log>${esc(logTail)}</pre>` : ''}
    </div>`;
  }

  // ---- the table ---------------------------------------------------------------------------

  function overallMessage(m) {
    switch (m.statusCd) {
      case 'READY': return '학습 준비 완료';
      case 'IN_PROGRESS':
        // A node has no room yet: the job waits its turn (queuePosition, 1 = next to launch).
        if (m.queuePosition) return `${m.step2Status === 'IN_PROGRESS' ? '테스트' : '학습'} 시작 대기 (대기 순번 ${m.queuePosition})`;
        if (m.step2Status === 'IN_PROGRESS') return '테스트 진행 중...';
        return m.step1StrtDttm || (m.progress && m.progress.epochsDone) ? '학습 진행 중...' : '학습 진행 중... (시작 대기)';
      case 'COMPLETED':
        return {
          READY: '학습 완료 (테스트 대기)',
          COMPLETED: '모든 학습 및 테스트 완료',
          STOPPED: '학습 완료 (테스트 중단됨)',
          ERROR: '학습 완료 (테스트 오류)',
        }[m.step2Status] || '학습 완료';
      case 'STOPPED': {
        // §7 names two stops by their cause (L580/L672, L646); any other keeps §5.1's (L358).
        const err = m.lastError || '';
        if (err.startsWith('SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE')) return '산출물 부족으로 중단됨';
        if (err.startsWith('CANCELED_BY_USER')) return '사용자가 학습을 취소함';
        return '학습 중단됨 - 재시작 가능';
      }
      case 'ERROR': return '오류 발생 - 재시작 필요';
      default: return '';
    }
  }

  // ---- automatic retry (docs/retry.md): the sub-status and the attempt history -------------

  /** "retrying (2/3) after NODE_LOST" under the status while an automatic retry is live. */
  function retryStatusLine(m) {
    return m.retryStatus ? `<span class="sub retry-status" data-retry-status>${esc(m.retryStatus)}</span>` : '';
  }

  /** The policy and, per training attempt that ended for a cause, the cause and what followed. */
  function retryHistoryHtml(d) {
    if (!d.retryPolicy) return '';
    const policy = `<p class="note" data-retry-policy>자동 재시도: 최대 ${esc(d.retryPolicy.max)}회 · 원인 ${esc(d.retryPolicy.on.join(', ') || '-')}</p>`;
    const rows = (d.jobs || []).filter((j) => j.jobType === 'TRAIN' && (j.endCause || j.retryNumber)).map((j) => `<li data-retry-attempt="${esc(j.attempt)}">
        시도 ${esc(j.attempt)}${j.retryNumber ? ` (재시도 ${esc(j.retryNumber)}/${esc(d.retryPolicy.max)})` : ''}: ${jobBadge(j.statusCd)}
        ${j.endCause ? ` 원인 <b class="mono">${esc(j.endCause)}</b>` : ''}${j.retryNote ? ` <span class="muted">${esc(j.retryNote)}</span>` : ''}</li>`).join('');
    return `<div class="retry-history" data-retry-history>${policy}${rows ? `<ul>${rows}</ul>` : ''}</div>`;
  }

  function progressBar(m) {
    const p = m.progress || {};
    const total = p.totalEpoch || 0;
    const done = Math.min(p.epochsDone || 0, total);
    const pct = total ? Math.round((1000 * done) / total) / 10 : 0;
    const ckpt = p.checkpointEpoch ? ` · 체크포인트 E${p.checkpointEpoch}` : '';
    return `<div class="progress" data-progress="${esc(m.uuid)}">
      <progress max="${total || 1}" value="${done}" data-done="${done}" data-total="${total}"
        aria-label="학습 진행률">${pct}%</progress>
      <span class="progress-text">${done} / ${total} 에폭 · ${pct}%${ckpt}</span>
    </div>`;
  }

  /** 학습 시간 across the training's attempts (docs/dashboard.md): the run or restart that began
   * it and the resumes after it. The step1… fields are the current attempt's alone. */
  function trainingTime(m) {
    const attempts = m.step1Attempts || 0;
    const running = m.step1Status === 'IN_PROGRESS';
    const start = m.step1FirstStrtDttm || m.step1StrtDttm;
    const end = running ? null : m.step1EndDttm;
    const duration = m.step1TotalDuration || m.step1Duration;
    let note = '';
    if (attempts > 1) {
      note = running
        ? `${attempts}번째 시도 진행 중${duration ? ` · 이전 시도 합계 ${shortDuration(duration)}` : ''}`
        : `시도 ${attempts}회 합계 (멈춘 사이 제외)`;
    }
    let title = start ? `${start} ~ ${end || ''}` : '';
    if (attempts > 1 && m.step1StrtDttm) title += ` (마지막 시도 ${m.step1StrtDttm} ~ ${m.step1EndDttm || ''})`;
    return { start, end, duration: running && attempts > 1 ? null : duration, attempts, note, title };
  }

  function step1Cell(m) {
    const t = trainingTime(m);
    const dur = t.duration ? ` <span class="muted">(${esc(shortDuration(t.duration))})</span>` : '';
    let html = badge(m.step1Status, m.step1StatusName) + dur;
    if (t.note) html += `<span class="sub" data-attempts="${esc(t.attempts)}">${esc(t.note)}</span>`;
    if (m.step1Status === 'IN_PROGRESS') html += progressBar(m);
    else if ((m.step1Status === 'STOPPED' || m.step1Status === 'ERROR') && m.progress && m.progress.epochsDone) {
      html += `<span class="sub">멈춘 지점: ${m.progress.epochsDone} / ${m.progress.totalEpoch} 에폭</span>`;
    }
    if (m.step1Status === 'COMPLETED' && m.bestEpoch !== null && m.bestEpoch !== undefined) {
      html += `<span class="sub">Best Epoch: ${esc(m.bestEpoch)}</span>`;
    }
    return html;
  }

  function step2Cell(m) {
    if (m.step2Status === 'READY' && m.step1Status !== 'COMPLETED') return '<span class="step-none">-</span>';
    const dur = m.step2Duration ? ` <span class="muted">(${esc(shortDuration(m.step2Duration))})</span>` : '';
    let html = badge(m.step2Status, m.step2StatusName) + dur;
    if (m.step2Status === 'IN_PROGRESS') html += '<span class="sub">테스트 중…</span>';
    return html;
  }

  function modelGroupHtml(m) {
    const err = explainError(m);
    const t = trainingTime(m);
    const u = esc(m.uuid);
    const memo = m.memo ? `<span class="sub memo" title="${esc(m.memo)}">${esc(m.memo)}</span>` : '';
    const row = `<tr class="model-row${err ? ' has-error' : ''}" data-uuid="${u}">
      <td class="cell-select" data-label="비교 선택">${list.selectCell(m)}</td>
      <td><a class="model-link" href="#/models/${u}" title="상세 보기">${esc(m.modelNo)}</a>
        <span class="sub">${esc(m.trainTypeName || m.trainType || '')} · #${esc(m.id)}</span></td>
      <td>${esc(m.modelVer)}${memo}</td>
      <td class="cell-metric num" data-label="지표">${list.metricCell(m)}</td>
      <td class="cell-status">${badge(m.statusCd, m.statusName)}<span class="sub">${esc(overallMessage(m))}</span>${retryStatusLine(m)}</td>
      <td class="cell-step1" data-label="학습(Step1)">${step1Cell(m)}</td>
      <td class="cell-step2" data-label="테스트(Step2)">${step2Cell(m)}</td>
      <td class="time cell-time" data-label="학습 시간" title="${esc(t.title)}">${esc(timeRange(t.start, t.end))}</td>
      <td class="time cell-time" data-label="테스트 시간" title="${esc(m.step2StrtDttm || '')}${m.step2EndDttm ? ` ~ ${esc(m.step2EndDttm)}` : ''}">${esc(timeRange(m.step2StrtDttm, m.step2EndDttm))}</td>
      <td class="cell-actions">${actionButtons(m)}</td>
    </tr>`;
    const errRow = err ? `<tr class="error-row" data-uuid="${u}"><td colspan="10">${errorBox(err, { uuid: m.uuid })}</td></tr>` : '';
    return row + errRow;
  }

  // One <tbody> per model: a poll only replaces the models that changed, so a click is
  // never lost to a re-render of rows it was not on.
  function renderTable() {
    const table = $('#model-table');
    const existing = new Map($$('tbody[data-uuid]', table).map((tb) => [tb.dataset.uuid, tb]));
    const wanted = [];
    for (const m of state.models) {
      const html = modelGroupHtml(m);
      let tb = existing.get(m.uuid);
      if (!tb || tb.dataset.html !== html) {
        const fresh = document.createElement('tbody');
        fresh.dataset.uuid = m.uuid;
        fresh.dataset.html = html;
        fresh.innerHTML = html;
        const focused = focusKeyWithin(tb);
        if (tb) tb.replaceWith(fresh);
        tb = fresh;
        if (focused) restoreFocus(focused);
      }
      existing.delete(m.uuid);
      wanted.push(tb);
    }
    for (const tb of existing.values()) tb.remove();
    let previous = $('thead', table);
    for (const tb of wanted) {
      if (previous.nextSibling !== tb) previous.after(tb);
      previous = tb;
    }
    const empty = state.loaded && state.models.length === 0;
    $('#empty').hidden = !empty;
    if (empty) {
      // an empty page under a filter says so and offers the way back, not "create a model"
      const filtered = filtersActive();
      $('#empty-text').textContent = filtered
        ? '필터에 맞는 모델이 없습니다.'
        : '표시할 모델이 없습니다. [➕ 새 모델]로 등록하세요.';
      $('#clear-filters').hidden = !filtered;
    }
    $('#total-count').textContent = state.loaded ? `총 ${state.totalElements.toLocaleString('ko-KR')}개 모델` : '';
    renderPager();
  }

  function renderPager() {
    const nav = $('#pager');
    const pages = state.totalPages;
    if (pages <= 1) { nav.innerHTML = ''; return; }
    const cur = state.page;
    const set = new Set([0, pages - 1, cur - 2, cur - 1, cur, cur + 1, cur + 2].filter((p) => p >= 0 && p < pages));
    const list = Array.from(set).sort((a, b) => a - b);
    const parts = [];
    parts.push(`<button type="button" class="btn btn-plain" data-page="${cur - 1}" ${cur === 0 ? 'disabled' : ''} aria-label="이전">‹ 이전</button>`);
    let last = -1;
    for (const p of list) {
      if (p - last > 1) parts.push('<span class="gap">…</span>');
      parts.push(`<button type="button" class="btn btn-plain" data-page="${p}" ${p === cur ? 'aria-current="page"' : ''}>${p + 1}</button>`);
      last = p;
    }
    parts.push(`<button type="button" class="btn btn-plain" data-page="${cur + 1}" ${cur >= pages - 1 ? 'disabled' : ''} aria-label="다음">다음 ›</button>`);
    nav.innerHTML = parts.join('');
  }

  // ---- loading and polling -----------------------------------------------------------------

  function saveQuery() {
    const q = new URLSearchParams();
    if (state.status) q.set('status', state.status);
    if (state.modelNo) q.set('modelNo', state.modelNo);
    if (state.page) q.set('page', String(state.page));
    if (state.size !== 20) q.set('size', String(state.size));
    list.writeAddress(q);
    const search = q.toString();
    history.replaceState(null, '', `${location.pathname}${search ? `?${search}` : ''}${location.hash}`);
  }

  function filtersActive() {
    return Boolean(state.status || state.modelNo || list.searching());
  }

  function clearFilters() {
    state.status = '';
    state.modelNo = '';
    state.page = 0;
    $('#filter-status').value = '';
    $('#filter-model-no').value = '';
    list.clearSearch();
    saveQuery();
    refreshNow();
  }

  function readQuery() {
    const q = new URLSearchParams(location.search);
    state.status = q.get('status') || '';
    state.modelNo = q.get('modelNo') || '';
    state.page = Math.max(0, parseInt(q.get('page') || '0', 10) || 0);
    const size = parseInt(q.get('size') || '20', 10);
    state.size = [20, 50, 100].includes(size) ? size : 20;
    list.readAddress(q);
    $('#filter-status').value = state.status;
    $('#filter-model-no').value = state.modelNo;
    $('#page-size').value = String(state.size);
  }

  let listFailed = false;

  async function loadList() {
    const seq = ++state.listSeq;
    const q = new URLSearchParams({
      status: state.status, modelNo: state.modelNo, page: String(state.page), size: String(state.size),
      ...list.query(),
    });
    try {
      const data = await api('GET', `/api/models/list?${q}`);
      if (seq !== state.listSeq) return;
      if (data.totalPages > 0 && state.page >= data.totalPages) {
        state.page = data.totalPages - 1; // the last page emptied under us
        saveQuery();
        await loadList();
        return;
      }
      state.models = data.content;
      state.totalElements = data.totalElements;
      state.totalPages = data.totalPages;
      state.loaded = true;
      listFailed = false;
      $('#last-updated').textContent = `갱신 ${new Date().toLocaleTimeString('ko-KR', { hour12: false, timeZone: displayTimeZone() })}`;
      if ($('#banner').dataset.kind === 'list') hideBanner();
      renderTable();
    } catch (err) {
      if (seq !== state.listSeq) return;
      listFailed = true;
      showBanner(`모델 목록을 불러오지 못했습니다. ${plainFailure(err)}`, 'list');
    }
  }

  function anyActive() {
    if (state.inflight.size > 0 || Date.now() < state.watchUntil) return true;
    if (state.models.some((m) => m.statusCd === 'IN_PROGRESS')) return true;
    const d = state.panel && state.panel.detail;
    return Boolean(d && d.statusCd === 'IN_PROGRESS');
  }

  function schedule() {
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
    const active = anyActive();
    $('#live-indicator').hidden = !active;
    let delay = null;
    if (listFailed) delay = POLL_RETRY_MS;
    else if (active) delay = document.hidden ? POLL_HIDDEN_MS : POLL_ACTIVE_MS;
    if (delay !== null) state.pollTimer = setTimeout(tick, delay);
  }

  let ticking = false;
  async function tick() {
    if (ticking) return;
    ticking = true;
    try {
      await loadList();
      if (state.panel) await refreshPanel();
    } finally {
      ticking = false;
      schedule();
    }
  }

  function refreshNow() {
    clearTimeout(state.pollTimer);
    return tick();
  }

  // ---- banner and toasts -------------------------------------------------------------------

  function showBanner(text, kind = 'command') {
    const banner = $('#banner');
    $('#banner-text').textContent = text;
    banner.dataset.kind = kind;
    banner.hidden = false;
  }

  function hideBanner() {
    $('#banner').hidden = true;
    $('#banner').dataset.kind = '';
  }

  function toast(text, isError = false) {
    const el = document.createElement('div');
    el.className = `toast${isError ? ' toast-error' : ''}`;
    el.textContent = text;
    $('#toasts').append(el);
    setTimeout(() => el.remove(), 3500);
  }

  // ---- focus: dialogs, the panel, redrawn rows ---------------------------------------------

  // A redraw replaces a row's (or a panel section's) elements, and a dialog or the panel closes:
  // the keyboard focus goes back to the same control, found again by what it does, so it never
  // falls to <body> (a screen reader would start over at the top of the page).
  const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), '
    + 'select:not([disabled]), textarea:not([disabled]), summary, [tabindex]:not([tabindex="-1"])';

  function isShown(el) {
    return el.isConnected && el.getClientRects().length > 0 && !el.closest('[inert]');
  }

  function focusIsLost() {
    const el = document.activeElement;
    return !el || el === document.body || !isShown(el);
  }

  /** How to find `el` again after a redraw: where it is, what it does, which model it is for. */
  function focusKey(el) {
    if (!el || el === document.body || !(el instanceof HTMLElement)) return null;
    const scope = el.closest('#panel') ? '#panel' : el.closest('#model-table') ? '#model-table' : null;
    const holder = el.closest('[data-uuid]');
    const uuid = el.dataset.uuid || (holder && holder.dataset.uuid) || null;
    let selector = null;
    if (el.id) selector = `#${CSS.escape(el.id)}`;
    else if (el.dataset.cmd) selector = `[data-cmd="${CSS.escape(el.dataset.cmd)}"][data-uuid="${CSS.escape(uuid || '')}"]`;
    else if (el.dataset.logJob !== undefined) selector = `[data-log-job="${CSS.escape(el.dataset.logJob)}"]`;
    else if (el.dataset.download) selector = `[data-download="${CSS.escape(el.dataset.download)}"]`;
    else if (el.matches('a[href]')) selector = `a[href="${CSS.escape(el.getAttribute('href'))}"]`;
    return { el, scope, selector, uuid };
  }

  function focusKeyWithin(container) {
    const el = document.activeElement;
    return container && el && container.contains(el) ? focusKey(el) : null;
  }

  /** Focus the control `key` names, or its equivalent after a redraw; when a command changed
   * the state and that button is gone, the model's first action (else its link). */
  function restoreFocus(key) {
    if (!key) return;
    const root = (key.scope && $(key.scope)) || document;
    const candidates = [key.el];
    if (key.selector) candidates.push(root.querySelector(key.selector));
    if (key.uuid) {
      const u = CSS.escape(key.uuid);
      candidates.push(root.querySelector(`[data-actions="${u}"] .btn`));
      candidates.push(root.querySelector(`a.model-link[href="#/models/${u}"]`));
    }
    const target = candidates.find((el) => el && isShown(el));
    if (target) target.focus();
  }

  // Each <dialog> gives the focus back to what opened it, after Esc too.
  const dialogOpeners = new WeakMap();

  function showDialog(dlg, first) {
    if (!dlg.open) {
      dialogOpeners.set(dlg, focusKey(document.activeElement));
      dlg.showModal();
    }
    if (first) first.focus();
  }

  function wireDialogFocus() {
    for (const dlg of $$('dialog')) {
      dlg.addEventListener('close', () => {
        const opener = dialogOpeners.get(dlg);
        dialogOpeners.delete(dlg);
        // The opener's row may be redrawn right after; restore now and once more after it.
        restoreFocus(opener);
        requestAnimationFrame(() => { if (focusIsLost()) restoreFocus(opener); });
      });
    }
  }

  /** While the panel is open the page behind it is inert: no focus, no clicks, not read. */
  function setBackgroundInert(on) {
    for (const el of [$('header.topbar'), $('main')]) el.inert = on;
  }

  function before(a, b) {
    return Boolean(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
  }

  /** Tab and Shift+Tab go round inside the open dialog (or the panel), never behind it. */
  function trapTab(ev) {
    if (ev.key !== 'Tab') return;
    const box = document.querySelector('dialog[open]') || (state.panel ? $('#panel') : null);
    if (!box) return;
    const items = $$(FOCUSABLE, box).filter(isShown);
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    const at = document.activeElement;
    if (!box.contains(at)) {
      ev.preventDefault();
      (ev.shiftKey ? last : first).focus();
    } else if (ev.shiftKey && (at === first || (!items.includes(at) && before(at, first)))) {
      ev.preventDefault();
      last.focus();
    } else if (!ev.shiftKey && at === last) {
      ev.preventDefault();
      first.focus();
    }
  }

  // ---- confirmation ------------------------------------------------------------------------

  /** Resolves to the form's values (an object) when confirmed, null when not. */
  function confirmDialog({ title, text, extraHtml = '', okLabel = '확인', okClass = 'btn-primary', onOpen = null }) {
    const dlg = $('#confirm-dialog');
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    $('#confirm-extra').innerHTML = extraHtml;
    const yes = $('#confirm-yes');
    yes.textContent = okLabel;
    yes.className = `btn ${okClass}`;
    return new Promise((resolve) => {
      const done = (value) => {
        dlg.removeEventListener('close', onClose);
        yes.removeEventListener('click', onYes);
        $('#confirm-no').removeEventListener('click', onNo);
        if (dlg.open) dlg.close();
        resolve(value);
      };
      const onYes = (ev) => {
        ev.preventDefault();
        const values = {};
        $$('#confirm-extra [name]').forEach((el) => { values[el.name] = el.value; });
        done(values);
      };
      const onNo = () => done(null);
      const onClose = () => done(null);
      dlg.addEventListener('close', onClose);
      yes.addEventListener('click', onYes);
      $('#confirm-no').addEventListener('click', onNo);
      showDialog(dlg, yes);
      if (onOpen) onOpen(dlg);
    });
  }

  // ---- commands ----------------------------------------------------------------------------

  const COMMANDS = {
    run: {
      path: (u) => `/api/train/run/${u}`, done: '학습이 시작되었습니다.', fail: '학습 실행 실패',
    },
    cancel: {
      path: (u) => `/api/train/cancel/${u}`, done: '학습이 취소되었습니다.', fail: '학습 취소 실패',
      confirm: () => ({
        title: '⏹️ 학습 취소', okLabel: '학습 취소', okClass: 'btn-danger',
        text: '학습을 취소하시겠습니까? 컨테이너를 멈추고, 마지막으로 끝난 에폭의 체크포인트를 남깁니다.',
      }),
    },
    restart: {
      path: (u) => `/api/train/restart/${u}`, done: '학습이 재시작되었습니다.', fail: '학습 재시작 실패',
      confirm: () => ({
        title: '🔄 재실행', okLabel: '처음부터 재실행', okClass: 'btn-warning',
        text: '처음부터 다시 학습을 시작하시겠습니까? 이전 산출물은 따로 보관되고, 메트릭과 Best Epoch는 초기화됩니다.',
      }),
    },
    resume: {
      path: (u) => `/api/train/resume/${u}`, done: '학습이 재개되었습니다.', fail: '학습 이어하기 실패',
      confirm: (m) => ({
        title: '▶️ 이어하기', okLabel: '이어하기', okClass: 'btn-info',
        text: `중단된 지점부터 학습을 이어가시겠습니까? Epoch ${m.progress.checkpointEpoch} 체크포인트에서 Epoch ${m.progress.checkpointEpoch + 1}부터 계속합니다.`,
      }),
    },
    testCancel: {
      path: (u) => `/api/train/test/cancel/${u}`, done: '테스트가 취소되었습니다.', fail: '테스트 취소 실패',
      confirm: () => ({
        title: '⏹️ 테스트 취소', okLabel: '테스트 취소', okClass: 'btn-danger', text: '테스트를 취소하시겠습니까?',
      }),
    },
    test: { done: '테스트가 시작되었습니다.', fail: '테스트 실행 실패' },
  };

  function findModel(uuid) {
    const d = state.panel && state.panel.detail;
    if (d && d.uuid === uuid) return d;
    return state.models.find((m) => m.uuid === uuid) || null;
  }

  function setBusy(uuid, busy) {
    if (busy) state.inflight.add(uuid); else state.inflight.delete(uuid);
    renderTable();
    if (state.panel && state.panel.uuid === uuid) renderPanel();
  }

  function mergeModel(updated) {
    const i = state.models.findIndex((m) => m.uuid === updated.uuid);
    if (i >= 0) state.models[i] = { ...state.models[i], ...updated };
    if (state.panel && state.panel.detail && state.panel.detail.uuid === updated.uuid) {
      state.panel.detail = { ...state.panel.detail, ...updated };
    }
  }

  async function testConfirmation(uuid) {
    // The epochs that have a checkpoint come with the model's detail (one request, on click).
    const detail = await api('GET', `/api/models/${uuid}`);
    const epochs = detail.checkpointEpochs || [];
    if (!epochs.length) {
      throw new ApiFailure(409, 'NO_CHECKPOINT', 'This model has no checkpoint to test.');
    }
    const best = detail.bestEpoch;
    const preferred = epochs.includes(best) ? best : epochs[epochs.length - 1];
    const options = epochs.map((e) => `<option value="${e}" ${e === preferred ? 'selected' : ''}>Epoch ${e}${e === best ? ' (Best)' : ''}</option>`).join('');
    const question = (e) => `Epoch ${e}으로 테스트를 실행하시겠습니까? 다른 에폭을 고를 수도 있습니다.`;
    const values = await confirmDialog({
      title: '🧪 테스트 실행', okLabel: '테스트 실행', okClass: 'btn-success',
      text: question(preferred),
      extraHtml: `<label>테스트할 에폭 <select name="epoch" id="test-epoch">${options}</select></label>`,
      onOpen: () => {
        $('#test-epoch').addEventListener('change', (ev) => { $('#confirm-text').textContent = question(ev.target.value); });
      },
    });
    return values ? Number(values.epoch) : null;
  }

  async function runCommand(cmd, uuid) {
    if (state.inflight.has(uuid)) return;
    if (cmd === 'results') { location.hash = `#/models/${uuid}/results`; return; }
    if (cmd === 'sync') { await syncStatus(uuid); return; }
    const spec = COMMANDS[cmd];
    const model = findModel(uuid);
    if (!spec || !model) return;
    const opener = focusKey(document.activeElement);
    hideBanner();
    let path = spec.path ? spec.path(uuid) : null;
    setBusy(uuid, true);
    try {
      if (cmd === 'test') {
        const epoch = await testConfirmation(uuid);
        if (epoch === null) return;
        path = `/api/train/test/run/${epoch}/${uuid}`;
      } else if (spec.confirm) {
        const ok = await confirmDialog(spec.confirm(model));
        if (!ok) return;
      }
      const data = await api('POST', path, { body: {}, idempotencyKey: newUuid() });
      mergeModel(data);
      toast(spec.done);
    } catch (err) {
      showBanner(`${spec.fail} — ${plainFailure(err)}`);
      if (err.code === 'UNAUTHORIZED') openTokenDialog();
    } finally {
      state.watchUntil = Date.now() + AFTER_COMMAND_MS;
      setBusy(uuid, false);
      await refreshNow();
      if (focusIsLost()) restoreFocus(opener);
    }
  }

  async function syncStatus(uuid) {
    setBusy(uuid, true);
    try {
      const data = await api('POST', `/api/train/status/${uuid}`, { body: {} });
      mergeModel(data);
      toast('상태를 동기화했습니다.');
    } catch (err) {
      showBanner(`상태 동기화 실패 — ${plainFailure(err)}`);
    } finally {
      state.watchUntil = Date.now() + AFTER_COMMAND_MS;
      setBusy(uuid, false);
      await refreshNow();
    }
  }

  // ---- model view (#/models/<uuid>) --------------------------------------------------------

  function route() {
    if (list.route(location.hash)) { closePanel(false); return; }
    const match = /^#\/models\/([0-9a-fA-F-]{36})(?:\/(\w+))?/.exec(location.hash);
    if (!match) { closePanel(false); return; }
    const [, uuid, section] = match;
    if (!state.panel || state.panel.uuid !== uuid) openPanel(uuid, section);
    else if (section) scrollToSection(section);
  }

  function openPanel(uuid, section) {
    // Straight from another model's view (back/forward, an edited #/models/… link): its live
    // log must not keep its stream (LOG_FOLLOW_STREAMS is bounded) nor draw into this view.
    stopLogStream(state.panel);
    const opener = state.panel ? state.panel.opener
      : focusKey(document.activeElement) || { scope: '#model-table', selector: null, uuid };
    state.panel = { uuid, section, detail: null, metricsKey: null, logsKey: null, resultsKey: null, sections: {}, opener };
    $('#panel').hidden = false;
    $('#panel-backdrop').hidden = false;
    setBackgroundInert(true);
    $('#panel-title').textContent = '불러오는 중…';
    $('#panel-title').focus();
    $('#panel-body').innerHTML = `
      <div data-sec="error"></div>
      <section data-sec="actions"></section>
      <section><h3>진행 상황</h3><div data-sec="steps"></div></section>
      <section id="sec-curves"><h3>학습 곡선</h3><div data-sec="curves"><p class="note">불러오는 중…</p></div></section>
      <section id="sec-results"><h3>테스트 결과</h3><div data-sec="results"><p class="note">불러오는 중…</p></div></section>
      <section id="sec-logs"><h3>로그</h3><div data-sec="logs"><p class="note">불러오는 중…</p></div></section>
      <section id="sec-jobs"><h3>작업 이력 (시도)</h3><div data-sec="jobs"></div></section>
      <section><h3>모델 정보</h3><div data-sec="info"></div></section>`;
    refreshPanel().then(() => {
      if (state.panel && state.panel.uuid === uuid && section) scrollToSection(section);
      schedule();
    });
  }

  function scrollToSection(section) {
    const el = $(`#sec-${section}`);
    if (el) el.scrollIntoView({ block: 'start' });
  }

  function closePanel(updateHash = true) {
    if (!state.panel) return;
    stopLogStream(state.panel);
    const { opener } = state.panel;
    state.panel = null;
    $('#panel').hidden = true;
    $('#panel-backdrop').hidden = true;
    setBackgroundInert(false);
    restoreFocus(opener);
    if (updateHash && location.hash) {
      history.pushState(null, '', `${location.pathname}${location.search}`);
    }
    schedule();
  }

  function setSection(name, html) {
    const p = state.panel;
    if (!p || p.sections[name] === html) return;
    const el = $(`[data-sec="${name}"]`, $('#panel-body'));
    if (!el) return;
    p.sections[name] = html;
    const focused = focusKeyWithin(el);
    el.innerHTML = html;
    if (focused) restoreFocus(focused);
  }

  async function refreshPanel() {
    const p = state.panel;
    if (!p) return;
    const uuid = p.uuid;
    let detail;
    try {
      detail = await api('GET', `/api/models/${uuid}`);
    } catch (err) {
      if (state.panel !== p) return;
      $('#panel-title').textContent = '모델을 불러오지 못했습니다';
      setSection('error', `<div class="errbox sev-error">${esc(plainFailure(err))}</div>`);
      return;
    }
    if (state.panel !== p) return;
    p.detail = detail;
    mergeModel(detail);
    renderPanel();
    renderTable();
    const jobs = detail.jobs || [];
    const lastJob = jobs[jobs.length - 1];
    const metricsKey = `${detail.progress.epochsDone}|${detail.step1Status}|${detail.currentAttemptId}|${detail.bestEpoch}`;
    const logsKey = `${p.logJobId || ''}|${jobs.map((j) => `${j.id}:${j.statusCd}`).join(',')}`;
    const resultsKey = `${detail.step2Status}|${jobs.filter((j) => j.jobType === 'EVAL' && j.statusCd === 'SUCCESS').map((j) => j.id).join(',')}`;
    const tasks = [];
    if (metricsKey !== p.metricsKey) tasks.push(loadCurves(p, detail).then(() => { p.metricsKey = metricsKey; }));
    if (logsKey !== p.logsKey) tasks.push(loadLogs(p, lastJob).then(() => { p.logsKey = logsKey; }));
    if (resultsKey !== p.resultsKey) tasks.push(loadResults(p, detail).then(() => { p.resultsKey = resultsKey; }));
    await Promise.all(tasks);
  }

  function renderPanel() {
    const p = state.panel;
    if (!p || !p.detail) return;
    const d = p.detail;
    $('#panel-title').innerHTML = `${esc(d.modelNo)} <span class="muted">${esc(d.modelVer)}</span> ${badge(d.statusCd, d.statusName)} <span class="muted">${esc(overallMessage(d))}</span>`;
    const err = explainError(d);
    const jobs = d.jobs || [];
    const lastJob = jobs[jobs.length - 1];
    const tail = err && err.showLog && lastJob ? (p.logTail || lastJob.errorMessage) : null;
    setSection('error', errorBox(err, { logTail: tail }));
    setSection('actions', actionButtons(d, { inPanel: true }));
    setSection('steps', stepsHtml(d));
    setSection('jobs', jobsHtml(d) + retryHistoryHtml(d));
    setSection('info', infoHtml(d));
  }

  function stepCard(name, code, statusName, start, end, duration, extra) {
    return `<div class="step-card">
      <div class="step-head"><span>${name}</span>${badge(code, statusName)}</div>
      <div class="step-time">
        ${start ? `시작: ${esc(start)}` : '시작 전'}${end ? `<br>종료: ${esc(end)}` : ''}${duration ? `<br>소요시간: ${esc(duration)}` : ''}
      </div>${extra || ''}</div>`;
  }

  function stepsHtml(d) {
    const p = d.progress || {};
    const s1extra = (d.step1Status === 'IN_PROGRESS' ? progressBar(d)
      : `<div class="step-time">에폭: ${p.epochsDone || 0} / ${p.totalEpoch || '-'}${p.checkpointEpoch ? ` · 체크포인트 E${p.checkpointEpoch}` : ''}</div>`)
      + (d.bestEpoch !== null && d.bestEpoch !== undefined ? `<div class="step-time"><b>Best Epoch: ${esc(d.bestEpoch)}</b></div>` : '');
    const evalJobs = (d.jobs || []).filter((j) => j.jobType === 'EVAL');
    const lastEval = evalJobs[evalJobs.length - 1];
    const s2extra = lastEval && lastEval.params && lastEval.params.epoch
      ? `<div class="step-time">테스트 에폭: ${esc(lastEval.params.epoch)}</div>` : '';
    const t = trainingTime(d);
    const total = t.duration && t.attempts > 1 ? `${t.duration} (시도 ${t.attempts}회 합계, 멈춘 사이 제외)` : t.duration;
    const s1note = t.attempts > 1 && d.step1Status === 'IN_PROGRESS' ? `<div class="step-time">${esc(t.note)}</div>` : '';
    return `<div class="steps">
      ${stepCard('학습 (Step1)', d.step1Status, d.step1StatusName, t.start, t.end, total, s1note + s1extra)}
      ${stepCard('테스트 (Step2)', d.step2Status, d.step2StatusName, d.step2StrtDttm, d.step2EndDttm, d.step2Duration, s2extra)}
    </div>`;
  }

  function jobsHtml(d) {
    const jobs = (d.jobs || []).slice().reverse();
    if (!jobs.length) return '<p class="note">아직 실행한 작업이 없습니다.</p>';
    const rows = jobs.map((j) => {
      const params = j.params || {};
      const kind = j.jobType === 'TRAIN'
        ? `학습${params.resume_from ? ` (이어하기 E${esc(params.resume_from)}~)` : ''}`
        : `테스트 (Epoch ${esc(params.epoch ?? '-')})`;
      const exit = (j.exitCode === null || j.exitCode === undefined ? '-' : esc(j.exitCode))
        + (j.containerExitCode !== null && j.containerExitCode !== undefined && j.containerExitCode !== j.exitCode
          ? `<span class="sub" title="컨테이너 자체의 종료 코드 (143: SIGTERM, 137: SIGKILL)">컨테이너 ${esc(j.containerExitCode)}</span>` : '');
      const oom = j.oomKilled ? ' <span class="badge badge-ERROR">OOM</span>' : '';
      const msg = j.errorMessage
        ? (j.errorMessage.length > 80 || j.errorMessage.includes('\n')
          ? `<details><summary>${esc(j.errorMessage.split('\n').filter(Boolean).slice(-1)[0].slice(0, 80))}</summary><div class="job-err mono">${esc(j.errorMessage)}</div></details>`
          : `<span class="job-err mono">${esc(j.errorMessage)}</span>`)
        : '';
      const current = j.id === d.currentAttemptId ? '<span class="sub">현재</span>' : '';
      const times = `<span title="대기열 등록 ${esc(j.queuedDttm || '-')}">${esc(timeRange(j.startedDttm, j.finishedDttm))}</span>`;
      return `<tr data-job="${esc(j.id)}">
        <td class="num">${esc(j.attempt)}${current}</td><td>${kind}</td><td>${jobBadge(j.statusCd)}${j.queuePosition ? `<span class="sub">대기 순번 ${esc(j.queuePosition)}</span>` : ''}</td>
        <td>${esc(j.node || '-')}${j.gpuIds && j.gpuIds.length ? `<span class="sub">GPU ${esc(j.gpuIds.join(','))}</span>` : ''}</td>
        <td class="time">${times}</td><td class="time">${esc(j.duration || '-')}</td>
        <td class="num">${exit}${oom}</td><td>${msg}</td>
        <td><button type="button" class="btn btn-plain" data-log-job="${esc(j.id)}">로그</button></td>
      </tr>`;
    }).join('');
    return `<div class="table-wrap"><table class="plain jobs">
      <thead><tr><th class="num">시도</th><th>유형</th><th>상태</th><th>노드</th><th>시작 ~ 종료</th><th>소요</th><th class="num">종료 코드</th><th>오류</th><th></th></tr></thead>
      <tbody>${rows}</tbody></table></div>`;
  }

  function infoHtml(d) {
    const res = d.resources && Object.keys(d.resources).length ? JSON.stringify(d.resources) : '기본값';
    const envPairs = Object.entries(d.env || {});
    const env = envPairs.length
      ? `<pre class="log">${esc(envPairs.map(([k, val]) => `${k}=${val}`).join('\n'))}</pre>` : '-';
    return `<dl class="kv">
      <dt>UUID</dt><dd class="mono">${esc(d.uuid)}</dd>
      <dt>학습 유형</dt><dd>${esc(d.trainTypeName || d.trainType)}</dd>
      <dt>이미지</dt><dd class="mono">${esc(d.image || '-')}</dd>
      <dt>데이터셋</dt><dd>${esc(d.usesDataset === false ? '없음 (이미지가 데이터를 가져옴)' : (d.dataset || '노드 기본 (demo)'))}</dd>
      <dt>자원</dt><dd class="mono">${esc(res)}</dd>
      <dt>공유 메모리</dt><dd>${esc(d.shmSizeMb ? `${d.shmSizeMb} MB` : '기본값 (메모리 한도의 1/2, 최소 1024 MB)')}</dd>
      <dt>네트워크</dt><dd>${d.network ? '허용 (bridge)' : '없음'}</dd>
      <dt>환경 변수</dt><dd>${env}</dd>
      <dt>멈춤 감지</dt><dd>${d.stallTimeoutS === null || d.stallTimeoutS === undefined ? '노드 기본값' : (d.stallTimeoutS === 0 ? '끔' : `${esc(d.stallTimeoutS)}초`)}</dd>
      <dt>우선순위</dt><dd data-priority>${esc(d.priority ?? 0)} <span class="hint">높을수록 먼저 시작 (같으면 먼저 요청한 순서)</span></dd>
      <dt>등록</dt><dd>${esc(d.createdDttm || '-')}</dd>
      <dt>메모</dt><dd>${esc(d.memo || '-')}</dd>
      <dt>하이퍼파라미터</dt><dd><pre class="log">${esc(JSON.stringify(d.params || {}, null, 2))}</pre></dd>
    </dl>`;
  }

  // The log view: the stored tail of an ended job; the whole log, live, while a job runs
  // (GET …/logs?follow=1, server-sent events: EventSource resumes with Last-Event-ID by itself
  // when the server ends a stream after LOG_FOLLOW_MAX_S, and `end` says the container ended).
  const LIVE_LOG_LINES = 2000;

  function stopLogStream(p) {
    if (p && p.logStream) {
      p.logStream.source.close();
      p.logStream = null;
    }
  }

  function startLogStream(p, data) {
    if (p.logStream && p.logStream.jobId === data.jobId) return;
    stopLogStream(p);
    const stream = { jobId: data.jobId, lines: [], source: new EventSource(data.streamUrl) };
    p.logStream = stream;
    let pending = false;
    const draw = () => {
      pending = false;
      const pre = p.logStream === stream && document.querySelector('#panel-body pre[data-log-live]');
      if (!pre) return;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = stream.lines.join('\n');
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    };
    stream.source.onmessage = (ev) => {
      stream.lines.push(ev.data);
      if (stream.lines.length > LIVE_LOG_LINES) stream.lines.splice(0, stream.lines.length - LIVE_LOG_LINES);
      if (!pending) { pending = true; requestAnimationFrame(draw); }
    };
    stream.source.onerror = () => {
      // A refused stream (e.g. 503: the API serves LOG_FOLLOW_STREAMS at once) is not retried
      // by EventSource: say so, and let the next refresh of the view try again.
      if (stream.source.readyState !== EventSource.CLOSED || stream.ended) return;
      if (p.logStream === stream) p.logStream = null;
      p.logsKey = null;
      const note = document.querySelector('#panel-body [data-log-live-note]');
      if (note) note.textContent = '⚠️ 실시간 로그 연결이 끊겼습니다. 잠시 후 다시 연결합니다.';
    };
    stream.source.addEventListener('end', () => {
      stream.source.close();
      stream.ended = true;
      const note = document.querySelector('#panel-body [data-log-live-note]');
      if (note) note.textContent = '✔ 컨테이너가 종료되었습니다. 전체 로그는 다운로드할 수 있습니다.';
    });
  }

  async function loadLogs(p, lastJob) {
    const jobId = p.logJobId;
    if (!lastJob && !jobId) { setSection('logs', '<p class="note">아직 실행한 작업이 없습니다.</p>'); return; }
    try {
      const data = await api('GET', `/api/models/${p.uuid}/logs${jobId ? `?jobId=${jobId}` : ''}`);
      if (state.panel !== p) return;
      p.logTail = data.logTail;
      const download = data.downloadUrl
        ? ` <a href="${esc(data.downloadUrl)}" class="model-link" data-log-download download>전체 로그 다운로드</a>` : '';
      const head = data.jobId
        ? `<p class="note">시도 ${esc(data.attempt)} (${data.jobType === 'EVAL' ? '테스트' : '학습'}, 작업 #${esc(data.jobId)}) ${jobBadge(data.statusCd)}${jobId ? ' <button type="button" class="btn btn-plain" data-log-job="">현재 작업 로그</button>' : ''}${download}</p>` : '';
      if (data.running && data.streamUrl) {
        const live = p.logStream && p.logStream.jobId === data.jobId ? p.logStream.lines.join('\n') : '';
        setSection('logs', `${head}<p class="note" data-log-live-note>● 실행 중 — 로그를 실시간으로 보여 줍니다 (최근 ${LIVE_LOG_LINES}줄).</p><pre class="log log-live" data-log-live>${esc(live)}</pre>`);
        startLogStream(p, data);
        renderPanel();
        return;
      }
      stopLogStream(p);
      const note = data.note ? `<p class="note" data-log-note>ℹ️ ${esc(data.note)}</p>` : '';
      const body = data.logTail ? `<pre class="log" data-log>${esc(data.logTail)}</pre>` : '';
      setSection('logs', head + note + body);
      renderPanel();
    } catch (err) {
      if (state.panel !== p) return;
      setSection('logs', `<p class="note">로그를 불러오지 못했습니다: ${esc(plainFailure(err))}</p>`);
    }
  }

  async function loadResults(p, d) {
    const hasSuccess = (d.jobs || []).some((j) => j.jobType === 'EVAL' && j.statusCd === 'SUCCESS');
    if (!hasSuccess) {
      const msg = d.step1Status === 'COMPLETED'
        ? (d.step2Status === 'IN_PROGRESS' ? '테스트 진행 중…' : '아직 테스트 결과가 없습니다. [🧪 테스트 실행]으로 원하는 에폭을 테스트하세요.')
        : '학습이 완료되면 테스트할 수 있습니다.';
      setSection('results', `<p class="note">${msg}</p>`);
      return;
    }
    try {
      const r = await api('GET', `/api/models/${p.uuid}/results`);
      if (state.panel !== p) return;
      setSection('results', resultsHtml(p.uuid, r, d));
      shadeConfusion();
    } catch (err) {
      if (state.panel !== p) return;
      setSection('results', `<p class="note">테스트 결과를 불러오지 못했습니다: ${esc(plainFailure(err))}</p>`);
    }
  }

  function resultsHtml(uuid, r, d) {
    const s = r.summary || {};
    const head = `<p class="note">작업 #${esc(r.jobId)} · Epoch ${esc(r.epoch ?? '-')} · ${esc(r.finishedDttm || '')}${d.step2Status !== 'COMPLETED' ? ' · (가장 최근에 성공한 테스트)' : ''}</p>`;
    const cards = `<dl class="kv" data-test-metrics>
      <dt>test_loss</dt><dd>${esc(fmtNum(s.test_loss ?? (r.rows[0] || {}).test_loss))}</dd>
      <dt>test_accuracy</dt><dd><b>${esc(fmtNum(s.test_accuracy ?? (r.rows[0] || {}).test_accuracy))}</b></dd>
      ${s.n_samples !== undefined ? `<dt>샘플 수</dt><dd>${esc(s.n_samples)}</dd>` : ''}
    </dl>`;
    let csvTable = '';
    if (r.columns && r.columns.length) {
      csvTable = `<h4>test.csv</h4><div class="table-wrap"><table class="plain" data-test-csv><thead><tr>${r.columns.map((c) => `<th class="num">${esc(c)}</th>`).join('')}</tr></thead>
        <tbody>${r.rows.map((row) => `<tr>${r.columns.map((c) => `<td class="num">${esc(fmtNum(row[c]))}</td>`).join('')}</tr>`).join('')}</tbody></table></div>`;
    }
    let perClass = '';
    if (s.per_class && typeof s.per_class === 'object') {
      perClass = `<h4>클래스별 정확도</h4><table class="plain"><thead><tr><th>클래스</th><th class="num">샘플</th><th class="num">정답</th><th class="num">정확도</th></tr></thead><tbody>${
        Object.entries(s.per_class).map(([c, v]) => `<tr><td>${esc(c)}</td><td class="num">${esc(v.total ?? '-')}</td><td class="num">${esc(v.correct ?? '-')}</td><td class="num">${esc(fmtNum(v.accuracy))}</td></tr>`).join('')
      }</tbody></table>`;
    }
    let confusion = '';
    if (Array.isArray(s.confusion_matrix) && Array.isArray(s.classes)) {
      const max = Math.max(1, ...s.confusion_matrix.flat());
      confusion = `<h4>혼동 행렬 <span class="hint">(행: 실제, 열: 예측)</span></h4><table class="plain confusion"><thead><tr><th></th>${s.classes.map((c) => `<th class="num">${esc(c)}</th>`).join('')}</tr></thead><tbody>${
        s.confusion_matrix.map((row, i) => `<tr><th>${esc(s.classes[i])}</th>${row.map((v) => `<td class="num" data-shade="${(v / max).toFixed(3)}">${esc(v)}</td>`).join('')}</tr>`).join('')
      }</tbody></table>`;
    }
    const problems = r.problems && r.problems.length ? `<p class="note">⚠️ ${esc(r.problems.join(' '))}</p>` : '';
    const download = r.downloadAvailable
      ? `<p><a class="btn btn-plain" href="/api/models/${esc(uuid)}/results/download" download data-download="${esc(uuid)}">⬇️ 결과 ZIP 다운로드</a></p>`
      : '<p class="note">결과 ZIP 파일이 없습니다.</p>';
    return head + cards + download + csvTable + perClass + confusion + problems;
  }

  function shadeConfusion() {
    $$('[data-shade]', $('#panel-body')).forEach((td) => {
      const a = Number(td.dataset.shade);
      td.style.background = `rgba(25, 118, 210, ${(0.08 + a * 0.55).toFixed(3)})`;
      if (a > 0.6) td.style.color = '#fff';
    });
  }

  // ---- curves ------------------------------------------------------------------------------

  async function getMetrics(uuid, split) {
    try {
      return await api('GET', `/api/models/${uuid}/metrics?split=${split}&maxPoints=${MAX_POINTS}`);
    } catch (err) {
      if (err.status === 404 && err.code !== 'MODEL_NOT_FOUND') return { split, columns: [], points: [], total: 0, missing: true };
      throw err;
    }
  }

  async function loadCurves(p, d) {
    let train; let val; let summary = null;
    try {
      [train, val] = await Promise.all([getMetrics(p.uuid, 'train'), getMetrics(p.uuid, 'val')]);
      try { summary = await api('GET', `/api/models/${p.uuid}/metrics/summary`); } catch (err) { summary = null; }
    } catch (err) {
      if (state.panel !== p) return;
      setSection('curves', `<p class="note">메트릭을 불러오지 못했습니다: ${esc(plainFailure(err))}</p>`);
      return;
    }
    if (state.panel !== p) return;
    if (!train.points.length && !val.points.length) {
      const why = d.step1Status === 'IN_PROGRESS' ? '첫 에폭이 끝나면 곡선이 그려집니다.' : '아직 메트릭이 없습니다.';
      setSection('curves', `<p class="note" data-no-metrics>${why}</p>`);
      return;
    }
    const groups = metricGroups(train, val);
    // best_epoch is set when training completes; while it runs the API offers the best so far.
    const final = d.bestEpoch !== null && d.bestEpoch !== undefined;
    const best = final ? { epoch: d.bestEpoch, final: true } : provisionalBest(summary, train, val);
    const note = [train, val].filter((m) => m.downsampled)
      .map((m) => `${m.split}: ${m.total}개 중 ${m.points.length}개 점 (${m.method || '축소'})`).join(' · ');
    const container = document.createElement('div');
    container.className = 'charts';
    for (const g of groups) container.append(zoomableChart(g, best));
    const sec = $('[data-sec="curves"]', $('#panel-body'));
    if (!sec) return;
    sec.innerHTML = '';
    p.sections.curves = null;
    if (note) sec.insertAdjacentHTML('beforeend', `<p class="note">${esc(note)}</p>`);
    sec.append(container);
    sec.insertAdjacentHTML('beforeend', summaryHtml(summary, train, val, best));
  }

  function provisionalBest(summary, train, val) {
    const candidates = [summary && summary.bestEpoch, val.bestEpoch, train.bestEpoch];
    const epoch = candidates.find((e) => typeof e === 'number');
    return epoch === undefined ? null : { epoch, final: false };
  }

  const METRIC_TITLES = { loss: '손실 (loss)', accuracy: '정확도 (accuracy)', lr: '학습률 (lr)' };
  const TRAIN_COLOR = '#1976d2';
  const VAL_COLOR = '#f57c00';
  const EXTRA_COLORS = ['#388e3c', '#8e24aa', '#00897b', '#6d4c41', '#c2185b'];

  function seriesOf(metrics, column) {
    return metrics.points
      .filter((pt) => typeof pt[column] === 'number' && Number.isFinite(pt[column]) && typeof pt.epoch === 'number')
      .map((pt) => [pt.epoch, pt[column]]);
  }

  function metricColumns(m) {
    return (m.columns || []).filter((c) => c !== 'epoch' && c !== 'step');
  }

  function metricGroups(train, val) {
    const groups = new Map();
    const add = (key, s) => {
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(s);
    };
    const trainCols = metricColumns(train);
    for (const c of trainCols) add(c, { name: `train ${c}`, color: TRAIN_COLOR, data: seriesOf(train, c) });
    for (const c of metricColumns(val)) {
      const base = c.startsWith('val_') ? c.slice(4) : c;
      const key = trainCols.includes(base) ? base : c;
      add(key, { name: c.startsWith('val_') ? c : `val ${c}`, color: VAL_COLOR, data: seriesOf(val, c), dashed: true, isVal: true });
    }
    let extra = 0;
    return Array.from(groups.entries())
      .map(([key, series]) => {
        if (series.length === 1 && !series[0].isVal && series[0].color === TRAIN_COLOR && !['loss', 'accuracy'].includes(key)) {
          series[0].color = EXTRA_COLORS[extra++ % EXTRA_COLORS.length];
        }
        return { key, title: METRIC_TITLES[key] || key, series: series.filter((s) => s.data.length) };
      })
      .filter((g) => g.series.length);
  }

  /** A line chart of one metric: train (solid) and val (dashed), the best epoch marked. */
  function lineChart(group, best) {
    const bestEpoch = best ? best.epoch : null;
    const W = 460; const H = 230;
    const M = { l: 52, r: 14, t: 16, b: 30 };
    const all = group.series.flatMap((s) => s.data);
    let xmin = Math.min(...all.map((p) => p[0])); let xmax = Math.max(...all.map((p) => p[0]));
    if (bestEpoch !== null && bestEpoch !== undefined) { xmin = Math.min(xmin, bestEpoch); xmax = Math.max(xmax, bestEpoch); }
    if (xmin === xmax) { xmin -= 1; xmax += 1; }
    let ymin = Math.min(...all.map((p) => p[1])); let ymax = Math.max(...all.map((p) => p[1]));
    const pad = (ymax - ymin) * 0.08 || Math.abs(ymax) * 0.1 || 1;
    ymin -= pad; ymax += pad;
    const X = (x) => M.l + ((x - xmin) / (xmax - xmin)) * (W - M.l - M.r);
    const Y = (y) => H - M.b - ((y - ymin) / (ymax - ymin)) * (H - M.t - M.b);

    const wrap = document.createElement('div');
    wrap.className = 'chart';
    wrap.dataset.metric = group.key;
    const title = document.createElement('div');
    title.className = 'chart-title';
    title.textContent = group.title;
    wrap.append(title);
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': group.title });

    const grid = svg('g', { class: 'grid' });
    const axes = svg('g', { class: 'axis' });
    for (const t of niceTicks(ymin, ymax, 5)) {
      if (t < ymin || t > ymax) continue;
      grid.append(svg('line', { x1: M.l, x2: W - M.r, y1: Y(t), y2: Y(t) }));
      root.append(svg('text', { x: M.l - 6, y: Y(t) + 3.5, 'text-anchor': 'end' }, String(Number(t.toPrecision(6)))));
    }
    const xt = niceTicks(xmin, xmax, Math.min(8, Math.max(1, Math.round(xmax - xmin)))).filter((t) => Number.isInteger(t));
    for (const t of xt) {
      if (t < xmin || t > xmax) continue;
      axes.append(svg('line', { x1: X(t), x2: X(t), y1: H - M.b, y2: H - M.b + 4 }));
      root.append(svg('text', { x: X(t), y: H - M.b + 15, 'text-anchor': 'middle' }, String(t)));
    }
    axes.append(svg('line', { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
    axes.append(svg('line', { x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }));
    root.append(grid, axes);
    root.append(svg('text', { x: W - M.r, y: H - 2, 'text-anchor': 'end' }, 'epoch'));

    if (bestEpoch !== null && bestEpoch !== undefined) {
      const bx = X(bestEpoch);
      root.append(svg('line', { class: 'best-line', x1: bx, x2: bx, y1: M.t, y2: H - M.b, 'data-best-epoch': bestEpoch }));
      const right = bx > W - 90;
      const label = best.final ? `★ Best Epoch ${bestEpoch}` : `☆ 현재 최고 Epoch ${bestEpoch} (잠정)`;
      root.append(svg('text', { class: 'best-label', x: right ? bx - 4 : bx + 4, y: M.t + 8, 'text-anchor': right ? 'end' : 'start' }, label));
    }

    for (const s of group.series) {
      const d = s.data.map((p, i) => `${i ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' ');
      root.append(svg('path', {
        d, fill: 'none', stroke: s.color, 'stroke-width': 1.8, 'stroke-dasharray': s.dashed ? '5 3' : 'none',
        'data-series': s.name, 'stroke-linejoin': 'round',
      }));
      if (s.data.length <= 60) {
        for (const p of s.data) {
          const isBest = p[0] === bestEpoch;
          root.append(svg('circle', {
            cx: X(p[0]), cy: Y(p[1]), r: isBest ? 4.5 : 2.3, fill: isBest ? '#b7791f' : s.color,
            stroke: isBest ? '#fff' : 'none', 'stroke-width': isBest ? 1.5 : 0,
          }));
        }
      }
    }

    // hover: the nearest epoch's values
    const hoverLine = svg('line', { class: 'hover-line', y1: M.t, y2: H - M.b, visibility: 'hidden' });
    const hit = svg('rect', { x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b, fill: 'transparent' });
    root.append(hoverLine, hit);
    const tip = document.createElement('div');
    tip.className = 'chart-tip';
    tip.hidden = true;
    const epochs = Array.from(new Set(all.map((p) => p[0]))).sort((a, b) => a - b);
    hit.addEventListener('mousemove', (ev) => {
      const box = root.getBoundingClientRect();
      const sx = ((ev.clientX - box.left) / box.width) * W;
      const xv = xmin + ((sx - M.l) / (W - M.l - M.r)) * (xmax - xmin);
      let near = epochs[0];
      for (const e of epochs) if (Math.abs(e - xv) < Math.abs(near - xv)) near = e;
      hoverLine.setAttribute('x1', X(near)); hoverLine.setAttribute('x2', X(near));
      hoverLine.setAttribute('visibility', 'visible');
      const lines = [`epoch ${near}${near === bestEpoch ? ' ★' : ''}`];
      for (const s of group.series) {
        const hitPoint = s.data.find((p) => p[0] === near);
        if (hitPoint) lines.push(`${s.name}: ${fmtNum(hitPoint[1])}`);
      }
      tip.textContent = lines.join('\n');
      tip.style.whiteSpace = 'pre';
      tip.hidden = false;
      const px = (X(near) / W) * box.width;
      tip.style.left = `${Math.max(0, Math.min(px + 12, box.width - 150))}px`; // inside a narrow chart too
      tip.style.top = '28px';
    });
    hit.addEventListener('mouseleave', () => { tip.hidden = true; hoverLine.setAttribute('visibility', 'hidden'); });

    wrap.append(root, tip);
    const legend = document.createElement('div');
    legend.className = 'chart-legend';
    for (const s of group.series) {
      const item = document.createElement('span');
      const sw = document.createElement('span');
      sw.className = `swatch${s.dashed ? ' dashed' : ''}`;
      sw.style.background = s.color;
      sw.style.borderColor = s.color;
      item.append(sw, document.createTextNode(s.name));
      legend.append(item);
    }
    wrap.append(legend);
    // zoomableChart maps a drag back to epochs with these.
    Object.assign(wrap.dataset, { xmin, xmax, plotLeft: M.l / W, plotRight: (W - M.r) / W });
    hit.classList.add('zoom-hit');
    return wrap;
  }

  /** lineChart that zooms: drag across it to draw just those epochs (the y axis fits them);
   * 전체 보기 or a double-click draws it whole again. */
  function zoomableChart(group, best, range = null) {
    const inRange = (e) => !range || (e >= range[0] && e <= range[1]);
    const part = !range ? group : {
      ...group,
      series: group.series.map((s) => ({ ...s, data: s.data.filter((p) => inRange(p[0])) })).filter((s) => s.data.length),
    };
    const wrap = lineChart(part.series.length ? part : group, best && inRange(best.epoch) ? best : null);
    const again = (next) => wrap.replaceWith(zoomableChart(group, best, next));
    if (range) {
      const reset = document.createElement('button');
      reset.type = 'button';
      reset.className = 'btn btn-plain chart-reset';
      reset.textContent = '전체 보기';
      reset.addEventListener('click', () => again(null));
      $('.chart-title', wrap).append(' ', reset);
    }
    const hit = $('.zoom-hit', wrap);
    const epochAt = (ev) => {
      const box = hit.ownerSVGElement.getBoundingClientRect();
      const { xmin, xmax, plotLeft, plotRight } = wrap.dataset;
      const f = ((ev.clientX - box.left) / box.width - plotLeft) / (plotRight - plotLeft);
      return Number(xmin) + f * (Number(xmax) - Number(xmin));
    };
    let from = null;
    hit.addEventListener('mousedown', (ev) => { from = epochAt(ev); ev.preventDefault(); });
    hit.addEventListener('mouseup', (ev) => {
      if (from === null) return;
      const to = epochAt(ev);
      const [a, b] = [Math.min(from, to), Math.max(from, to)];
      from = null;
      if (b - a >= (Number(wrap.dataset.xmax) - Number(wrap.dataset.xmin)) / 50) again([a, b]);
    });
    hit.addEventListener('mouseleave', () => { from = null; });
    hit.addEventListener('dblclick', () => { if (range) again(null); });
    return wrap;
  }

  function summaryHtml(summary, train, val, best) {
    if (!summary || typeof summary !== 'object') return '';
    const bestEpoch = best ? best.epoch : null;
    const splits = summary.splits && typeof summary.splits === 'object' ? summary.splits : summary;
    const atBest = (metrics, col) => {
      const pt = (metrics.points || []).find((p) => p.epoch === bestEpoch);
      return pt && typeof pt[col] === 'number' ? pt[col] : null;
    };
    const rows = [];
    for (const [split, metrics] of Object.entries(splits)) {
      if (!metrics || typeof metrics !== 'object') continue;
      const source = split === 'train' ? train : split === 'val' ? val : { points: [] };
      for (const [name, s] of Object.entries(metrics)) {
        if (!s || typeof s !== 'object') continue;
        const bestValue = bestEpoch !== null ? atBest(source, name) : null;
        rows.push(`<tr><td>${esc(split)}</td><td>${esc(name)}</td>
          <td class="num">${bestValue === null ? '-' : esc(fmtNum(bestValue))}</td>
          <td class="num">${esc(fmtNum(s.min))} <span class="muted">(E${esc(s.minEpoch ?? '-')})</span></td>
          <td class="num">${esc(fmtNum(s.max))} <span class="muted">(E${esc(s.maxEpoch ?? '-')})</span></td>
          <td class="num">${esc(fmtNum(s.last))} <span class="muted">(E${esc(s.lastEpoch ?? '-')})</span></td></tr>`);
      }
    }
    if (!rows.length) return '';
    return `<h4>요약</h4><div class="table-wrap"><table class="plain" data-metric-summary><thead><tr><th>구분</th><th>메트릭</th>
      <th class="num">${best && !best.final ? '현재 최고' : 'Best'} Epoch${bestEpoch !== null ? ` (${esc(bestEpoch)})` : ''}</th><th class="num">최소</th><th class="num">최대</th><th class="num">마지막</th></tr></thead>
      <tbody>${rows.join('')}</tbody></table></div>`;
  }

  // ---- create form -------------------------------------------------------------------------

  function numberOrRaw(text, integer) {
    const t = text.trim();
    if (t === '') return undefined;
    const n = Number(t);
    if (!Number.isFinite(n)) return t; // let the API name the field
    if (integer && !Number.isInteger(n)) return n;
    return n;
  }

  function markInvalidFields(message) {
    const form = $('#create-form');
    const fields = $$('[data-field]', form);
    fields.forEach((el) => el.classList.remove('invalid'));
    const camel = (text) => text.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
    for (const part of message.split('; ')) {
      const loc = part.split(':')[0].trim();
      const exact = fields.find((el) => el.dataset.field === loc || camel(el.dataset.field) === camel(loc));
      if (exact && exact.dataset.field !== 'params') { exact.classList.add('invalid'); continue; }
      // A rule across fields ("params: … val_interval must not exceed total_epoch"): the
      // field the message names first is the one to fix.
      let first = null; let at = Infinity;
      for (const el of fields) {
        const leaf = el.dataset.field.split('.').pop();
        const i = leaf.includes('_') ? part.indexOf(leaf) : -1;
        if (i >= 0 && i < at) { first = el; at = i; }
      }
      (first || exact)?.classList.add('invalid');
    }
  }

  // "KEY=VALUE" lines → {KEY: VALUE}; blank lines are skipped. A string answer says what
  // is wrong with which line (the API checks the names and values themselves).
  function parseEnv(text) {
    const env = {};
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i += 1) {
      const line = lines[i].replace(/\r$/, '');
      if (!line.trim()) continue;
      const at = line.indexOf('=');
      if (at <= 0) return `${i + 1}번째 줄 "${line}": KEY=VALUE 형식이 아닙니다.`;
      env[line.slice(0, at).trim()] = line.slice(at + 1);
    }
    return env;
  }

  async function submitCreate(ev) {
    ev.preventDefault();
    const form = $('#create-form');
    const errBox = $('#create-error');
    errBox.hidden = true;
    $$('.invalid', form).forEach((el) => el.classList.remove('invalid'));
    const v = (name) => form.elements[name].value;
    let extra = {};
    if (v('extra').trim()) {
      try {
        extra = JSON.parse(v('extra'));
        if (!extra || typeof extra !== 'object' || Array.isArray(extra)) throw new Error('not an object');
      } catch (err) {
        errBox.textContent = 'params (기타 하이퍼파라미터): 올바른 JSON 객체가 아닙니다. 예: {"lr": 0.1}';
        errBox.hidden = false;
        form.elements.extra.classList.add('invalid');
        return;
      }
    }
    const params = { ...extra };
    for (const [name, integer] of [['total_epoch', true], ['val_interval', true], ['epoch_seconds', false]]) {
      const value = numberOrRaw(v(name), integer);
      if (value !== undefined) params[name] = value;
    }
    const resources = {};
    for (const name of ['gpus', 'memory_mb']) {
      const value = numberOrRaw(v(name), true);
      if (value !== undefined) resources[name] = value;
    }
    const body = { modelNo: v('modelNo'), modelVer: v('modelVer').trim(), trainType: v('trainType'), params, resources };
    if (v('memo').trim()) body.memo = v('memo').trim();
    if (form.elements.noDataset.checked) body.dataset = null; // nothing mounted
    else if (v('dataset').trim()) body.dataset = v('dataset').trim();
    if (v('image').trim()) body.image = v('image').trim();
    const shm = numberOrRaw(v('shmSizeMb'), true);
    if (shm !== undefined) body.shmSizeMb = shm;
    if (form.elements.network.checked) body.network = true;
    const env = parseEnv(v('env'));
    if (typeof env === 'string') {
      errBox.textContent = `env (환경 변수): ${env}`;
      errBox.hidden = false;
      form.elements.env.classList.add('invalid');
      return;
    }
    if (Object.keys(env).length) body.env = env;
    const stall = numberOrRaw(v('stallTimeoutS'), true);
    if (stall !== undefined) body.stallTimeoutS = stall;
    const priority = numberOrRaw(v('priority'), true);
    if (priority !== undefined) body.priority = priority;
    const submit = $('#create-submit');
    submit.disabled = true;
    try {
      const created = await api('POST', '/api/models', { body });
      $('#create-dialog').close();
      toast(`모델이 등록되었습니다 (${created.modelNo} ${created.modelVer}).`);
      state.page = 0;
      saveQuery();
      await refreshNow();
    } catch (err) {
      errBox.textContent = err.status === 400 ? `입력값을 확인하세요 — ${err.message}` : `등록 실패 — ${plainFailure(err)}`;
      errBox.hidden = false;
      if (err.status === 400) markInvalidFields(err.message);
      if (err.code === 'UNAUTHORIZED') openTokenDialog();
    } finally {
      submit.disabled = false;
    }
  }

  function openCreateDialog() {
    $('#create-error').hidden = true;
    $$('#create-form .invalid').forEach((el) => el.classList.remove('invalid'));
    showDialog($('#create-dialog'), $('#create-form').elements.modelVer);
  }

  // ---- token -------------------------------------------------------------------------------

  function openTokenDialog() {
    const dlg = $('#token-dialog');
    if (dlg.open) return;
    $('#token-input').value = localStorage.getItem(TOKEN_KEY) || '';
    showDialog(dlg, $('#token-input'));
  }

  // ---- wiring ------------------------------------------------------------------------------

  /** The zone the API writes its times in (DISPLAY_TZ), so the clock agrees with the table. */
  function displayTimeZone() {
    return document.body.dataset.displayTz || undefined;
  }

  function flowerUrl() {
    const configured = document.body.dataset.flowerUrl;
    return configured || `${location.protocol}//${location.hostname}:5555`;
  }

  function wire() {
    $('#flower-link').href = flowerUrl();
    $('#clear-filters').addEventListener('click', clearFilters);
    $('#filter-status').addEventListener('change', (ev) => { state.status = ev.target.value; state.page = 0; saveQuery(); refreshNow(); });
    $('#filter-model-no').addEventListener('change', (ev) => { state.modelNo = ev.target.value; state.page = 0; saveQuery(); refreshNow(); });
    $('#page-size').addEventListener('change', (ev) => { state.size = Number(ev.target.value); state.page = 0; saveQuery(); refreshNow(); });
    $('#pager').addEventListener('click', (ev) => {
      const btn = ev.target.closest('[data-page]');
      if (!btn || btn.disabled) return;
      state.page = Number(btn.dataset.page);
      saveQuery();
      refreshNow();
    });
    $('#refresh-btn').addEventListener('click', () => refreshNow());
    $('.banner-close').addEventListener('click', hideBanner);
    document.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button[data-cmd]');
      if (btn && btn.getAttribute('aria-disabled') === 'true') { ev.preventDefault(); return; }
      if (btn && !btn.disabled) { ev.preventDefault(); runCommand(btn.dataset.cmd, btn.dataset.uuid); return; }
      const logBtn = ev.target.closest('button[data-log-job]');
      if (logBtn && state.panel) {
        state.panel.logJobId = logBtn.dataset.logJob ? Number(logBtn.dataset.logJob) : null;
        state.panel.logsKey = null;
        const jobs = (state.panel.detail && state.panel.detail.jobs) || [];
        loadLogs(state.panel, jobs[jobs.length - 1]).then(() => scrollToSection('logs'));
      }
    });
    $('#panel-close').addEventListener('click', () => closePanel());
    $('#panel-backdrop').addEventListener('click', () => closePanel());
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && state.panel && !document.querySelector('dialog[open]')) closePanel();
      trapTab(ev);
    });
    wireDialogFocus();
    window.addEventListener('hashchange', route);
    window.addEventListener('popstate', route);
    $('#create-btn').addEventListener('click', openCreateDialog);
    $('#create-cancel').addEventListener('click', () => $('#create-dialog').close());
    $('#create-form').addEventListener('submit', submitCreate);
    $('#token-btn').addEventListener('click', openTokenDialog);
    $('#token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const value = $('#token-input').value.trim();
      if (value) localStorage.setItem(TOKEN_KEY, value); else localStorage.removeItem(TOKEN_KEY);
      $('#token-dialog').close();
      toast(value ? '토큰을 저장했습니다.' : '토큰을 지웠습니다.');
    });
    $('#token-clear').addEventListener('click', () => { $('#token-input').value = ''; });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) refreshNow(); else schedule();
    });
    window.addEventListener('focus', () => { if (!ticking && !anyActive()) refreshNow(); });
  }

  wire();
  readQuery();
  route();
  refreshNow();

  // For the end-to-end tests and for debugging from the console.
  window.trainyard = { state, explainError, allowed, refreshNow };
  // compare.js: the list's query changed (search, sort, metric column): back to page 1.
  list.onChange(() => { state.page = 0; saveQuery(); refreshNow(); });
})();
