/* trainyard nodes page (/nodes): every worker node, its GPUs and the job holding each, the
 * jobs it holds, and a drain / undrain button. Reads GET /api/nodes every few seconds. */
(() => {
  'use strict';

  const POLL_MS = 5000;
  const { JOB_STATUS, $, esc } = window.trainyard; // common.js, loaded first

  /** The shared API call; a write sends `{}` and a missing token points at the dashboard's 🔑. */
  async function api(method, path) {
    try {
      return await window.trainyard.api(method, path, method === 'GET' ? {} : { body: {} });
    } catch (err) {
      if (err.code === 'UNAUTHORIZED') {
        throw new Error('API 토큰이 필요합니다 — 모델 목록 화면의 [🔑 토큰]에 입력하세요.');
      }
      throw err;
    }
  }

  function showError(message) {
    $('#banner-text').textContent = message;
    $('#banner').hidden = !message;
  }

  function age(seconds) {
    if (seconds < 60) return `${Math.round(seconds)}초 전`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)}분 전`;
    return `${Math.floor(seconds / 3600)}시간 전`;
  }

  function modelLink(uuid, label) {
    return `<a class="model-link" href="/#/models/${encodeURIComponent(uuid)}">${esc(label)}</a>`;
  }

  function gpuTable(node) {
    if (!node.gpus.length) return '<p class="note">GPU 없음 (NODE_GPUS 비어 있음)</p>';
    const rows = node.gpus.map((g) => {
      const holder = g.jobId === null
        ? '<span class="gpu-free">비어 있음</span>'
        : (g.modelUuid ? `작업 #${g.jobId} · ${modelLink(g.modelUuid, `${g.modelNo} ${g.modelVer}`)}` : `작업 #${g.jobId}`);
      return `<tr data-gpu="${g.gpuId}"><td class="num">GPU ${g.gpuId}</td><td data-holder>${holder}</td></tr>`;
    }).join('');
    return `<table class="plain"><thead><tr><th class="num">GPU</th><th>사용 중인 작업</th></tr></thead><tbody>${rows}</tbody></table>`;
  }

  function jobTable(node) {
    if (!node.jobs.length) return '<p class="note">실행 중인 작업 없음</p>';
    const rows = node.jobs.map((j) => {
      const st = JOB_STATUS[j.statusCd] || { cls: 'READY', name: j.statusCd };
      return `<tr data-job="${j.jobId}"><td class="num">#${j.jobId}</td>
        <td>${modelLink(j.modelUuid, `${j.modelNo} ${j.modelVer}`)}</td>
        <td>${esc(j.jobType)} · ${j.attempt}차</td>
        <td><span class="badge badge-${st.cls}">${esc(st.name)}</span></td>
        <td>${esc(j.gpuIds.join(', ') || '-')}</td>
        <td class="time">${esc(j.startedDttm || '-')}</td></tr>`;
    }).join('');
    return `<table class="plain"><thead><tr><th class="num">작업</th><th>모델</th><th>유형</th><th>상태</th><th>GPU</th><th>시작</th></tr></thead><tbody>${rows}</tbody></table>`;
  }

  function card(node) {
    const lost = node.state === 'lost';
    const state = lost
      ? '<span class="badge badge-ERROR" data-state>연결 끊김</span>'
      : '<span class="badge badge-IN_PROGRESS" data-state>정상</span>';
    const drain = node.drain.draining
      ? `<span class="badge badge-STOPPED" data-drain>드레인 중${node.drain.flagFile ? ' (플래그 파일)' : ''}</span>`
      : '';
    const button = node.drain.draining
      ? `<button type="button" class="btn btn-success" data-action="undrain">▶️ 드레인 해제</button>`
      : `<button type="button" class="btn btn-warning" data-action="drain">⏸️ 드레인</button>`;
    const cap = node.capacity;
    return `<section class="node-card${lost ? ' lost' : ''}" data-node="${esc(node.name)}">
      <div class="node-head">
        <div class="node-name">🖥️ ${esc(node.name)} ${state} ${drain}</div>
        <div class="actions">${button}</div>
      </div>
      <dl class="kv">
        <dt>마지막 하트비트</dt><dd>${esc(node.lastHeartbeatDttm || '-')} (${age(node.heartbeatAgeS)})</dd>
        <dt>런타임</dt><dd>${esc(node.runtime || '-')}</dd>
        <dt>작업 / 한도</dt><dd>${cap.jobsHeld} / ${esc(cap.maxJobs ?? '-')} (메모리 ${esc(cap.memoryMb ?? '-')} MB)</dd>
        <dt>GPU</dt><dd>사용 ${node.gpusLeased} · 여유 ${node.gpusFree}</dd>
        ${node.drain.requestedDttm ? `<dt>드레인 요청</dt><dd>${esc(node.drain.requestedDttm)} (${esc(node.drain.requestedBy || '-')})</dd>` : ''}
      </dl>
      <h4>GPU</h4>${gpuTable(node)}
      <h4>작업</h4>${jobTable(node)}
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
      $('#last-updated').textContent = `${new Date().toLocaleTimeString('ko-KR')} 갱신`;
      showError('');
    } catch (err) {
      showError(err.message);
    }
    timer = setTimeout(load, POLL_MS);
  }

  async function act(name, action) {
    const question = action === 'drain'
      ? `노드 ${name}: 드레인할까요?\n새 작업을 받지 않고, 실행 중인 작업은 끝까지 실행합니다.`
      : `노드 ${name}: 드레인을 해제할까요?\n다시 새 작업을 받습니다.`;
    if (!window.confirm(question)) return;
    try {
      const node = await api('POST', `/api/nodes/${encodeURIComponent(name)}/${action}`);
      if (action === 'undrain' && node.drain.draining) {
        showError(`노드 ${name}: 아직 드레인 중입니다. 그 호스트에 플래그 파일이 있습니다 (그 호스트에서 trainyard undrain ${name}).`);
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
