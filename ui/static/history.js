// History panel and image viewer. The run list comes from the job store (GET /api/jobs: status,
// timings, errors, for every run including failed and interrupted ones) joined with /api/history
// (the prompt and the outputs); it refreshes on the server's broadcast `status` events, so every
// open tab sees every run. Each run: re-open its workflow, re-queue the same prompt, download its
// workflow, delete it. The viewer shows one image with its metadata; Esc closes it and the arrow
// keys step through the images of the list it was opened from.

import { el } from './dom.js';

const RUNS_SHOWN = 40;
const THUMBS_PER_RUN = 4;
const STATUS_LABELS = { completed: 'success', failed: 'error', cancelled: 'interrupted', in_progress: 'running', pending: 'pending' };

async function getJson(url, options) {
  const res = await fetch(url, { cache: 'no-store', ...options });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error((body && body.error && (body.error.message || body.error)) || `HTTP ${res.status}`);
  return body;
}

const postJson = (url, data) => getJson(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(data) });

// Prompt text, seed, steps and sampler of an API prompt (the first sampler's, else the first text).
export function promptSummary(prompt) {
  const nodes = prompt || {};
  const sampler = Object.values(nodes).find((n) => n && /Sampler/.test(n.class_type || '') && n.inputs);
  const inp = (sampler && sampler.inputs) || {};
  const textOf = (link) => {
    const n = Array.isArray(link) ? nodes[link[0]] : null;
    return n && n.inputs && typeof n.inputs.text === 'string' ? n.inputs.text : null;
  };
  let text = textOf(inp.positive);
  if (text === null) {
    const n = Object.values(nodes).find((x) => x && x.inputs && typeof x.inputs.text === 'string');
    text = n ? n.inputs.text : '';
  }
  const seed = inp.seed ?? inp.noise_seed;
  return { text, seed: typeof seed === 'number' ? seed : null, steps: inp.steps ?? null, sampler: inp.sampler_name ?? null };
}

function duration(job) {
  const a = job.execution_start_time, b = job.execution_end_time;
  return a && b ? `${((b - a) / 1000).toFixed(1)} s` : '';
}

export class ImageViewer {
  // io: the workflow I/O (loadFromImage); viewUrl(img) builds /view URLs.
  constructor(root, { viewUrl, io }) {
    this.viewUrl = viewUrl;
    this.io = io;
    this.box = el('div', 'lg-viewer', { 'data-viewer': '1', role: 'dialog', tabindex: '-1' });
    this.box.hidden = true;
    root.appendChild(this.box);
    this.items = [];
    this.index = 0;
    this.onKey = (e) => this.key(e);
    this.box.addEventListener('click', (e) => { if (e.target === this.box) this.close(); });
  }

  // items: [{filename, subfolder, type, meta: {label: value}}]; shows items[index].
  open(items, index = 0) {
    this.items = items;
    this.show(index);
    if (this.box.hidden) document.addEventListener('keydown', this.onKey, true);
    this.box.hidden = false;
    this.box.focus();
  }

  close() {
    this.box.hidden = true;
    document.removeEventListener('keydown', this.onKey, true);
  }

  key(e) {
    const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -1, ArrowDown: 1 };
    if (e.key === 'Escape') this.close();
    else if (moves[e.key] && this.items.length) this.show((this.index + moves[e.key] + this.items.length) % this.items.length);
    else return;
    e.preventDefault();
    e.stopPropagation();   // the editor must not act on them (Escape, arrows) while the viewer is open
  }

  show(index) {
    this.index = index;
    const it = this.items[index];
    if (!it) return;
    const url = this.viewUrl(it);
    this.box.textContent = '';
    const img = el('img', 'lg-viewer-img', { src: url, alt: it.filename });
    const meta = el('dl', 'lg-viewer-meta', { 'data-viewer-meta': '1' });
    const addMeta = (k, v) => { if (v !== null && v !== undefined && v !== '') meta.append(el('dt', null, {}, k), el('dd', null, {}, String(v))); };
    addMeta('file', it.filename);
    for (const [k, v] of Object.entries(it.meta || {})) addMeta(k, v);
    img.addEventListener('load', () => addMeta('size', `${img.naturalWidth}×${img.naturalHeight}`));
    const btn = (action, label) => el('button', 'lg-btn', { type: 'button', 'data-action': action }, label);
    const load = btn('load-image-workflow', 'Load workflow'), prev = btn('viewer-prev', '‹'), next = btn('viewer-next', '›');
    const close = btn('close-viewer', 'Close');
    const save = el('a', 'lg-btn', { href: url, download: it.filename, 'data-action': 'download-image' }, 'Download');
    load.addEventListener('click', () => this.io.loadFromImage(url, it.filename));
    prev.addEventListener('click', () => this.show((this.index - 1 + this.items.length) % this.items.length));
    next.addEventListener('click', () => this.show((this.index + 1) % this.items.length));
    close.addEventListener('click', () => this.close());
    const bar = el('div', 'lg-viewer-bar');
    bar.append(prev, el('span', 'lg-viewer-count', { 'data-viewer-index': String(index) }, `${index + 1} / ${this.items.length}`), next, load, save, close);
    this.box.append(img, el('div', 'lg-viewer-name', {}, it.filename), meta, bar);
  }
}

export class HistoryPanel {
  // api: the client (clientId, viewUrl, events); io: workflow I/O (openObject); toast(message, kind).
  constructor(api, side, { viewer, io, toast }) {
    this.api = api;
    this.viewer = viewer;
    this.io = io;
    this.toast = toast;
    this.list = el('div', 'lg-history', { 'data-history': '1' });
    side.append(el('h4', 'lg-side-title', {}, 'History'), this.list);
    this.runs = [];
    this.pending = null;
    this.list.addEventListener('click', (e) => this.onClick(e));
    for (const ev of ['status', 'execution_success', 'execution_error', 'execution_interrupted']) api.on(ev, () => this.refreshSoon());
  }

  refreshSoon() {
    clearTimeout(this.pending);
    this.pending = setTimeout(() => this.refresh(), 150);
  }

  async refresh() {
    let jobs, hist;
    try {
      [jobs, hist] = await Promise.all([getJson(`/api/jobs?limit=${RUNS_SHOWN}`), getJson(`/api/history?max_items=${RUNS_SHOWN}`)]);
    } catch { return; }
    this.runs = (jobs.jobs || []).map((job) => ({ job, entry: hist[job.id] || null }));
    this.render();
  }

  images(run) {
    const out = [];
    for (const [nid, o] of Object.entries((run.entry && run.entry.outputs) || {})) {
      for (const img of o.images || []) out.push({ ...img, node: nid });
    }
    return out;
  }

  render() {
    this.list.textContent = '';
    if (!this.runs.length) this.list.appendChild(el('div', 'lg-empty', {}, 'No runs yet'));
    this.runs.forEach((run, i) => this.list.appendChild(this.row(run, i)));
  }

  row(run, i) {
    const { job, entry } = run;
    const state = STATUS_LABELS[job.status] || job.status;
    const s = promptSummary(entry && entry.prompt && entry.prompt[2]);
    const row = el('div', `lg-run lg-run-${state}`, { 'data-run': job.id, 'data-status': state, 'data-index': String(i) });
    const head = el('div', 'lg-run-head');
    head.append(el('span', 'lg-run-state', {}, state), el('span', 'lg-run-num', {}, `#${job.priority ?? ''}`),
      el('span', 'lg-run-time', { title: new Date(job.create_time).toLocaleString() }, new Date(job.create_time).toLocaleTimeString()),
      el('span', 'lg-run-dur', { 'data-duration': '1' }, duration(job)));
    const sum = [s.seed !== null ? `seed ${s.seed}` : '', s.steps ? `${s.steps} steps` : '', s.sampler || ''].filter(Boolean).join(' · ');
    row.append(head, el('div', 'lg-run-prompt', { title: s.text }, s.text || '(no prompt text)'), el('div', 'lg-run-meta', {}, sum));
    if (job.execution_error) {
      const err = job.execution_error;
      row.appendChild(el('div', 'lg-run-errmsg', {}, `${err.exception_type || 'Error'}: ${err.exception_message || ''}`.slice(0, 300)));
    }
    const thumbs = el('div', 'lg-run-thumbs');
    this.images(run).slice(0, THUMBS_PER_RUN).forEach((img, k) => {
      thumbs.appendChild(el('img', 'lg-run-thumb', { src: this.api.viewUrl(img), alt: img.filename, loading: 'lazy', 'data-thumb-index': String(k) }));
    });
    const tools = el('div', 'lg-run-tools');
    const tool = (action, label, title) => el('button', 'lg-btn lg-small', { type: 'button', 'data-run-action': action, title }, label);
    if (entry) tools.append(tool('open', 'Open', 'Load this run\'s workflow into the editor'), tool('requeue', 'Re-queue', 'Queue the same prompt again'),
      tool('download', 'JSON', 'Download this run\'s workflow'));
    if (state !== 'running' && state !== 'pending') tools.appendChild(tool('delete', '×', 'Delete from history'));
    row.append(thumbs, tools);
    return row;
  }

  onClick(e) {
    const row = e.target.closest('[data-run]');
    if (!row) return;
    const run = this.runs[Number(row.dataset.index)];
    const thumb = e.target.closest('[data-thumb-index]');
    if (thumb) { this.openViewer(run, Number(thumb.dataset.thumbIndex)); return; }
    const b = e.target.closest('[data-run-action]');
    if (b) this[`${b.dataset.runAction}Run`](run).catch((err) => this.toast(`${b.textContent} failed: ${err.message}`, 'error'));
  }

  // The viewer over every image of the listed runs, starting at this run's k-th.
  openViewer(run, k) {
    const items = [];
    let start = 0;
    for (const r of this.runs) {
      if (r === run) start = items.length;
      const s = promptSummary(r.entry && r.entry.prompt && r.entry.prompt[2]);
      for (const img of this.images(r)) {
        items.push({ ...img, meta: { run: `#${r.job.priority} ${STATUS_LABELS[r.job.status] || r.job.status}`, node: img.node,
          duration: duration(r.job), seed: s.seed, steps: s.steps, sampler: s.sampler, prompt: s.text } });
      }
    }
    this.viewer.open(items, start + k);
  }

  workflowOf(run) {
    const extra = run.entry.prompt[3] || {};
    const wf = extra.extra_pnginfo && extra.extra_pnginfo.workflow;
    return wf || run.entry.prompt[2];
  }

  async openRun(run) { await this.io.openObject(this.workflowOf(run), `run #${run.job.priority}`); }

  async requeueRun(run) {
    const extra = { ...(run.entry.prompt[3] || {}) };
    delete extra.client_id;
    const res = await postJson('/api/prompt', { prompt: run.entry.prompt[2], client_id: this.api.clientId, extra_data: extra });
    this.toast(`Queued again as #${res.number}`, 'info');
  }

  async downloadRun(run) {
    this.io.saveBlob(`run-${run.job.priority}.json`, new Blob([JSON.stringify(this.workflowOf(run), null, 2)], { type: 'application/json' }));
  }

  async deleteRun(run) {
    await postJson('/api/history', { delete: [run.job.id] });
    this.refresh();
  }
}
