/* trainyard pages' shared helpers (the dashboard at / and the nodes page at /nodes): the
 * language and its catalogue (t), DOM lookup, escaping, the job status names and the JSON API
 * call with the stored token.
 * Loaded (defer) after the catalogues (i18n.ko.js, i18n.en.js) and before the page's own
 * script; plain files, so the CSP stays 'self'. */
window.trainyard = (() => {
  'use strict';

  const TOKEN_KEY = 'trainyard.apiToken'; // the dashboard's key button stores it here

  // ---- language (docs/dashboard.md, "Language") -------------------------------------------

  const LANG_KEY = 'trainyard.lang';
  const LANGS = ['ko', 'en'];
  const CATALOGUES = window.trainyardCatalogues || {};

  function storedLang() {
    try { return localStorage.getItem(LANG_KEY); } catch (err) { return null; }
  }

  function storeLang(lang) {
    try { localStorage.setItem(LANG_KEY, lang); } catch (err) { /* private mode: this page only */ }
  }

  /** ?lang=en|ko in the address (kept for the next visits), else the stored choice, else ko. */
  function chooseLang() {
    const asked = new URLSearchParams(location.search).get('lang');
    if (LANGS.includes(asked)) { storeLang(asked); return asked; }
    const stored = storedLang();
    return LANGS.includes(stored) ? stored : 'ko';
  }

  const LANG = chooseLang();
  const LOCALE = LANG === 'en' ? 'en-US' : 'ko-KR';
  const catalogue = CATALOGUES[LANG] || {};
  const fallback = CATALOGUES.ko || {};
  const warned = new Set();

  /** A Korean noun with its particle: the first form after a final consonant (batchim), the
   * second after a vowel, e.g. the subject particle i/ga or the object particle eul/reul. */
  function josa(word, withFinal, withoutFinal) {
    const code = word.charCodeAt(word.length - 1) - 0xac00;
    const hasFinal = code >= 0 && code <= 11171 && code % 28 !== 0;
    return word + (hasFinal ? withFinal : withoutFinal);
  }

  /** The catalogue's text for `key`, its {name} places filled from `vars`. A {name:A/B} place
   * is the catalogue language's small grammar: in ko the value with its particle (A after a
   * final consonant, B after a vowel), in en A when the value is 1 and B otherwise (a plural).
   * A key the language lacks falls back to ko (warned once on the console). */
  function t(key, vars = {}) {
    let text = catalogue[key];
    if (text === undefined) {
      if (!warned.has(key)) { warned.add(key); console.warn(`trainyard i18n: no "${LANG}" text for ${key}`); }
      text = fallback[key];
      if (text === undefined) return key;
    }
    const lang = catalogue[key] === undefined ? 'ko' : LANG;
    return text.replace(/\{(\w+)(?::([^/{}]*)\/([^/{}]*))?\}/g, (place, name, first, second) => {
      if (!Object.prototype.hasOwnProperty.call(vars, name)) return place;
      const value = String(vars[name]);
      if (first === undefined) return value;
      if (lang === 'ko') return josa(value, first, second);
      return Number(vars[name]) === 1 ? first : second;
    });
  }

  /** Template text: data-i18n (text), data-i18n-html (markup the catalogue owns) and
   * data-i18n-attr ("aria-label:key;title:key2"). The Korean in the template is the ko text
   * itself (tests/domain/test_i18n.py checks that), so ko pages look right before this runs. */
  function translatePage(root = document) {
    for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
    for (const el of root.querySelectorAll('[data-i18n-html]')) el.innerHTML = t(el.dataset.i18nHtml);
    for (const el of root.querySelectorAll('[data-i18n-attr]')) {
      for (const pair of el.dataset.i18nAttr.split(';')) {
        const [attr, key] = pair.split(':').map((part) => part.trim());
        if (attr && key) el.setAttribute(attr, t(key));
      }
    }
  }

  /** The header's language buttons (ko / en): pressed shows the current one; a click stores the
   * choice and reloads (every text is drawn once per load). */
  function wireLangSwitch() {
    for (const button of document.querySelectorAll('[data-lang]')) {
      button.setAttribute('aria-pressed', String(button.dataset.lang === LANG));
      button.addEventListener('click', () => {
        if (button.dataset.lang === LANG) return;
        storeLang(button.dataset.lang);
        const address = new URL(location.href);
        address.searchParams.delete('lang'); // an address's ?lang= would win over the click
        location.replace(address.toString());
      });
    }
  }

  document.documentElement.lang = LANG;
  translatePage();
  wireLangSwitch();

  /** The API's duration ("2h 15m 0s" written in Korean, SPEC §7) in this language; `short` drops the
   * seconds of a duration of a minute or more when they are 0 (the table of §2.2). The API
   * always writes the smaller units, so its numbers read from the right: s, m, h. */
  function fmtDuration(apiText, { short = false } = {}) {
    if (!apiText) return '';
    const nums = (String(apiText).match(/\d+/g) || []).map(Number).reverse();
    if (!nums.length) return String(apiText);
    const [s, m = null, h = null] = nums;
    if (h !== null) return short && s === 0 ? t('duration.hm', { h, m }) : t('duration.hms', { h, m, s });
    if (m !== null) return short && s === 0 ? t('duration.m', { m }) : t('duration.ms', { m, s });
    return t('duration.s', { s });
  }

  // Jobs use the models' colours: QUEUED like READY, RUNNING like IN_PROGRESS, …
  // (names: the catalogue's job.<code>)
  const JOB_STATUS = {
    QUEUED: { cls: 'READY', icon: '⏳', name: t('job.QUEUED') },
    RUNNING: { cls: 'IN_PROGRESS', icon: '🔄', name: t('job.RUNNING') },
    SUCCESS: { cls: 'COMPLETED', icon: '✅', name: t('job.SUCCESS') },
    FAILED: { cls: 'ERROR', icon: '❌', name: t('job.FAILED') },
    STOPPED: { cls: 'STOPPED', icon: '⚠️', name: t('job.STOPPED') },
    CANCELED: { cls: 'STOPPED', icon: '⏹️', name: t('job.CANCELED') },
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
      throw new ApiFailure(0, 'NETWORK', t('api.network'));
    }
    let payload = null;
    try { payload = await response.json(); } catch (err) { payload = null; }
    if (response.ok && payload && payload.success) return payload.data;
    const error = (payload && payload.error) || {};
    throw new ApiFailure(
      response.status,
      error.code || `HTTP_${response.status}`,
      error.message || t('api.http', { status: response.status }),
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

  return Object.freeze({
    TOKEN_KEY, JOB_STATUS, $, $$, esc, ApiFailure, api, svg, niceTicks,
    LANG, LOCALE, t, josa, fmtDuration, translatePage,
  });
})();
