/* trainyard dashboard — hand-written, no dependencies.
 *
 * The model table of the user document §2.2, the buttons of §5.1–5.3 / §6.1 as SPEC §4
 * resolves them, the last_error messages of §8, live polling while anything is IN_PROGRESS,
 * and a model view (#/models/<uuid>) with curves drawn as SVG.
 */
(() => {
  'use strict';

  // The helpers both pages use (common.js, loaded first).
  const {
    TOKEN_KEY, JOB_STATUS, $, $$, esc, ApiFailure, api, svg, niceTicks, t, LOCALE, fmtDuration,
  } = window.trainyard;
  // Search, sort, the metric column, row selection and the compare view (compare.js).
  const list = window.trainyardList;

  // ---- constants ---------------------------------------------------------------------------

  // User document §2.2: colours (in dashboard.css), icons and names (the catalogue's
  // status.<code>: the page names a state by its code, never by the API's Korean statusName).
  const STATUS = {
    READY: { icon: '⏸️', name: t('status.READY') },
    IN_PROGRESS: { icon: '🔄', name: t('status.IN_PROGRESS') },
    COMPLETED: { icon: '✅', name: t('status.COMPLETED') },
    STOPPED: { icon: '⚠️', name: t('status.STOPPED') },
    ERROR: { icon: '❌', name: t('status.ERROR') },
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

  // "2h 15m 0s" → "2h 15m" (the table of §2.2 shows it that way); seconds-only stays.
  function shortDuration(d) {
    return fmtDuration(d, { short: true });
  }

  // "2026-04-05 10:30:00" ~ "2026-04-05 12:45:00" → "2026-04-05 10:30 ~ 12:45"
  function timeRange(start, end) {
    if (!start) return '-';
    const s = start.slice(0, 16);
    if (!end) return `${s} ~`;
    const e = end.slice(0, 10) === start.slice(0, 10) ? end.slice(11, 16) : end.slice(0, 16);
    return `${s} ~ ${e}`;
  }

  function badge(code, extraClass = '') {
    const s = STATUS[code] || { icon: '', name: code };
    return `<span class="badge badge-${esc(code)} ${extraClass}" data-status="${esc(code)}">${s.icon} ${esc(s.name)}</span>`;
  }

  function jobBadge(code) {
    const s = JOB_STATUS[code] || { cls: 'READY', icon: '', name: code };
    return `<span class="badge badge-${s.cls}" data-job-status="${esc(code)}">${s.icon} ${esc(s.name)}</span>`;
  }

  // ---- the API -----------------------------------------------------------------------------

  // api() and ApiFailure: common.js (shared with the nodes page).

  // A failed command, in plain words, with the API's own message after it.
  // (the catalogue's fail.<code>)
  const FAILURE_HINTS = new Set([
    'STATE_CONFLICT', 'NO_CHECKPOINT', 'MODEL_NOT_FOUND', 'UNAUTHORIZED', 'INVALID_EPOCH',
    'IDEMPOTENCY_KEY_REUSED', 'INTERNAL_ERROR', 'SERVICE_UNAVAILABLE',
  ]);

  function plainFailure(err) {
    if (err.code === 'NETWORK') return err.message;
    const code = FAILURE_HINTS.has(err.code) ? err.code : (err.status >= 500 ? 'INTERNAL_ERROR' : '');
    return code ? t('fail.withServerMessage', { hint: t(`fail.${code}`), message: err.message }) : err.message;
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
    if (can.run) out.push(b('run', 'btn-primary', t('btn.run')));
    if (can.cancel) out.push(b('cancel', 'btn-danger', t('btn.cancel')));
    if (can.restart) out.push(b('restart', 'btn-warning', t('btn.restart')));
    if (can.resume) out.push(b('resume', 'btn-info', t('btn.resume')));
    if (can.test) {
      out.push(b('test', 'btn-success', m.step2Status === 'READY' ? t('btn.test') : t('btn.testAgain')));
    }
    if (can.testCancel) out.push(b('testCancel', 'btn-danger', t('btn.testCancel')));
    if (can.results) {
      if (!inPanel) out.push(b('results', 'btn-primary', t('btn.results')));
      out.push(`<a class="btn btn-plain" data-download="${u}" href="/api/models/${u}/results/download" download>${esc(t('btn.download'))}</a>`);
    }
    if (inPanel) out.push(b('sync', 'btn-plain', t('btn.sync')));
    if (busy) out.push(`<span class="muted" data-busy>${esc(t('btn.busy'))}</span>`);
    return `<div class="actions" data-actions="${u}">${out.join('')}</div>`;
  }

  // ---- last_error (§8) ---------------------------------------------------------------------

  /** The words for the step a message is about: `what` mid-sentence, `What` at its start
   * (the same word in Korean; en capitalises it). */
  function stepWords(train) {
    return train
      ? { what: t('what.train'), What: t('what.Train') }
      : { what: t('what.test'), What: t('what.Test') };
  }

  // The guide's §8 words, exactly as written there (status-guide.ko.txt §8.1 L684-694, §8.2
  // L698-716), in the catalogue as guide.<id>.title / .message / .display. `display` is §8.1's
  // front-end display column; `title`/`message`/`icon`/`sev` are §8.2's.
  // A code §8.2 leaves out takes its title from §8.1's display, its message from §8.1's
  // meaning column and the ❌ error severity.
  // Messages name the step: `{what}` is filled with the training or test step and, in ko,
  // its particle.
  const GUIDE_CODES = {
    'SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE': { icon: '⚠️', sev: 'warning', id: 'serverRestart' },
    'val.csv-lines-mismatch': { icon: '📊', sev: 'warning', id: 'valLinesMismatch' },
    'val.csv-missing': { icon: '❌', sev: 'error', id: 'valMissing' },
    'total-epoch-missing': { icon: '❌', sev: 'error', id: 'totalEpochMissing' },
    'output-dir-missing': { icon: '❌', sev: 'error', id: 'outputDirMissing' },
  };

  // Reasons of the test step (EVAL) that the guide does not list (reason.<id>).
  const TEST_REASONS = {
    'test.csv-missing': 'testCsvMissing',
    'results-zip-missing': 'resultsZipMissing',
  };

  /** The first key of `table` that `text` contains (§8.2 looks codes up so: `lastError.includes(key)`). */
  function keyIn(table, text) {
    return Object.keys(table).find((k) => text.includes(k));
  }

  /** The guide's entry for a code or reason, in explainError's shape (`text` is §8.2's message). */
  function guideEntry(text, w) {
    const key = keyIn(GUIDE_CODES, text);
    if (!key) return null;
    const g = GUIDE_CODES[key];
    return {
      sev: g.sev, icon: g.icon, title: t(`guide.${g.id}.title`, w),
      text: t(`guide.${g.id}.message`, w), display: t(`guide.${g.id}.display`, w),
    };
  }

  function explainReason(reason, w = stepWords(true)) {
    if (!reason) return '';
    const r = reason.trim();
    if (r.startsWith('metrics-parse-error')) {
      const detail = r.replace(/^metrics-parse-error:?\s*/, '');
      return t('reason.metricsParse', { detail: detail || t('reason.csvUnreadable') });
    }
    const entry = guideEntry(r, w);
    if (entry) return `${entry.display}: ${entry.text}`;
    const key = keyIn(TEST_REASONS, r);
    return key ? t(`reason.${TEST_REASONS[key]}`) : r;
  }

  const EXIT_HINTS = [1, 2, 3, 137, 143]; // exit.<n> in the catalogue

  /** A launch that ran no container (docs/dashboard.md): what happened and what to do. */
  function launchErrorText(code, w, again) {
    const retryWhenReady = (fix) => (again ? t('launch.afterFix', { fix, again }) : fix);
    switch (code) {
      case 'IMAGE_NOT_FOUND':
        return {
          title: t('launch.image.title', w),
          text: t('launch.image.text', w),
          action: again ? retryWhenReady(t('launch.image.fix')) : t('launch.image.askAdmin'),
        };
      case 'INVALID_RUNTIME_SETTINGS':
        return {
          title: t('launch.settings.title', w),
          text: t('launch.settings.text', w),
          action: t('launch.settings.action', w),
        };
      case 'DATASET_NOT_FOUND':
        return {
          title: t('launch.dataset.title', w),
          text: t('launch.dataset.text', w),
          action: retryWhenReady(t('launch.dataset.fix')),
        };
      case 'DATASET_INVALID':
        return {
          title: t('launch.datasetInvalid.title', w),
          text: t('launch.datasetInvalid.text', w),
          action: retryWhenReady(t('launch.datasetInvalid.fix')),
        };
      default: // CONTAINER_START_FAILED
        return {
          title: t('launch.start.title', w),
          text: t('launch.start.text', w),
          action: retryWhenReady(t('launch.start.fix')),
        };
    }
  }

  /** A running job the node ended (its log says more): what happened and what to change.
   * SCRATCH_LIMIT_EXCEEDED keeps the epochs done (workers/scratch.py), hence the checkpoint. */
  function endedByNode(code, w, ckptText) {
    switch (code) {
      case 'STALLED': // no log output and no progress for stallTimeoutS (workers/logcollector.py)
        return { icon: '⏳', title: t('ended.stalled.title', w), text: t('ended.stalled.text', w) };
      case 'OOM_KILLED':
        return { icon: '❌', title: t('ended.oom.title', w), text: t('ended.oom.text', w) };
      default: // SCRATCH_LIMIT_EXCEEDED
        return { icon: '💾', title: t('ended.scratch.title', w), text: t('ended.scratch.text', w) + ckptText };
    }
  }

  /** The reason after a code's colon ("…_OUTPUT_INCOMPLETE: val.csv-missing"), in the guide's words. */
  function reasonOf(err, w) {
    const reason = err.split(':').slice(1).join(':').trim();
    if (!reason) return null;
    return guideEntry(reason, w)
      || { icon: '📊', title: '', text: explainReason(reason, w), display: '' };
  }

  /** What to say about a model's last_error, or null when nothing is wrong now. */
  function explainError(m) {
    const trainCtx = m.statusCd === 'STOPPED' || m.statusCd === 'ERROR';
    const testCtx = !trainCtx && m.step1Status === 'COMPLETED'
      && (m.step2Status === 'STOPPED' || m.step2Status === 'ERROR');
    if (!trainCtx && !testCtx) return null;
    const err = (m.lastError || '').trim();
    const can = allowed(m);
    const w = stepWords(trainCtx);
    const retry = trainCtx ? (can.resume ? t('act.restartOrResume') : t('act.restart')) : t('act.testAgain');
    // After an interruption (server restart, lost node) resume comes first where it is possible:
    // §8.1 (L686) says [restart], §7 (L673) [restart] [resume]; resume is offered when a
    // checkpoint makes it possible (docs/dashboard.md, "Where the guide contradicts itself").
    const resumeFirst = trainCtx ? (can.resume ? t('act.resumeOrRestart') : t('act.restart')) : retry;
    const ckpt = m.progress && m.progress.checkpointEpoch;
    const ckptText = trainCtx
      ? (ckpt ? t('err.lastCheckpoint', { epoch: ckpt }) : t('err.noCheckpoint'))
      : '';

    if (testCtx && m.step2Status === 'STOPPED' && !/^(SERVER_RESTART|NODE_LOST)/.test(err)) {
      return { sev: 'warning', icon: '⚠️', title: t('err.testStopped.title'), text: t('err.testStopped.text'), action: retry, code: '' };
    }
    if (!err) {
      return {
        sev: m.statusCd === 'ERROR' || m.step2Status === 'ERROR' ? 'error' : 'warning',
        icon: '⚠️', title: t(m.statusCd === 'STOPPED' ? 'err.bare.stopped' : 'err.bare.error', w),
        text: t('err.bare.text', w) + ckptText, action: retry, code: '',
      };
    }
    if (err.startsWith('CANCELED_BY_USER')) {
      return {
        sev: 'warning', icon: '⚠️', title: t('err.canceled.title'),
        text: t('err.canceled.text', w) + ckptText, action: retry, code: err,
      };
    }
    if (err.startsWith('SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE')) {
      const g = guideEntry('SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE', w);
      return {
        ...g, text: g.text + ckptText, reason: reasonOf(err, w), action: resumeFirst, code: err,
      };
    }
    if (err.startsWith('NODE_LOST_OUTPUT_INCOMPLETE')) {
      return {
        sev: 'warning', icon: '⚠️', title: t('err.nodeLost.title'),
        text: t('err.nodeLost.text', w) + ckptText + t('err.nodeLost.after'),
        reason: reasonOf(err, w), action: resumeFirst, code: err,
      };
    }
    const launch = /^(IMAGE_NOT_FOUND|INVALID_RUNTIME_SETTINGS|DATASET_NOT_FOUND|DATASET_INVALID|CONTAINER_START_FAILED)\b:?\s*([\s\S]*)$/.exec(err);
    if (launch) {
      // No container ran: never the training code's fault. The buttons come from
      // allowedCommands: restart and test run are not offered while no live node has the
      // image, and never again after a node refused the model's settings.
      const [, code, reason] = launch;
      const again = trainCtx ? (can.restart ? t('act.restart') : '') : (can.test ? t('act.testAgain') : '');
      const info = launchErrorText(code, w, again);
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
        sev: 'error', icon: '❌', title: t('err.exit.title', { ...w, n }),
        text: t('err.exit.text', { hint: t(EXIT_HINTS.includes(n) ? `exit.${n}` : 'exit.other') }),
        action: retry, code: err, showLog: true,
      };
    }
    const ended = /^(STALLED|OOM_KILLED|SCRATCH_LIMIT_EXCEEDED)\b/.exec(err);
    if (ended) {
      return { sev: 'error', ...endedByNode(ended[1], w, ckptText), action: retry, code: err, showLog: true };
    }
    if (err.startsWith('OUTPUT_INCOMPLETE')) {
      const reason = err.replace(/^OUTPUT_INCOMPLETE:?\s*/, '');
      const csv = reason.startsWith('metrics-parse-error');
      const g = csv ? null : guideEntry(reason, w);
      if (g) return { ...g, action: retry, code: err, showLog: true };
      return {
        sev: 'error', icon: csv ? '📊' : '❌', title: csv ? t('err.csv.title') : t('err.output.title'),
        text: csv
          ? t('err.csv.text', { ...w, detail: reason.replace(/^metrics-parse-error:?\s*/, '') })
          : t('err.output.text', { reason: explainReason(reason) }),
        action: retry, code: err, showLog: true,
      };
    }
    if (err.startsWith('COMPLETION_FAILED') || err.startsWith('LAUNCH_FAILED')) {
      // The platform gave up after RETRY_MAX_ATTEMPTS tries (docs/workers.md, "Bounds").
      const launchFailed = err.startsWith('LAUNCH_FAILED');
      const reason = err.replace(/^[A-Z_]+:?\s*/, '');
      return {
        sev: 'error', icon: '❌', title: t(launchFailed ? 'err.launchFailed.title' : 'err.completionFailed.title', w),
        text: t(launchFailed ? 'err.launchFailed.text' : 'err.completionFailed.text', w)
          + (reason ? t('err.lastError', { reason }) : '') + t('err.askAdmin'),
        action: retry, code: err,
      };
    }
    const g = guideEntry(err, w);  // a bare §8 reason, whatever carries it
    if (g) {
      return { ...g, action: retry, code: err };
    }
    // A code this page does not know (a newer server): say so, and show it as it came.
    return { sev: 'error', icon: '⚠️', title: t('err.unknown.title'), text: err, action: retry, code: '' };
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
      ? ` <a href="#/models/${esc(uuid)}/logs" class="model-link">${esc(t('err.viewLog'))}</a>` : '';
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
      case 'READY': return t('overall.ready');
      case 'IN_PROGRESS':
        // A node has no room yet: the job waits its turn (queuePosition, 1 = next to launch).
        if (m.queuePosition) {
          return t('overall.queued', { ...stepWords(m.step2Status !== 'IN_PROGRESS'), n: m.queuePosition });
        }
        if (m.step2Status === 'IN_PROGRESS') return t('overall.testing');
        return m.step1StrtDttm || (m.progress && m.progress.epochsDone) ? t('overall.training') : t('overall.trainingWaiting');
      case 'COMPLETED':
        return ['READY', 'COMPLETED', 'STOPPED', 'ERROR'].includes(m.step2Status)
          ? t(`overall.completed.${m.step2Status}`) : t('overall.completed');
      case 'STOPPED': {
        // §7 names two stops by their cause (L580/L672, L646); any other keeps §5.1's (L358).
        const err = m.lastError || '';
        if (err.startsWith('SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE')) return t('overall.stopped.outputs');
        if (err.startsWith('CANCELED_BY_USER')) return t('overall.stopped.canceled');
        return t('overall.stopped');
      }
      case 'ERROR': return t('overall.error');
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
    const policy = `<p class="note" data-retry-policy>${esc(t('retry.policy', { max: d.retryPolicy.max, on: d.retryPolicy.on.join(', ') || '-' }))}</p>`;
    const rows = (d.jobs || []).filter((j) => j.jobType === 'TRAIN' && (j.endCause || j.retryNumber)).map((j) => `<li data-retry-attempt="${esc(j.attempt)}">
        ${esc(t('retry.attempt', { n: j.attempt }))}${j.retryNumber ? ` ${esc(t('retry.number', { n: j.retryNumber, max: d.retryPolicy.max }))}` : ''}: ${jobBadge(j.statusCd)}
        ${j.endCause ? ` ${esc(t('retry.cause'))} <b class="mono">${esc(j.endCause)}</b>` : ''}${j.retryNote ? ` <span class="muted">${esc(j.retryNote)}</span>` : ''}</li>`).join('');
    return `<div class="retry-history" data-retry-history>${policy}${rows ? `<ul>${rows}</ul>` : ''}</div>`;
  }

  function progressBar(m) {
    const p = m.progress || {};
    const total = p.totalEpoch || 0;
    const done = Math.min(p.epochsDone || 0, total);
    const pct = total ? Math.round((1000 * done) / total) / 10 : 0;
    const ckpt = p.checkpointEpoch ? t('progress.checkpoint', { epoch: p.checkpointEpoch }) : '';
    return `<div class="progress" data-progress="${esc(m.uuid)}">
      <progress max="${total || 1}" value="${done}" data-done="${done}" data-total="${total}"
        aria-label="${esc(t('progress.label'))}">${pct}%</progress>
      <span class="progress-text">${esc(t('progress.text', { done, total, pct }))}${esc(ckpt)}</span>
    </div>`;
  }

  /** The training time across the training's attempts (docs/dashboard.md): the run or restart that began
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
        ? t('time.attemptRunning', { n: attempts }) + (duration ? t('time.earlierTotal', { duration: shortDuration(duration) }) : '')
        : t('time.attemptsTotal', { n: attempts });
    }
    let title = start ? `${start} ~ ${end || ''}` : '';
    if (attempts > 1 && m.step1StrtDttm) title += t('time.lastAttempt', { start: m.step1StrtDttm, end: m.step1EndDttm || '' });
    return { start, end, duration: running && attempts > 1 ? null : duration, attempts, note, title };
  }

  function step1Cell(m) {
    const tm = trainingTime(m);
    const dur = tm.duration ? ` <span class="muted">(${esc(shortDuration(tm.duration))})</span>` : '';
    let html = badge(m.step1Status) + dur;
    if (tm.note) html += `<span class="sub" data-attempts="${esc(tm.attempts)}">${esc(tm.note)}</span>`;
    if (m.step1Status === 'IN_PROGRESS') html += progressBar(m);
    else if ((m.step1Status === 'STOPPED' || m.step1Status === 'ERROR') && m.progress && m.progress.epochsDone) {
      html += `<span class="sub">${esc(t('step1.stoppedAt', { done: m.progress.epochsDone, total: m.progress.totalEpoch }))}</span>`;
    }
    if (m.step1Status === 'COMPLETED' && m.bestEpoch !== null && m.bestEpoch !== undefined) {
      html += `<span class="sub">Best Epoch: ${esc(m.bestEpoch)}</span>`;
    }
    return html;
  }

  function step2Cell(m) {
    if (m.step2Status === 'READY' && m.step1Status !== 'COMPLETED') return '<span class="step-none">-</span>';
    const dur = m.step2Duration ? ` <span class="muted">(${esc(shortDuration(m.step2Duration))})</span>` : '';
    let html = badge(m.step2Status) + dur;
    if (m.step2Status === 'IN_PROGRESS') html += `<span class="sub">${esc(t('step2.testing'))}</span>`;
    return html;
  }

  /** GENERAL, FINE_TUNE, TRANSFER in this language (trainType.<code>); another code as it is. */
  function trainTypeName(code) {
    return ['GENERAL', 'FINE_TUNE', 'TRANSFER'].includes(code) ? t(`trainType.${code}`) : (code || '');
  }

  function modelGroupHtml(m) {
    const err = explainError(m);
    const tm = trainingTime(m);
    const u = esc(m.uuid);
    const memo = m.memo ? `<span class="sub memo" title="${esc(m.memo)}">${esc(m.memo)}</span>` : '';
    const row = `<tr class="model-row${err ? ' has-error' : ''}" data-uuid="${u}">
      <td class="cell-select" data-label="${esc(t('col.select'))}">${list.selectCell(m)}</td>
      <td><a class="model-link" href="#/models/${u}" title="${esc(t('row.details'))}">${esc(m.modelNo)}</a>
        <span class="sub">${esc(trainTypeName(m.trainType))} · #${esc(m.id)}</span></td>
      <td>${esc(m.modelVer)}${memo}</td>
      <td class="cell-metric num" data-label="${esc(t('row.metric'))}">${list.metricCell(m)}</td>
      <td class="cell-status">${badge(m.statusCd)}<span class="sub">${esc(overallMessage(m))}</span>${retryStatusLine(m)}</td>
      <td class="cell-step1" data-label="${esc(t('col.step1'))}">${step1Cell(m)}</td>
      <td class="cell-step2" data-label="${esc(t('col.step2'))}">${step2Cell(m)}</td>
      <td class="time cell-time" data-label="${esc(t('col.trainTime'))}" title="${esc(tm.title)}">${esc(timeRange(tm.start, tm.end))}</td>
      <td class="time cell-time" data-label="${esc(t('col.testTime'))}" title="${esc(m.step2StrtDttm || '')}${m.step2EndDttm ? ` ~ ${esc(m.step2EndDttm)}` : ''}">${esc(timeRange(m.step2StrtDttm, m.step2EndDttm))}</td>
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
      $('#empty-text').textContent = filtered ? t('list.emptyFiltered') : t('list.empty');
      $('#clear-filters').hidden = !filtered;
    }
    $('#total-count').textContent = state.loaded
      ? t('list.total', { n: state.totalElements.toLocaleString(LOCALE) }) : '';
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
    parts.push(`<button type="button" class="btn btn-plain" data-page="${cur - 1}" ${cur === 0 ? 'disabled' : ''} aria-label="${esc(t('pager.prev'))}">‹ ${esc(t('pager.prev'))}</button>`);
    let last = -1;
    for (const p of list) {
      if (p - last > 1) parts.push('<span class="gap">…</span>');
      parts.push(`<button type="button" class="btn btn-plain" data-page="${p}" ${p === cur ? 'aria-current="page"' : ''}>${p + 1}</button>`);
      last = p;
    }
    parts.push(`<button type="button" class="btn btn-plain" data-page="${cur + 1}" ${cur >= pages - 1 ? 'disabled' : ''} aria-label="${esc(t('pager.next'))}">${esc(t('pager.next'))} ›</button>`);
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
      $('#last-updated').textContent = t('list.updated', { time: new Date().toLocaleTimeString(LOCALE, { hour12: false, timeZone: displayTimeZone() }) });
      if ($('#banner').dataset.kind === 'list') hideBanner();
      renderTable();
    } catch (err) {
      if (seq !== state.listSeq) return;
      listFailed = true;
      showBanner(t('list.loadFailed', { failure: plainFailure(err) }), 'list');
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
  function confirmDialog({ title, text, extraHtml = '', okLabel = t('dialog.ok'), okClass = 'btn-primary', onOpen = null }) {
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
      path: (u) => `/api/train/run/${u}`, done: t('cmd.run.done'), fail: t('cmd.run.fail'),
    },
    cancel: {
      path: (u) => `/api/train/cancel/${u}`, done: t('cmd.cancel.done'), fail: t('cmd.cancel.fail'),
      confirm: () => ({
        title: t('btn.cancel'), okLabel: t('cmd.cancel.ok'), okClass: 'btn-danger',
        text: t('cmd.cancel.question'),
      }),
    },
    restart: {
      path: (u) => `/api/train/restart/${u}`, done: t('cmd.restart.done'), fail: t('cmd.restart.fail'),
      confirm: () => ({
        title: t('btn.restart'), okLabel: t('cmd.restart.ok'), okClass: 'btn-warning',
        text: t('cmd.restart.question'),
      }),
    },
    resume: {
      path: (u) => `/api/train/resume/${u}`, done: t('cmd.resume.done'), fail: t('cmd.resume.fail'),
      confirm: (m) => ({
        title: t('btn.resume'), okLabel: t('cmd.resume.ok'), okClass: 'btn-info',
        text: t('cmd.resume.question', { epoch: m.progress.checkpointEpoch, next: m.progress.checkpointEpoch + 1 }),
      }),
    },
    testCancel: {
      path: (u) => `/api/train/test/cancel/${u}`, done: t('cmd.testCancel.done'), fail: t('cmd.testCancel.fail'),
      confirm: () => ({
        title: t('btn.testCancel'), okLabel: t('cmd.testCancel.ok'), okClass: 'btn-danger', text: t('cmd.testCancel.question'),
      }),
    },
    test: { done: t('cmd.test.done'), fail: t('cmd.test.fail') },
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
    const question = (e) => t('cmd.test.question', { epoch: e });
    const values = await confirmDialog({
      title: t('btn.test'), okLabel: t('cmd.test.ok'), okClass: 'btn-success',
      text: question(preferred),
      extraHtml: `<label>${esc(t('cmd.test.epoch'))} <select name="epoch" id="test-epoch">${options}</select></label>`,
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
      toast(t('cmd.sync.done'));
    } catch (err) {
      showBanner(`${t('cmd.sync.fail')} — ${plainFailure(err)}`);
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
    const loading = `<p class="note">${esc(t('panel.loading'))}</p>`;
    $('#panel-title').textContent = t('panel.loading');
    $('#panel-title').focus();
    $('#panel-body').innerHTML = `
      <div data-sec="error"></div>
      <section data-sec="actions"></section>
      <section><h3>${esc(t('panel.progress'))}</h3><div data-sec="steps"></div></section>
      <section id="sec-curves"><h3>${esc(t('panel.curves'))}</h3><div data-sec="curves">${loading}</div></section>
      <section id="sec-results"><h3>${esc(t('panel.results'))}</h3><div data-sec="results">${loading}</div></section>
      <section id="sec-logs"><h3>${esc(t('panel.logs'))}</h3><div data-sec="logs">${loading}</div></section>
      <section id="sec-jobs"><h3>${esc(t('panel.jobs'))}</h3><div data-sec="jobs"></div></section>
      <section><h3>${esc(t('panel.info'))}</h3><div data-sec="info"></div></section>`;
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
      $('#panel-title').textContent = t('panel.loadFailed');
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
    $('#panel-title').innerHTML = `${esc(d.modelNo)} <span class="muted">${esc(d.modelVer)}</span> ${badge(d.statusCd)} <span class="muted">${esc(overallMessage(d))}</span>`;
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

  function stepCard(name, code, start, end, duration, extra) {
    return `<div class="step-card">
      <div class="step-head"><span>${esc(name)}</span>${badge(code)}</div>
      <div class="step-time">
        ${start ? esc(t('step.start', { time: start })) : esc(t('step.notStarted'))}${end ? `<br>${esc(t('step.end', { time: end }))}` : ''}${duration ? `<br>${esc(t('step.duration', { duration }))}` : ''}
      </div>${extra || ''}</div>`;
  }

  function stepsHtml(d) {
    const p = d.progress || {};
    const s1extra = (d.step1Status === 'IN_PROGRESS' ? progressBar(d)
      : `<div class="step-time">${esc(t('step.epochs', { done: p.epochsDone || 0, total: p.totalEpoch || '-' }))}${p.checkpointEpoch ? esc(t('progress.checkpoint', { epoch: p.checkpointEpoch })) : ''}</div>`)
      + (d.bestEpoch !== null && d.bestEpoch !== undefined ? `<div class="step-time"><b>Best Epoch: ${esc(d.bestEpoch)}</b></div>` : '');
    const evalJobs = (d.jobs || []).filter((j) => j.jobType === 'EVAL');
    const lastEval = evalJobs[evalJobs.length - 1];
    const s2extra = lastEval && lastEval.params && lastEval.params.epoch
      ? `<div class="step-time">${esc(t('step.testEpoch', { epoch: lastEval.params.epoch }))}</div>` : '';
    const tm = trainingTime(d);
    const total = tm.duration && tm.attempts > 1
      ? t('step.totalOfAttempts', { duration: fmtDuration(tm.duration), n: tm.attempts }) : fmtDuration(tm.duration);
    const s1note = tm.attempts > 1 && d.step1Status === 'IN_PROGRESS' ? `<div class="step-time">${esc(tm.note)}</div>` : '';
    return `<div class="steps">
      ${stepCard(t('step.step1'), d.step1Status, tm.start, tm.end, total, s1note + s1extra)}
      ${stepCard(t('step.step2'), d.step2Status, d.step2StrtDttm, d.step2EndDttm, fmtDuration(d.step2Duration), s2extra)}
    </div>`;
  }

  function jobsHtml(d) {
    const jobs = (d.jobs || []).slice().reverse();
    if (!jobs.length) return `<p class="note">${esc(t('jobs.none'))}</p>`;
    const rows = jobs.map((j) => {
      const params = j.params || {};
      const kind = j.jobType === 'TRAIN'
        ? esc(t('what.Train')) + (params.resume_from ? esc(t('jobs.resumedFrom', { epoch: params.resume_from })) : '')
        : esc(t('jobs.testOf', { epoch: params.epoch ?? '-' }));
      const exit = (j.exitCode === null || j.exitCode === undefined ? '-' : esc(j.exitCode))
        + (j.containerExitCode !== null && j.containerExitCode !== undefined && j.containerExitCode !== j.exitCode
          ? `<span class="sub" title="${esc(t('jobs.containerExitTitle'))}">${esc(t('jobs.containerExit', { code: j.containerExitCode }))}</span>` : '');
      const oom = j.oomKilled ? ' <span class="badge badge-ERROR">OOM</span>' : '';
      const msg = j.errorMessage
        ? (j.errorMessage.length > 80 || j.errorMessage.includes('\n')
          ? `<details><summary>${esc(j.errorMessage.split('\n').filter(Boolean).slice(-1)[0].slice(0, 80))}</summary><div class="job-err mono">${esc(j.errorMessage)}</div></details>`
          : `<span class="job-err mono">${esc(j.errorMessage)}</span>`)
        : '';
      const current = j.id === d.currentAttemptId ? `<span class="sub">${esc(t('jobs.current'))}</span>` : '';
      const times = `<span title="${esc(t('jobs.queuedAt', { time: j.queuedDttm || '-' }))}">${esc(timeRange(j.startedDttm, j.finishedDttm))}</span>`;
      return `<tr data-job="${esc(j.id)}">
        <td class="num">${esc(j.attempt)}${current}</td><td>${kind}</td><td>${jobBadge(j.statusCd)}${j.queuePosition ? `<span class="sub">${esc(t('jobs.queuePlace', { n: j.queuePosition }))}</span>` : ''}</td>
        <td>${esc(j.node || '-')}${j.gpuIds && j.gpuIds.length ? `<span class="sub">GPU ${esc(j.gpuIds.join(','))}</span>` : ''}</td>
        <td class="time">${times}</td><td class="time">${esc(fmtDuration(j.duration) || '-')}</td>
        <td class="num">${exit}${oom}</td><td>${msg}</td>
        <td><button type="button" class="btn btn-plain" data-log-job="${esc(j.id)}">${esc(t('jobs.log'))}</button></td>
      </tr>`;
    }).join('');
    return `<div class="table-wrap"><table class="plain jobs">
      <thead><tr><th class="num">${esc(t('jobs.col.attempt'))}</th><th>${esc(t('jobs.col.type'))}</th><th>${esc(t('jobs.col.status'))}</th><th>${esc(t('jobs.col.node'))}</th><th>${esc(t('jobs.col.time'))}</th><th>${esc(t('jobs.col.took'))}</th><th class="num">${esc(t('jobs.col.exit'))}</th><th>${esc(t('jobs.col.error'))}</th><th></th></tr></thead>
      <tbody>${rows}</tbody></table></div>`;
  }

  function infoHtml(d) {
    const res = d.resources && Object.keys(d.resources).length ? JSON.stringify(d.resources) : t('info.default');
    const envPairs = Object.entries(d.env || {});
    const env = envPairs.length
      ? `<pre class="log">${esc(envPairs.map(([k, val]) => `${k}=${val}`).join('\n'))}</pre>` : '-';
    return `<dl class="kv">
      <dt>UUID</dt><dd class="mono">${esc(d.uuid)}</dd>
      <dt>${esc(t('info.trainType'))}</dt><dd>${esc(trainTypeName(d.trainType))}</dd>
      <dt>${esc(t('info.image'))}</dt><dd class="mono">${esc(d.image || '-')}</dd>
      <dt>${esc(t('info.dataset'))}</dt><dd>${esc(d.usesDataset === false ? t('info.noDataset') : (d.dataset || t('info.nodeDataset')))}</dd>
      <dt>${esc(t('info.resources'))}</dt><dd class="mono">${esc(res)}</dd>
      <dt>${esc(t('info.shm'))}</dt><dd>${esc(d.shmSizeMb ? `${d.shmSizeMb} MB` : t('info.shmDefault'))}</dd>
      <dt>${esc(t('info.network'))}</dt><dd>${esc(d.network ? t('info.networkAllowed') : t('info.none'))}</dd>
      <dt>${esc(t('info.env'))}</dt><dd>${env}</dd>
      <dt>${esc(t('info.stall'))}</dt><dd>${esc(d.stallTimeoutS === null || d.stallTimeoutS === undefined ? t('info.nodeDefault') : (d.stallTimeoutS === 0 ? t('info.off') : t('duration.s', { s: d.stallTimeoutS })))}</dd>
      <dt>${esc(t('info.priority'))}</dt><dd data-priority>${esc(d.priority ?? 0)} <span class="hint">${esc(t('info.priorityHint'))}</span></dd>
      <dt>${esc(t('info.created'))}</dt><dd>${esc(d.createdDttm || '-')}</dd>
      <dt>${esc(t('info.memo'))}</dt><dd>${esc(d.memo || '-')}</dd>
      <dt>${esc(t('info.params'))}</dt><dd><pre class="log">${esc(JSON.stringify(d.params || {}, null, 2))}</pre></dd>
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
      if (note) note.textContent = t('log.disconnected');
    };
    stream.source.addEventListener('end', () => {
      stream.source.close();
      stream.ended = true;
      const note = document.querySelector('#panel-body [data-log-live-note]');
      if (note) note.textContent = t('log.ended');
    });
  }

  async function loadLogs(p, lastJob) {
    const jobId = p.logJobId;
    if (!lastJob && !jobId) { setSection('logs', `<p class="note">${esc(t('jobs.none'))}</p>`); return; }
    try {
      const data = await api('GET', `/api/models/${p.uuid}/logs${jobId ? `?jobId=${jobId}` : ''}`);
      if (state.panel !== p) return;
      p.logTail = data.logTail;
      const download = data.downloadUrl
        ? ` <a href="${esc(data.downloadUrl)}" class="model-link" data-log-download download>${esc(t('log.download'))}</a>` : '';
      const head = data.jobId
        ? `<p class="note">${esc(t('log.head', { attempt: data.attempt, what: t(data.jobType === 'EVAL' ? 'what.test' : 'what.train'), job: data.jobId }))} ${jobBadge(data.statusCd)}${jobId ? ` <button type="button" class="btn btn-plain" data-log-job="">${esc(t('log.currentJob'))}</button>` : ''}${download}</p>` : '';
      if (data.running && data.streamUrl) {
        const live = p.logStream && p.logStream.jobId === data.jobId ? p.logStream.lines.join('\n') : '';
        setSection('logs', `${head}<p class="note" data-log-live-note>${esc(t('log.live', { n: LIVE_LOG_LINES }))}</p><pre class="log log-live" data-log-live>${esc(live)}</pre>`);
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
      setSection('logs', `<p class="note">${esc(t('log.loadFailed', { failure: plainFailure(err) }))}</p>`);
    }
  }

  async function loadResults(p, d) {
    const hasSuccess = (d.jobs || []).some((j) => j.jobType === 'EVAL' && j.statusCd === 'SUCCESS');
    if (!hasSuccess) {
      const msg = d.step1Status === 'COMPLETED'
        ? (d.step2Status === 'IN_PROGRESS' ? t('results.testing') : t('results.none'))
        : t('results.afterTraining');
      setSection('results', `<p class="note">${esc(msg)}</p>`);
      return;
    }
    try {
      const r = await api('GET', `/api/models/${p.uuid}/results`);
      if (state.panel !== p) return;
      setSection('results', resultsHtml(p.uuid, r, d));
      shadeConfusion();
    } catch (err) {
      if (state.panel !== p) return;
      setSection('results', `<p class="note">${esc(t('results.loadFailed', { failure: plainFailure(err) }))}</p>`);
    }
  }

  function resultsHtml(uuid, r, d) {
    const s = r.summary || {};
    const head = `<p class="note">${esc(t('results.job', { job: r.jobId }))} · Epoch ${esc(r.epoch ?? '-')} · ${esc(r.finishedDttm || '')}${d.step2Status !== 'COMPLETED' ? esc(t('results.lastSuccessful')) : ''}</p>`;
    const cards = `<dl class="kv" data-test-metrics>
      <dt>test_loss</dt><dd>${esc(fmtNum(s.test_loss ?? (r.rows[0] || {}).test_loss))}</dd>
      <dt>test_accuracy</dt><dd><b>${esc(fmtNum(s.test_accuracy ?? (r.rows[0] || {}).test_accuracy))}</b></dd>
      ${s.n_samples !== undefined ? `<dt>${esc(t('results.samples'))}</dt><dd>${esc(s.n_samples)}</dd>` : ''}
    </dl>`;
    let csvTable = '';
    if (r.columns && r.columns.length) {
      csvTable = `<h4>test.csv</h4><div class="table-wrap"><table class="plain" data-test-csv><thead><tr>${r.columns.map((c) => `<th class="num">${esc(c)}</th>`).join('')}</tr></thead>
        <tbody>${r.rows.map((row) => `<tr>${r.columns.map((c) => `<td class="num">${esc(fmtNum(row[c]))}</td>`).join('')}</tr>`).join('')}</tbody></table></div>`;
    }
    let perClass = '';
    if (s.per_class && typeof s.per_class === 'object') {
      perClass = `<h4>${esc(t('results.perClass'))}</h4><table class="plain"><thead><tr><th>${esc(t('results.class'))}</th><th class="num">${esc(t('results.classSamples'))}</th><th class="num">${esc(t('results.correct'))}</th><th class="num">${esc(t('results.accuracy'))}</th></tr></thead><tbody>${
        Object.entries(s.per_class).map(([c, v]) => `<tr><td>${esc(c)}</td><td class="num">${esc(v.total ?? '-')}</td><td class="num">${esc(v.correct ?? '-')}</td><td class="num">${esc(fmtNum(v.accuracy))}</td></tr>`).join('')
      }</tbody></table>`;
    }
    let confusion = '';
    if (Array.isArray(s.confusion_matrix) && Array.isArray(s.classes)) {
      const max = Math.max(1, ...s.confusion_matrix.flat());
      confusion = `<h4>${esc(t('results.confusion'))} <span class="hint">${esc(t('results.confusionHint'))}</span></h4><table class="plain confusion"><thead><tr><th></th>${s.classes.map((c) => `<th class="num">${esc(c)}</th>`).join('')}</tr></thead><tbody>${
        s.confusion_matrix.map((row, i) => `<tr><th>${esc(s.classes[i])}</th>${row.map((v) => `<td class="num" data-shade="${(v / max).toFixed(3)}">${esc(v)}</td>`).join('')}</tr>`).join('')
      }</tbody></table>`;
    }
    const problems = r.problems && r.problems.length ? `<p class="note">⚠️ ${esc(r.problems.join(' '))}</p>` : '';
    const download = r.downloadAvailable
      ? `<p><a class="btn btn-plain" href="/api/models/${esc(uuid)}/results/download" download data-download="${esc(uuid)}">${esc(t('results.zip'))}</a></p>`
      : `<p class="note">${esc(t('results.noZip'))}</p>`;
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
      setSection('curves', `<p class="note">${esc(t('curves.loadFailed', { failure: plainFailure(err) }))}</p>`);
      return;
    }
    if (state.panel !== p) return;
    if (!train.points.length && !val.points.length) {
      const why = d.step1Status === 'IN_PROGRESS' ? t('curves.afterFirstEpoch') : t('curves.none');
      setSection('curves', `<p class="note" data-no-metrics>${esc(why)}</p>`);
      return;
    }
    const groups = metricGroups(train, val);
    // best_epoch is set when training completes; while it runs the API offers the best so far.
    const final = d.bestEpoch !== null && d.bestEpoch !== undefined;
    const best = final ? { epoch: d.bestEpoch, final: true } : provisionalBest(summary, train, val);
    const note = [train, val].filter((m) => m.downsampled)
      .map((m) => t('curves.downsampled', { split: m.split, total: m.total, n: m.points.length, method: m.method || t('curves.reduced') })).join(' · ');
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

  const METRIC_TITLES = { loss: t('metric.loss'), accuracy: t('metric.accuracy'), lr: t('metric.lr') };
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
    for (const tick of niceTicks(ymin, ymax, 5)) {
      if (tick < ymin || tick > ymax) continue;
      grid.append(svg('line', { x1: M.l, x2: W - M.r, y1: Y(tick), y2: Y(tick) }));
      root.append(svg('text', { x: M.l - 6, y: Y(tick) + 3.5, 'text-anchor': 'end' }, String(Number(tick.toPrecision(6)))));
    }
    const xt = niceTicks(xmin, xmax, Math.min(8, Math.max(1, Math.round(xmax - xmin)))).filter((tick) => Number.isInteger(tick));
    for (const tick of xt) {
      if (tick < xmin || tick > xmax) continue;
      axes.append(svg('line', { x1: X(tick), x2: X(tick), y1: H - M.b, y2: H - M.b + 4 }));
      root.append(svg('text', { x: X(tick), y: H - M.b + 15, 'text-anchor': 'middle' }, String(tick)));
    }
    axes.append(svg('line', { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
    axes.append(svg('line', { x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }));
    root.append(grid, axes);
    root.append(svg('text', { x: W - M.r, y: H - 2, 'text-anchor': 'end' }, 'epoch'));

    if (bestEpoch !== null && bestEpoch !== undefined) {
      const bx = X(bestEpoch);
      root.append(svg('line', { class: 'best-line', x1: bx, x2: bx, y1: M.t, y2: H - M.b, 'data-best-epoch': bestEpoch }));
      const right = bx > W - 90;
      const label = best.final ? `★ Best Epoch ${bestEpoch}` : t('curves.provisionalBest', { epoch: bestEpoch });
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
   * the show-all button or a double-click draws it whole again. */
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
      reset.textContent = t('chart.showAll');
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
    return `<h4>${esc(t('summary.title'))}</h4><div class="table-wrap"><table class="plain" data-metric-summary><thead><tr><th>${esc(t('summary.split'))}</th><th>${esc(t('summary.metric'))}</th>
      <th class="num">${best && !best.final ? esc(t('summary.bestSoFar')) : 'Best'} Epoch${bestEpoch !== null ? ` (${esc(bestEpoch)})` : ''}</th><th class="num">${esc(t('summary.min'))}</th><th class="num">${esc(t('summary.max'))}</th><th class="num">${esc(t('summary.last'))}</th></tr></thead>
      <tbody>${rows.join('')}</tbody></table></div>`;
  }

  // ---- create form -------------------------------------------------------------------------

  function numberOrRaw(text, integer) {
    const trimmed = text.trim();
    if (trimmed === '') return undefined;
    const n = Number(trimmed);
    if (!Number.isFinite(n)) return trimmed; // let the API name the field
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
      if (at <= 0) return t('create.envLine', { n: i + 1, line });
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
        errBox.textContent = t('create.paramsInvalid');
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
      errBox.textContent = t('create.envInvalid', { problem: env });
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
      toast(t('create.done', { modelNo: created.modelNo, modelVer: created.modelVer }));
      state.page = 0;
      saveQuery();
      await refreshNow();
    } catch (err) {
      errBox.textContent = err.status === 400 ? t('create.checkInput', { message: err.message }) : t('create.failed', { failure: plainFailure(err) });
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
      toast(value ? t('token.saved') : t('token.cleared'));
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
