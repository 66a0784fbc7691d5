/* trainyard nodes page (/nodes): every worker node, its GPUs and the job holding each, the
 * jobs it holds, and a drain / undrain button. Reads GET /api/nodes every few seconds. */
(() => {
  'use strict';

  const POLL_MS = 5000;
  const { JOB_STATUS, $, esc, t, LOCALE } = window.trainyard; // common.js, loaded first

  /** The shared API call; a write sends `{}` and a missing token points at the dashboard's 🔑. */
  async function api(method, path) {
    try {
      return await window.trainyard.api(method, path, method === 'GET' ? {} : { body: {} });
    } catch (err) {
      if (err.code === 'UNAUTHORIZED') {
        throw new Error(t('nodes.tokenNeeded'));
      }
      throw err;
    }
  }

  function showError(message) {
    $('#banner-text').textContent = message;
    $('#banner').hidden = !message;
  }

  function age(seconds) {
    if (seconds < 60) return t('nodes.ago.s', { n: Math.round(seconds) });
    if (seconds < 3600) return t('nodes.ago.m', { n: Math.floor(seconds / 60) });
    return t('nodes.ago.h', { n: Math.floor(seconds / 3600) });
  }

  function modelLink(uuid, label) {
    return `<a class="model-link" href="/#/models/${encodeURIComponent(uuid)}">${esc(label)}</a>`;
  }

  function gpuTable(node) {
    if (!node.gpus.length) return `<p class="note">${esc(t('nodes.noGpus'))}</p>`;
    const rows = node.gpus.map((g) => {
      const holder = g.jobId === null
        ? `<span class="gpu-free">${esc(t('nodes.gpuFree'))}</span>`
        : esc(t('nodes.job', { id: g.jobId })) + (g.modelUuid ? ` · ${modelLink(g.modelUuid, `${g.modelNo} ${g.modelVer}`)}` : '');
      return `<tr data-gpu="${g.gpuId}"><td class="num">GPU ${g.gpuId}</td><td data-holder>${holder}</td></tr>`;
    }).join('');
    return `<table class="plain"><thead><tr><th class="num">GPU</th><th>${esc(t('nodes.gpuJob'))}</th></tr></thead><tbody>${rows}</tbody></table>`;
  }

  function jobTable(node) {
    if (!node.jobs.length) return `<p class="note">${esc(t('nodes.noJobs'))}</p>`;
    const rows = node.jobs.map((j) => {
      const st = JOB_STATUS[j.statusCd] || { cls: 'READY', name: j.statusCd };
      return `<tr data-job="${j.jobId}"><td class="num">#${j.jobId}</td>
        <td>${modelLink(j.modelUuid, `${j.modelNo} ${j.modelVer}`)}</td>
        <td>${esc(j.jobType)} · ${esc(t('nodes.attempt', { n: j.attempt }))}</td>
        <td><span class="badge badge-${st.cls}">${esc(st.name)}</span></td>
        <td>${esc(j.gpuIds.join(', ') || '-')}</td>
        <td class="time">${esc(j.startedDttm || '-')}</td></tr>`;
    }).join('');
    return `<table class="plain"><thead><tr><th class="num">${esc(t('nodes.col.job'))}</th><th>${esc(t('nodes.col.model'))}</th><th>${esc(t('jobs.col.type'))}</th><th>${esc(t('jobs.col.status'))}</th><th>GPU</th><th>${esc(t('nodes.col.started'))}</th></tr></thead><tbody>${rows}</tbody></table>`;
  }

  function card(node) {
    const lost = node.state === 'lost';
    const state = lost
      ? `<span class="badge badge-ERROR" data-state>${esc(t('nodes.lost'))}</span>`
      : `<span class="badge badge-IN_PROGRESS" data-state>${esc(t('nodes.ok'))}</span>`;
    const drain = node.drain.draining
      ? `<span class="badge badge-STOPPED" data-drain>${esc(t('nodes.draining'))}${node.drain.flagFile ? esc(t('nodes.flagFile')) : ''}</span>`
      : '';
    const button = node.drain.draining
      ? `<button type="button" class="btn btn-success" data-action="undrain">${esc(t('nodes.undrain'))}</button>`
      : `<button type="button" class="btn btn-warning" data-action="drain">${esc(t('nodes.drain'))}</button>`;
    const cap = node.capacity;
    return `<section class="node-card${lost ? ' lost' : ''}" data-node="${esc(node.name)}">
      <div class="node-head">
        <div class="node-name">🖥️ ${esc(node.name)} ${state} ${drain}</div>
        <div class="actions">${button}</div>
      </div>
      <dl class="kv">
        <dt>${esc(t('nodes.heartbeat'))}</dt><dd>${esc(node.lastHeartbeatDttm || '-')} (${esc(age(node.heartbeatAgeS))})</dd>
        <dt>${esc(t('nodes.runtime'))}</dt><dd>${esc(node.runtime || '-')}</dd>
        <dt>${esc(t('nodes.capacity'))}</dt><dd>${cap.jobsHeld} / ${esc(cap.maxJobs ?? '-')} ${esc(t('nodes.memory', { mb: cap.memoryMb ?? '-' }))}</dd>
        <dt>GPU</dt><dd>${esc(t('nodes.gpus', { leased: node.gpusLeased, free: node.gpusFree }))}</dd>
        ${node.drain.requestedDttm ? `<dt>${esc(t('nodes.drainRequested'))}</dt><dd>${esc(node.drain.requestedDttm)} (${esc(node.drain.requestedBy || '-')})</dd>` : ''}
      </dl>
      <h4>GPU</h4>${gpuTable(node)}
      <h4>${esc(t('nodes.jobs'))}</h4>${jobTable(node)}
    </section>`;
  }

  let timer = null;

  async function load() {
    clearTimeout(timer);
    try {
      const data = await api('GET', '/api/nodes');
      $('#lost-after').textContent = data.lostAfterS;
      $('#nodes').innerHTML = data.nodes.map(card).join('');
      $('#empty').hidden = data.nodes.length > 0;
      $('#last-updated').textContent = t('nodes.updated', { time: new Date().toLocaleTimeString(LOCALE) });
      showError('');
    } catch (err) {
      showError(err.message);
    }
    timer = setTimeout(load, POLL_MS);
  }

  async function act(name, action) {
    const question = action === 'drain'
      ? t('nodes.drainQuestion', { name })
      : t('nodes.undrainQuestion', { name });
    if (!window.confirm(question)) return;
    try {
      const node = await api('POST', `/api/nodes/${encodeURIComponent(name)}/${action}`);
      if (action === 'undrain' && node.drain.draining) {
        showError(t('nodes.stillDraining', { name }));
      }
    } catch (err) {
      showError(err.message);
    }
    load();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#refresh-btn').addEventListener('click', load);
    $('.banner-close').addEventListener('click', () => showError(''));
    $('#nodes').addEventListener('click', (ev) => {
      const button = ev.target.closest('button[data-action]');
      if (!button) return;
      act(button.closest('[data-node]').dataset.node, button.dataset.action);
    });
    load();
  });
})();
