/* trainyard pages' shared helpers (the dashboard at / and the nodes page at /nodes): DOM
 * lookup, escaping, the job status names and the JSON API call with the stored token.
 * Loaded (defer) before the page's own script; a plain file, so the CSP stays 'self'. */
window.trainyard = (() => {
  'use strict';

  const TOKEN_KEY = 'trainyard.apiToken'; // the dashboard's 🔑 토큰 stores it here

  // Jobs use the models' colours: QUEUED like READY, RUNNING like IN_PROGRESS, …
  const JOB_STATUS = {
    QUEUED: { cls: 'READY', icon: '⏳', name: '대기중' },
    RUNNING: { cls: 'IN_PROGRESS', icon: '🔄', name: '실행중' },
    SUCCESS: { cls: 'COMPLETED', icon: '✅', name: '성공' },
    FAILED: { cls: 'ERROR', icon: '❌', name: '실패' },
    STOPPED: { cls: 'STOPPED', icon: '⚠️', name: '중단됨' },
    CANCELED: { cls: 'STOPPED', icon: '⏹️', name: '취소' },
  };

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  function esc(value) {
    return String(value ?? '').replace(/[&<>"']/g, (c) => (
      { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  }

  class ApiFailure extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, { body, idempotencyKey } = {}) {
    const headers = { Accept: 'application/json' };
    // Every write is JSON, even one without a body: the API refuses other writes (415), which
    // is what keeps a cross-site form from running a command.
    if (method !== 'GET') headers['Content-Type'] = 'application/json';
    if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
    const token = localStorage.getItem(TOKEN_KEY);
    if (token && method !== 'GET') headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (err) {
      throw new ApiFailure(0, 'NETWORK', '서버에 연결할 수 없습니다. 서버가 실행 중인지, 네트워크를 확인하세요.');
    }
    let payload = null;
    try { payload = await response.json(); } catch (err) { payload = null; }
    if (response.ok && payload && payload.success) return payload.data;
    const error = (payload && payload.error) || {};
    throw new ApiFailure(
      response.status,
      error.code || `HTTP_${response.status}`,
      error.message || `서버가 HTTP ${response.status} 로 응답했습니다.`,
    );
  }

  // --- chart helpers (the dashboard's curves and the compare view's overlays) ---------------

  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** An SVG element with attributes and, optionally, text. */
  function svg(tag, attrs = {}, text = null) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== null) el.textContent = text;
    return el;
  }

  /** About `count` round axis ticks (1, 2 or 5 times a power of ten apart) within [min, max]. */
  function niceTicks(min, max, count) {
    if (min === max) { min -= 1; max += 1; }
    const span = max - min;
    const step0 = span / Math.max(1, count);
    const mag = 10 ** Math.floor(Math.log10(step0));
    const norm = step0 / mag;
    const step = (norm >= 5 ? 10 : norm >= 2 ? 5 : norm >= 1 ? 2 : 1) * mag;
    const first = Math.ceil(min / step) * step;
    const ticks = [];
    for (let v = first; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    return ticks;
  }

  return Object.freeze({ TOKEN_KEY, JOB_STATUS, $, $$, esc, ApiFailure, api, svg, niceTicks });
})();
