/* trainyard dashboard — finding and comparing runs (docs/dashboard.md, "Compare").
 *
 * - the list's search (modelVer, memo), sort (a time, or a metric's best value) and metric
 *   column, all the list API's (`q`, `sort`, `dir`, `metric`) and kept in the address;
 * - a checkbox per row; the compare button opens #/compare?uuids=a,b,… : every metric's curves of the
 *   chosen runs overlaid (train solid, val dashed, one colour per run; drag to zoom, hover
 *   for values), and their parameters against best / last metrics, differing ones marked.
 *
 * Loaded before dashboard.js, which calls the hooks of `window.trainyardList`.
 */
(() => {
  'use strict';

  const { $, $$, esc, api, svg, niceTicks, t } = window.trainyard; // common.js (dashboard.js replaces the object)
  const MAX_COMPARED = 12; // as the API (app/api/compare.py)
  const MAX_POINTS = 500;
  const COLORS = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#db2777',
    '#0891b2', '#65a30d', '#9333ea', '#ea580c', '#475569', '#0d9488'];

  const view = {
    q: '', sort: 'created', dir: '', metric: 'best',
    selected: new Set(), // uuids ticked in the table (across pages)
    open: null, // the uuids the compare view shows
    onChange: () => {},
  };

  // ---- the rule the API uses for "best" (app/metrics/ranking.py default_mode) --------------

  const MIN_WORDS = new Set(['mse', 'mae', 'rmse', 'nll', 'perplexity', 'ppl', 'wer', 'cer']);
  function defaultMode(name) {
    const lowered = name.toLowerCase();
    const words = lowered.split(/[^a-z0-9]+/);
    return lowered.includes('loss') || lowered.includes('err') || words.some((w) => MIN_WORDS.has(w)) ? 'min' : 'max';
  }

  function fmt(v) {
    if (v === null || v === undefined) return '-';
    if (typeof v === 'string') return v; // "NaN", "Infinity"
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : String(Number(v.toPrecision(5)));
  }

  // ---- list hooks (called by dashboard.js) -------------------------------------------------

  function metricLabel(key) {
    if (key === 'best') return t('col.metric');
    return key.replace(/^(val|train)\./, '');
  }

  const hooks = {
    query() {
      const out = { metric: view.metric };
      if (view.q) out.q = view.q;
      if (view.sort !== 'created') out.sort = view.sort;
      if (view.dir) out.dir = view.dir;
      return out;
    },
    writeAddress(q) {
      if (view.q) q.set('q', view.q);
      if (view.sort !== 'created') q.set('sort', view.sort);
      if (view.dir) q.set('dir', view.dir);
      if (view.metric !== 'best') q.set('metric', view.metric);
    },
    readAddress(q) {
      view.q = q.get('q') || '';
      view.sort = q.get('sort') || 'created';
      view.dir = ['asc', 'desc'].includes(q.get('dir')) ? q.get('dir') : '';
      view.metric = q.get('metric') || 'best';
      $('#list-search').value = view.q;
      ensureOption($('#list-sort'), sortValue(), sortValue());
      $('#list-sort').value = sortValue();
      ensureOption($('#list-metric'), view.metric, metricLabel(view.metric));
      $('#list-metric').value = view.metric;
      $('#metric-col-head').textContent = metricLabel(view.metric);
    },
    selectCell(m) {
      const checked = view.selected.has(m.uuid) ? ' checked' : '';
      return `<input type="checkbox" class="compare-pick" data-uuid="${esc(m.uuid)}"${checked}
        aria-label="${esc(t('compare.pick', { model: `${m.modelNo} ${m.modelVer} #${m.id}` }))}">`;
    },
    metricCell(m) {
      const c = m.metricValue;
      if (!c || c.value === null || c.value === undefined) return '<span class="muted">-</span>';
      const name = view.metric === 'best' ? `<span class="sub">${esc(c.name)}</span>` : '';
      return `<span class="metric-value" data-value="${esc(c.value)}" title="${esc(c.split)} ${esc(c.name)} (${esc(t(c.mode === 'min' ? 'summary.min' : 'summary.max').toLowerCase())}) · epoch ${esc(c.epoch)}">${esc(fmt(c.value))}</span>
        <span class="sub">E${esc(c.epoch)}</span>${name}`;
    },
    route(hash) {
      const match = /^#\/compare\?(.*)$/.exec(hash);
      if (!match) { closeCompare(false); return false; }
      const uuids = (new URLSearchParams(match[1]).get('uuids') || '').split(',').filter(Boolean);
      openCompare(uuids);
      return true;
    },
    onChange(fn) { view.onChange = fn; },
    searching() { return Boolean(view.q); },
    clearSearch() { view.q = ''; $('#list-search').value = ''; },
  };
  window.trainyardList = hooks;

  // The sort select holds "<sort>" or "<sort>:asc" (a dir other than the key's default).
  function sortValue() { return view.dir === 'asc' && !view.sort.startsWith('best:') ? `${view.sort}:asc` : view.sort; }

  function ensureOption(select, value, label) {
    if (![...select.options].some((o) => o.value === value)) select.add(new Option(label, value));
  }

  async function loadMetricNames() {
    let names;
    try { names = await api('GET', '/api/models/metric-names'); } catch (err) { return; }
    const sort = $('#list-sort'); const metric = $('#list-metric');
    for (const [split, list] of [['val', names.val], ['train', names.train]]) {
      for (const name of list) {
        const key = split === 'val' ? name : `train.${name}`;
        const better = defaultMode(name) === 'min' ? t('compare.lowerBetter') : t('compare.higherBetter');
        ensureOption(sort, `best:${key}`, `Best ${name} (${better})`);
        ensureOption(metric, key, name);
      }
    }
    sort.value = sortValue();
    metric.value = view.metric;
  }

  function wireList() {
    let timer = null;
    const search = $('#list-search');
    const apply = () => {
      clearTimeout(timer);
      if (search.value.trim() === view.q) return;
      view.q = search.value.trim();
      view.onChange();
    };
    search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(apply, 300); });
    search.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') apply(); });
    $('#list-sort').addEventListener('change', (ev) => {
      const [sort, dir] = ev.target.value.startsWith('best:') ? [ev.target.value, ''] : ev.target.value.split(':');
      view.sort = sort; view.dir = dir || '';
      // Sorting by a metric shows that metric, unless the user chose a column.
      if (sort.startsWith('best:') && view.metric === 'best') {
        view.metric = sort.slice(5);
        ensureOption($('#list-metric'), view.metric, metricLabel(view.metric));
        $('#list-metric').value = view.metric;
      }
      $('#metric-col-head').textContent = metricLabel(view.metric);
      view.onChange();
    });
    $('#list-metric').addEventListener('change', (ev) => {
      view.metric = ev.target.value;
      $('#metric-col-head').textContent = metricLabel(view.metric);
      view.onChange();
    });
    $('#model-table').addEventListener('change', (ev) => {
      const box = ev.target.closest('input.compare-pick');
      if (!box) return;
      if (box.checked) view.selected.add(box.dataset.uuid); else view.selected.delete(box.dataset.uuid);
      renderBar();
    });
    $('#compare-open').addEventListener('click', () => {
      location.hash = `#/compare?uuids=${[...view.selected].join(',')}`;
    });
    $('#compare-clear').addEventListener('click', () => {
      view.selected.clear();
      for (const box of $$('input.compare-pick')) box.checked = false;
      renderBar();
    });
    $('#compare-close').addEventListener('click', () => closeCompare(true));
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && view.open && !document.querySelector('dialog[open]')) closeCompare(true);
    });
  }

  function renderBar() {
    const n = view.selected.size;
    $('#compare-bar').hidden = n === 0;
    $('#compare-count').textContent = t('compare.count', { n });
    const button = $('#compare-open');
    button.disabled = n < 2 || n > MAX_COMPARED;
    button.title = n > MAX_COMPARED ? t('compare.tooMany', { max: MAX_COMPARED }) : (n < 2 ? t('compare.tooFew') : '');
  }

  // ---- the compare view ----------------------------------------------------------------------

  function closeCompare(updateHash) {
    if (!view.open) return;
    view.open = null;
    $('#compare-view').hidden = true;
    if (updateHash && location.hash) history.pushState(null, '', `${location.pathname}${location.search}`);
    // Focus back where the view was opened from (the bar's button, when it is still shown).
    const opener = $('#compare-open');
    if (opener && !$('#compare-bar').hidden) opener.focus();
  }

  async function openCompare(uuids) {
    const key = uuids.join(',');
    if (view.open === key) return;
    view.open = key;
    for (const u of uuids) view.selected.add(u);
    renderBar();
    for (const box of $$('input.compare-pick')) box.checked = view.selected.has(box.dataset.uuid);
    const link = $('#compare-link');
    link.href = `${location.pathname}#/compare?uuids=${key}`;
    $('#compare-view').hidden = false;
    $('#compare-title').focus(); // a keyboard or screen reader user lands in the view
    const body = $('#compare-body');
    body.innerHTML = `<p class="note">${esc(t('panel.loading'))}</p>`;
    let data;
    try {
      data = await api('GET', `/api/models/compare?uuids=${encodeURIComponent(key)}`);
    } catch (err) {
      if (view.open === key) body.innerHTML = `<p class="note error">${esc(t('compare.loadFailed', { message: err.message }))}</p>`;
      return;
    }
    const curves = await Promise.all(data.models.map(async (m) => {
      const get = (split) => api('GET', `/api/models/${m.uuid}/metrics?split=${split}&maxPoints=${MAX_POINTS}`).catch(() => null);
      const [train, val] = await Promise.all([get('train'), get('val')]);
      return { train, val };
    }));
    if (view.open !== key) return; // closed or replaced meanwhile
    const runs = data.models.map((m, i) => ({ ...m, color: COLORS[i % COLORS.length], label: `${m.modelNo} ${m.modelVer}`, curves: curves[i] }));
    $('#compare-title').textContent = t('compare.titleOf', { n: runs.length });
    body.innerHTML = `
      <section><h3>${esc(t('compare.runs'))}</h3><div class="cmp-runs"></div></section>
      <section><h3>${esc(t('panel.curves'))} <span class="note">${esc(t('compare.curvesHint'))}</span></h3><div class="charts cmp-charts"></div></section>
      <section><h3>${esc(t('compare.table'))}</h3><div class="cmp-table-wrap"></div></section>`;
    const legend = $('.cmp-runs', body);
    for (const r of runs) {
      const item = document.createElement('a');
      item.className = 'cmp-run';
      item.href = `#/models/${r.uuid}`;
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = r.color;
      const status = ['READY', 'IN_PROGRESS', 'COMPLETED', 'STOPPED', 'ERROR'].includes(r.statusCd) ? t(`status.${r.statusCd}`) : r.statusCd;
      item.append(sw, document.createTextNode(`${r.label} · ${status}`));
      legend.append(item);
    }
    const charts = $('.cmp-charts', body);
    const groups = metricGroups(runs);
    if (!groups.length) charts.innerHTML = `<p class="note">${esc(t('compare.noMetrics'))}</p>`;
    for (const g of groups) charts.append(overlayChart(g, runs));
    $('.cmp-table-wrap', body).innerHTML = tableHtml(runs, data.differingParams);
    // Colours through the DOM: the CSP allows no inline style attribute.
    for (const sw of $$('.cmp-swatch[data-color]', body)) sw.style.background = sw.dataset.color;
  }

  /** One group per metric: `loss` with `val_loss` (as the model view pairs them). */
  function metricGroups(runs) {
    const groups = new Map();
    for (const r of runs) {
      for (const split of ['train', 'val']) {
        const c = r.curves[split];
        if (!c) continue;
        for (const name of c.columns) {
          const key = split === 'val' ? name.replace(/^val_/, '') : name;
          if (!groups.has(key)) groups.set(key, { key, names: new Set(), series: [] });
          const g = groups.get(key);
          g.names.add(name);
          const data = c.points.filter((p) => typeof p[name] === 'number').map((p) => [p.epoch, p[name]]);
          if (data.length) g.series.push({ run: r, split, name, data });
        }
      }
    }
    return [...groups.values()].filter((g) => g.series.length).map((g) => ({ ...g, title: [...g.names].join(' / ') }));
  }

  /** Every run's curves of one metric in one SVG; drag to zoom on epochs, hover for values. */
  function overlayChart(group, runs) {
    const W = 560; const H = 260;
    const M = { l: 56, r: 14, t: 14, b: 30 };
    const allX = group.series.flatMap((s) => s.data.map((p) => p[0]));
    const full = [Math.min(...allX), Math.max(...allX)];
    let range = full.slice();

    const wrap = document.createElement('figure');
    wrap.className = 'chart cmp-chart';
    wrap.dataset.metric = group.key;
    const head = document.createElement('figcaption');
    head.className = 'chart-title';
    head.textContent = group.title;
    const reset = document.createElement('button');
    reset.type = 'button';
    reset.className = 'btn btn-plain cmp-reset';
    reset.textContent = t('chart.showAll');
    reset.hidden = true;
    head.append(' ', reset);
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': t('compare.chartLabel', { title: group.title, n: runs.length }) });
    const tip = document.createElement('div');
    tip.className = 'chart-tip';
    tip.hidden = true;
    wrap.append(head, root, tip);

    let X; let Y; let visible;
    function draw() {
      root.replaceChildren();
      let [x0, x1] = range;
      if (x0 === x1) { x0 -= 1; x1 += 1; }
      // In range, plus one point past each edge so a zoomed line runs on to the border.
      visible = group.series.map((s) => {
        const first = s.data.findIndex((p) => p[0] >= x0);
        const after = s.data.findIndex((p) => p[0] > x1);
        const from = first < 0 ? s.data.length : Math.max(0, first - 1);
        return { ...s, data: s.data.slice(from, after < 0 ? s.data.length : after + 1) };
      });
      const ys = visible.flatMap((s) => s.data.filter((p) => p[0] >= x0 && p[0] <= x1).map((p) => p[1]))
        .filter((v) => Number.isFinite(v));
      let y0 = ys.length ? Math.min(...ys) : 0; let y1 = ys.length ? Math.max(...ys) : 1;
      const pad = (y1 - y0) * 0.08 || Math.abs(y1) * 0.1 || 1;
      y0 -= pad; y1 += pad;
      X = (x) => M.l + ((x - x0) / (x1 - x0)) * (W - M.l - M.r);
      Y = (y) => H - M.b - ((Math.min(Math.max(y, y0), y1) - y0) / (y1 - y0)) * (H - M.t - M.b);
      const grid = svg('g', { class: 'grid' }); const axes = svg('g', { class: 'axis' });
      for (const tick of niceTicks(y0, y1, 5)) {
        if (tick < y0 || tick > y1) continue;
        grid.append(svg('line', { x1: M.l, x2: W - M.r, y1: Y(tick), y2: Y(tick) }));
        root.append(svg('text', { x: M.l - 6, y: Y(tick) + 3.5, 'text-anchor': 'end' }, String(Number(tick.toPrecision(6)))));
      }
      for (const tick of niceTicks(x0, x1, Math.min(8, Math.max(1, Math.round(x1 - x0)))).filter(Number.isInteger)) {
        axes.append(svg('line', { x1: X(tick), x2: X(tick), y1: H - M.b, y2: H - M.b + 4 }));
        root.append(svg('text', { x: X(tick), y: H - M.b + 15, 'text-anchor': 'middle' }, String(tick)));
      }
      axes.append(svg('line', { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
      axes.append(svg('line', { x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }));
      root.append(grid, axes, svg('text', { x: W - M.r, y: H - 2, 'text-anchor': 'end' }, 'epoch'));
      const clip = `clip-${group.key.replace(/[^\w-]/g, '_')}-${Math.random().toString(36).slice(2, 8)}`;
      const defs = svg('defs');
      const cp = svg('clipPath', { id: clip });
      cp.append(svg('rect', { x: M.l, y: M.t - 2, width: W - M.l - M.r, height: H - M.t - M.b + 4 }));
      defs.append(cp);
      const lines = svg('g', { 'clip-path': `url(#${clip})` });
      for (const s of visible) {
        if (!s.data.length) continue;
        const d = s.data.map((p, i) => `${i ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' ');
        lines.append(svg('path', {
          class: 'cmp-line', d, fill: 'none', stroke: s.run.color, 'stroke-width': 1.8,
          'stroke-dasharray': s.split === 'val' ? '5 3' : 'none', 'stroke-linejoin': 'round',
          'data-uuid': s.run.uuid, 'data-split': s.split, 'data-name': s.name,
        }));
        if (s.data.length <= 40) {
          for (const p of s.data) lines.append(svg('circle', { cx: X(p[0]), cy: Y(p[1]), r: 2.2, fill: s.run.color }));
        }
      }
      const hover = svg('line', { class: 'hover-line', y1: M.t, y2: H - M.b, visibility: 'hidden' });
      const band = svg('rect', { class: 'cmp-zoom-band', y: M.t, height: H - M.t - M.b, width: 0, visibility: 'hidden' });
      const hit = svg('rect', { class: 'cmp-hit', x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b, fill: 'transparent' });
      root.append(defs, lines, hover, band, hit);
      wireHover(hit, hover, band, [x0, x1]);
      reset.hidden = range[0] === full[0] && range[1] === full[1];
    }

    function toEpoch(ev, [x0, x1]) {
      const box = root.getBoundingClientRect();
      const sx = ((ev.clientX - box.left) / box.width) * W;
      return x0 + ((sx - M.l) / (W - M.l - M.r)) * (x1 - x0);
    }

    function wireHover(hit, hover, band, span) {
      const epochs = [...new Set(visible.flatMap((s) => s.data.map((p) => p[0])))]
        .filter((e) => e >= span[0] && e <= span[1]).sort((a, b) => a - b);
      let dragFrom = null;
      hit.addEventListener('mousedown', (ev) => { dragFrom = toEpoch(ev, span); ev.preventDefault(); });
      hit.addEventListener('mousemove', (ev) => {
        const xv = toEpoch(ev, span);
        if (dragFrom !== null) {
          const a = X(Math.min(dragFrom, xv)); const b = X(Math.max(dragFrom, xv));
          band.setAttribute('x', a); band.setAttribute('width', Math.max(0, b - a)); band.setAttribute('visibility', 'visible');
        }
        if (!epochs.length) return;
        let near = epochs[0];
        for (const e of epochs) if (Math.abs(e - xv) < Math.abs(near - xv)) near = e;
        hover.setAttribute('x1', X(near)); hover.setAttribute('x2', X(near)); hover.setAttribute('visibility', 'visible');
        tip.replaceChildren();
        const title = document.createElement('div');
        title.textContent = `epoch ${near}`;
        tip.append(title);
        for (const s of visible) {
          const p = s.data.find((q) => q[0] === near);
          if (!p) continue;
          const line = document.createElement('div');
          line.className = 'cmp-tip-line';
          const sw = document.createElement('span');
          sw.className = `swatch${s.split === 'val' ? ' dashed' : ''}`;
          sw.style.background = s.split === 'val' ? 'transparent' : s.run.color;
          sw.style.borderColor = s.run.color;
          line.append(sw, document.createTextNode(`${s.run.label} ${s.name}: ${fmt(p[1])}`));
          tip.append(line);
        }
        tip.hidden = false;
        const box = root.getBoundingClientRect();
        tip.style.left = `${Math.min((X(near) / W) * box.width + 12, Math.max(0, box.width - 230))}px`;
        tip.style.top = '30px';
      });
      const end = (ev) => {
        if (dragFrom === null) return;
        const to = toEpoch(ev, span);
        const [a, b] = [Math.min(dragFrom, to), Math.max(dragFrom, to)];
        dragFrom = null;
        band.setAttribute('visibility', 'hidden');
        if (b - a >= (span[1] - span[0]) / 50) { range = [a, b]; draw(); }
      };
      hit.addEventListener('mouseup', end);
      hit.addEventListener('mouseleave', () => {
        tip.hidden = true; hover.setAttribute('visibility', 'hidden');
        dragFrom = null; band.setAttribute('visibility', 'hidden');
      });
      hit.addEventListener('dblclick', () => { range = full.slice(); draw(); });
    }

    reset.addEventListener('click', () => { range = full.slice(); draw(); });
    draw();
    return wrap;
  }

  /** Rows: parameters (differing ones marked), best epoch, then best and last of each metric. */
  function tableHtml(runs, differing) {
    const diff = new Set(differing);
    const keys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
    const head = runs.map((r) => `<th scope="col" data-uuid="${esc(r.uuid)}"><span class="swatch cmp-swatch" data-color="${esc(r.color)}"></span><a href="#/models/${esc(r.uuid)}">${esc(r.label)}</a></th>`).join('');
    const cell = (v) => (v === undefined ? `<span class="muted">${esc(t('compare.absent'))}</span>` : esc(typeof v === 'object' ? JSON.stringify(v) : String(v)));
    const rows = [];
    for (const k of keys) {
      const marked = diff.has(k);
      rows.push(`<tr class="param-row${marked ? ' differs' : ''}" data-param="${esc(k)}">
        <th scope="row">${esc(k)}${marked ? ` <span class="diff-mark" title="${esc(t('compare.differsTitle'))}">${esc(t('compare.differs'))}</span>` : ''}</th>
        ${runs.map((r) => `<td>${cell(r.params[k])}</td>`).join('')}</tr>`);
    }
    rows.push(`<tr class="section-row"><th scope="row">Best Epoch</th>${runs.map((r) => `<td>${esc(r.bestEpoch ?? '-')} <span class="sub">${esc(r.bestMetric)} ${esc(r.bestMode)}</span></td>`).join('')}</tr>`);
    const metrics = [];
    for (const split of ['val', 'train', 'test']) {
      const names = [...new Set(runs.flatMap((r) => Object.keys((r.metricSummary || {})[split] || {})))];
      for (const n of names) metrics.push([split, n]);
    }
    for (const [split, name] of metrics) {
      const mode = defaultMode(name);
      const values = runs.map((r) => ((r.metricSummary || {})[split] || {})[name] || null);
      const bests = values.map((s) => (s ? s[mode] : null));
      const numeric = bests.filter((v) => typeof v === 'number');
      const top = numeric.length ? (mode === 'min' ? Math.min(...numeric) : Math.max(...numeric)) : null;
      const best = values.map((s, i) => (s ? `<td class="num${bests[i] === top && runs.length > 1 ? ' cmp-top' : ''}">${esc(fmt(bests[i]))} <span class="sub">E${esc(s[`${mode}Epoch`] ?? '-')}</span></td>` : '<td class="num">-</td>'));
      const last = values.map((s) => (s ? `<td class="num">${esc(fmt(s.last))} <span class="sub">E${esc(s.lastEpoch ?? '-')}</span></td>` : '<td class="num">-</td>'));
      rows.push(`<tr class="metric-row" data-metric="${esc(split)}.${esc(name)}"><th scope="row">${esc(name)} <span class="sub">${esc(split)} · best (${esc(t(mode === 'min' ? 'summary.min' : 'summary.max').toLowerCase())})</span></th>${best.join('')}</tr>`);
      rows.push(`<tr class="metric-row last" data-metric="${esc(split)}.${esc(name)}.last"><th scope="row">${esc(name)} <span class="sub">${esc(split)} · last</span></th>${last.join('')}</tr>`);
    }
    return `<table class="plain cmp-table"><thead><tr><th scope="col">${esc(t('compare.paramHead'))}</th>${head}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
  }

  document.addEventListener('DOMContentLoaded', () => { wireList(); loadMetricNames(); renderBar(); });
})();
