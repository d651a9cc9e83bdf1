// Tidebox's dashboard: the public API with the caller's key, nothing else. The key stays in this
// tab's sessionStorage and goes only to this origin's API; every value from the API is put into
// the page as text (never as HTML), so what a tenant writes into metadata or images cannot run here.
'use strict';

const KEY = 'tidebox.apiKey';
const REFRESH_MS = 5000;
const state = { sandboxes: [], snapshots: [], mounts: [], selected: null, ui: { temporalUi: null, namespace: 'default' } };

const $ = (sel) => document.querySelector(sel);

/** An element with text content (and attributes); children appended as given. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') node.textContent = v;
    else if (k === 'onclick') node.addEventListener('click', v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function api(method, path) {
  const headers = { accept: 'application/json' };
  const key = sessionStorage.getItem(KEY);
  if (key) headers['OPEN-SANDBOX-API-KEY'] = key;
  const res = await fetch(`/v1${path}`, { method, headers });
  const body = res.status === 204 ? undefined : await res.json().catch(() => undefined);
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${(body && body.message) || res.statusText}`);
  return body;
}

function showError(err) {
  const p = $('#error');
  p.hidden = !err;
  p.textContent = err ? err.message : '';
}

function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
const countdown = (iso) => (iso ? (Date.parse(iso) <= Date.now() ? 'due' : duration(Date.parse(iso) - Date.now())) : 'never');

function fill(tbody, rows, columns, emptyText) {
  tbody.replaceChildren(...(rows.length ? rows : [el('tr', { class: 'empty' }, el('td', { colspan: String(columns), text: emptyText }))]));
}

function renderSandboxes() {
  const rows = state.sandboxes.map((s) =>
    el(
      'tr',
      { 'data-id': s.id, class: s.id === state.selected ? 'selected' : '' },
      el('td', { class: 'id' }, el('button', { class: 'link', text: s.id, title: 'show its history', onclick: () => select(s.id) })),
      el('td', { class: `state-${s.status.state}`, text: s.status.state }),
      el('td', { text: s.tenant || '' }),
      el('td', { text: (s.image && s.image.uri) || (s.snapshotId ? `snapshot ${s.snapshotId}` : '') }),
      el('td', { class: 'age', 'data-since': s.createdAt, text: duration(Date.now() - Date.parse(s.createdAt)) }),
      el('td', { class: 'countdown', 'data-expires': s.expiresAt || '', text: countdown(s.expiresAt) }),
    ),
  );
  fill($('#sandboxes tbody'), rows, 6, 'no sandboxes');
  $('#sandbox-count').textContent = state.more ? `(the first ${state.sandboxes.length})` : `(${state.sandboxes.length})`;
}

/** Ages and countdowns move every second between refreshes. */
function tick() {
  for (const td of document.querySelectorAll('td.countdown')) td.textContent = countdown(td.dataset.expires || undefined);
  for (const td of document.querySelectorAll('td.age')) td.textContent = duration(Date.now() - Date.parse(td.dataset.since));
}

function renderSnapshots() {
  const rows = state.snapshots.map((s) =>
    el(
      'tr',
      { 'data-id': s.id },
      el('td', { class: 'id', text: s.id }),
      el('td', { class: `state-${s.status.state}`, text: s.status.state }),
      el('td', { class: 'id', text: s.sandboxId }),
      el('td', {
        text: s.status.state === 'Failed' ? `failed at ${s.failedStep || '?'}: ${s.status.message || ''}` : s.status.reason || '',
      }),
      el('td', {}, s.status.state === 'Failed' ? el('button', { class: 'retry', text: 'Retry', onclick: () => retry(s.id) }) : ''),
    ),
  );
  fill($('#snapshots tbody'), rows, 5, 'no snapshots');
}

function renderMounts() {
  const rows = state.mounts.map((m) =>
    el(
      'tr',
      {},
      el('td', { class: 'id', text: m.key }),
      el('td', { class: `state-${m.state}`, text: m.state }),
      el('td', { text: `${m.bucket}/${m.prefix}` }),
      el('td', { class: 'id', text: m.holders.join(', ') || '—' }),
    ),
  );
  fill($('#mounts tbody'), rows, 4, 'no bucket mounts');
}

async function renderHistory() {
  const id = state.selected;
  const section = $('#history');
  section.hidden = !id;
  if (!id) return;
  $('#history-id').textContent = id;
  const link = $('#history-temporal');
  link.hidden = !state.ui.temporalUi;
  if (state.ui.temporalUi)
    link.href = `${state.ui.temporalUi}/namespaces/${encodeURIComponent(state.ui.namespace)}/workflows/${encodeURIComponent(`sandbox/${id}`)}`;
  const h = await api('GET', `/sandboxes/${encodeURIComponent(id)}/events`);
  $('#timeline').replaceChildren(
    ...h.events.map((e) =>
      el('li', { text: `${e.at}  ${e.state}  by ${e.actor}${e.reason ? `  ${e.reason}` : ''}${e.message ? `: ${e.message}` : ''}` }),
    ),
  );
}

async function select(id) {
  state.selected = id;
  renderSandboxes();
  await renderHistory().catch(showError);
}

async function retry(id) {
  try {
    await api('POST', `/snapshots/${encodeURIComponent(id)}/retry`);
    await refresh();
  } catch (err) {
    showError(err);
  }
}

async function refresh() {
  try {
    const [sandboxes, snapshots, mounts] = await Promise.all([
      api('GET', '/sandboxes?pageSize=200'),
      api('GET', '/snapshots?pageSize=50'),
      api('GET', '/mounts'),
    ]);
    state.sandboxes = sandboxes.items;
    state.more = Boolean(sandboxes.pagination && sandboxes.pagination.hasNextPage);
    state.snapshots = snapshots.items;
    state.mounts = mounts.items;
    renderSandboxes();
    renderSnapshots();
    renderMounts();
    if (state.selected) await renderHistory();
    showError(null);
  } catch (err) {
    showError(err);
  }
}

async function start() {
  state.ui = await fetch('/ui/config.json')
    .then((r) => r.json())
    .catch(() => state.ui);
  $('#key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = $('#key').value.trim();
    if (key) sessionStorage.setItem(KEY, key);
    else sessionStorage.removeItem(KEY);
    $('#key').value = '';
    $('#who').textContent = key ? 'key set for this tab' : '';
    void refresh();
  });
  if (sessionStorage.getItem(KEY)) $('#who').textContent = 'key set for this tab';
  await refresh();
  setInterval(tick, 1000);
  setInterval(() => void refresh(), REFRESH_MS);
}

document.addEventListener('DOMContentLoaded', () => void start());
