// Run panel: queue (button, Ctrl+Enter, N times, front), the job list with cancel, interrupt,
// per-node execution state from /ws events, the progress bar, live latent previews on the running
// node, the gallery of results (click → the image viewer) and the history of runs (history.js).
// The status line follows the server's queue too, so a tab that did not queue shows "Running".

import { el } from './dom.js';
import { HistoryPanel, ImageViewer } from './history.js';
import { installStyles } from './kinds.js';

const GALLERY_MAX = 48;

export class RunPanel {
  // feedback: node marks, banner, toasts (feedback.js); view: the Renderer (node elements);
  // io: the workflow I/O (opens a result's or a run's workflow).
  constructor(graph, api, side, { root, view, feedback, io }) {
    this.graph = graph;
    this.api = api;
    this.root = root;
    this.nodeView = view;
    this.feedback = feedback;
    this.io = io;
    this.ours = new Set();
    this.running = null;          // node id currently executing
    this.previewUrls = new Map(); // node id -> object URL
    this.busy = false;
    installStyles();   // node kinds, mask editor, history, viewer (kinds.css)
    this.build(side);
    this.bindEvents();
  }

  build(side) {
    const row = el('div', 'lg-run-row');
    this.queueBtn = el('button', 'lg-btn lg-primary', { type: 'button', 'data-action': 'queue', title: 'Queue (Ctrl+Enter; Ctrl+Shift+Enter puts it at the front)' }, 'Queue');
    this.count = el('input', 'lg-input lg-count', { type: 'number', min: 1, max: 100, value: 1, 'data-field': 'batch-count', title: 'Queue this many times' });
    this.stopBtn = el('button', 'lg-btn', { type: 'button', 'data-action': 'interrupt', title: 'Stop the running job' }, 'Stop');
    row.append(this.queueBtn, el('span', 'lg-times', {}, '×'), this.count, this.stopBtn);
    this.status = el('div', 'lg-run-status', { 'data-run-status': '1' }, 'Idle');
    this.bar = el('div', 'lg-progress', { 'data-progress': '1' });
    this.barFill = el('div', 'lg-progress-fill');
    this.barText = el('span', 'lg-progress-text', {}, '');
    this.bar.append(this.barFill, this.barText);
    this.queueList = el('div', 'lg-queue-list', { 'data-queue-list': '1' });
    this.gallery = el('div', 'lg-gallery', { 'data-gallery': '1' });
    side.append(row, this.status, this.bar, el('h4', 'lg-side-title', {}, 'Queue'), this.queueList,
      el('h4', 'lg-side-title', {}, 'Results'), this.gallery);
    this.viewer = new ImageViewer(this.root, { viewUrl: (img) => this.api.viewUrl(img), io: this.io });
    this.history = new HistoryPanel(this.api, side, { viewer: this.viewer, io: this.io, toast: (m, k) => this.feedback.toast(m, k) });
    this.queueBtn.addEventListener('click', () => this.queue({}));
    this.stopBtn.addEventListener('click', () => this.interrupt());
    this.queueList.addEventListener('click', (e) => {
      const b = e.target.closest('[data-cancel]');
      if (b) this.cancel(b.dataset.cancel, b.dataset.state);
    });
    this.gallery.addEventListener('click', (e) => {
      const it = e.target.closest('[data-gallery-item]');
      if (it) this.view(it);
    });
  }

  bindEvents() {
    const a = this.api;
    a.on('status', () => this.refreshQueue());
    a.on('execution_start', (d) => { this.feedback.clearRunState(); this.setStatus(`Running ${short(d.prompt_id)}`); });
    a.on('execution_cached', (d) => { for (const id of d.nodes || []) this.feedback.setNodeState(String(id), 'cached'); });
    a.on('executing', (d) => this.onExecuting(d));
    a.on('progress', (d) => this.onProgress(d));
    a.on('executed', (d) => this.onExecuted(d));
    a.on('execution_success', () => this.setStatus('Done'));
    a.on('execution_error', (d) => this.onError(d));
    a.on('warning', (d) => this.feedback.warn(d.node, d.message || ''));
    a.on('execution_interrupted', () => { this.setStatus('Interrupted'); this.feedback.toast('Interrupted', 'info'); });
    a.on('preview', (blob) => this.onPreview(blob));
    a.on('connected', (up) => this.root.classList.toggle('lg-offline', !up));
  }

  setStatus(text, state = null) {
    this.status.textContent = text;
    this.status.dataset.state = state || (/^Running/.test(text) ? 'running' : 'idle');
  }

  // Queue the current graph `count` times, applying control-after-generate after each (the graph's
  // change event redraws the widgets and saves).
  async queue({ front = false } = {}) {
    if (this.busy) return;
    const ae = document.activeElement;
    if (ae && this.root.contains(ae) && ae.blur) ae.blur();   // commit a widget being edited
    this.busy = true;
    this.queueBtn.disabled = true;
    const n = Math.max(1, Math.min(100, parseInt(this.count.value, 10) || 1));
    try {
      this.feedback.clearErrors();   // before sending: a fast job may report its own errors first
      for (let i = 0; i < n; i++) {
        const res = await this.api.queueWorkflow(this.graph.serialize(), { front });
        for (const id of res.prompt_ids || []) this.ours.add(id);
        this.setStatus(`Queued ${(res.prompt_ids || []).map(short).join(', ')}`);
        this.graph.applyControls();
      }
    } catch (e) {
      if (e.status === 400 && e.body && e.body.error) this.feedback.showValidation(e.body);
      else this.feedback.toast(`Queue failed: ${e.message}`, 'error');
      this.setStatus('Not queued');
    } finally {
      this.busy = false;
      this.queueBtn.disabled = false;
      this.refreshQueue();
    }
  }

  async interrupt() {
    try { await this.api.interrupt(); } catch (e) { this.feedback.toast(`Interrupt failed: ${e.message}`, 'error'); }
  }

  async cancel(id, state) {
    try {
      if (state === 'running') await this.api.interrupt();
      else await this.api.deleteFromQueue([id]);
    } catch (e) { this.feedback.toast(`Cancel failed: ${e.message}`, 'error'); }
    this.refreshQueue();
  }

  async refreshQueue() {
    let q;
    try { q = await this.api.getQueue(); } catch { return; }
    const items = [...(q.queue_running || []).map((i) => [i, 'running']), ...(q.queue_pending || []).map((i) => [i, 'pending'])];
    // Another tab's (or client's) job: this tab gets no execution events for it, only the queue.
    const running = (q.queue_running || [])[0];
    if (running && this.status.dataset.state !== 'running') this.setStatus(`Running ${short(running[1])}`);
    else if (!running && this.status.dataset.state === 'running') this.setStatus('Idle');
    this.queueList.textContent = '';
    if (!items.length) this.queueList.appendChild(el('div', 'lg-empty', {}, 'Nothing queued'));
    for (const [item, state] of items) {
      const row = el('div', `lg-queue-item lg-${state}`, { 'data-prompt-id': item[1], 'data-state': state });
      row.append(el('span', null, {}, `#${item[0]} ${short(item[1])}`), el('span', 'lg-queue-state', {}, state),
        el('button', 'lg-btn lg-small', { type: 'button', 'data-cancel': item[1], 'data-state': state, title: state === 'running' ? 'Interrupt' : 'Remove from queue' }, '×'));
      this.queueList.appendChild(row);
    }
  }

  onExecuting(d) {
    if (this.running) this.feedback.setNodeState(this.running, 'done');
    this.running = d.node === null || d.node === undefined ? null : String(d.node);
    if (this.running) {
      this.feedback.setNodeState(this.running, 'running');
      this.setProgress(0, 0);
      return;
    }
    this.setProgress(0, 0);
    this.refreshQueue();
  }

  setProgress(value, max) {
    this.bar.dataset.value = String(value);
    this.bar.dataset.max = String(max);
    this.barFill.style.width = max ? `${Math.round((100 * value) / max)}%` : '0%';
    this.barText.textContent = max ? `step ${value}/${max}` : '';
  }

  onProgress(d) {
    this.setProgress(d.value, d.max);
    if (d.node !== undefined && d.node !== null) this.running = String(d.node);
  }

  onPreview(blob) {
    const id = this.running;
    const node = id && this.nodeView.nodeEl(id);
    if (!node) return;
    const img = node.querySelector('.lg-preview');
    const old = this.previewUrls.get(id);
    const url = URL.createObjectURL(blob);
    img.src = url;
    img.hidden = false;
    img.dataset.live = '1';
    this.previewUrls.set(id, url);
    if (old) setTimeout(() => URL.revokeObjectURL(old), 1000);
  }

  onExecuted(d) {
    const id = String(d.node);
    this.feedback.setNodeState(id, 'done');
    const images = (d.output && d.output.images) || [];
    for (const img of images) this.addImage(img, d.prompt_id, id);
    const last = images[images.length - 1];
    const nodeEl = this.nodeView.nodeEl(id);
    if (last && nodeEl) {
      const p = nodeEl.querySelector('.lg-preview');
      p.src = this.api.viewUrl(last); p.hidden = false; delete p.dataset.live;
    }
  }

  onError(d) {
    const id = d.node_id !== undefined && d.node_id !== null ? String(d.node_id) : null;
    const msg = `${d.exception_type || 'Error'}: ${d.exception_message || 'the job failed'}`;
    if (id) this.feedback.setNodeError(id, [msg]);
    this.setStatus(`Failed${id ? ` at node ${id} (${d.node_type || ''})` : ''}`);
    this.feedback.toast(`Run failed${id ? ` in node ${id}` : ''}: ${msg}`, 'error');
    this.setProgress(0, 0);
  }

  addImage(img, promptId, nodeId) {
    const url = this.api.viewUrl(img);
    const item = el('figure', 'lg-gallery-item', { 'data-gallery-item': '1', 'data-filename': img.filename,
      'data-subfolder': img.subfolder || '', 'data-type': img.type || 'output', 'data-prompt-id': promptId || '', 'data-node': nodeId || '' });
    item.appendChild(el('img', null, { src: url, alt: img.filename, loading: 'lazy' }));
    this.gallery.prepend(item);
    while (this.gallery.children.length > GALLERY_MAX) this.gallery.lastChild.remove();
  }

  // The viewer over the gallery's images, from the clicked one.
  view(item) {
    const items = [...this.gallery.querySelectorAll('[data-gallery-item]')];
    this.viewer.open(items.map((it) => ({ filename: it.dataset.filename, subfolder: it.dataset.subfolder, type: it.dataset.type,
      meta: { run: short(it.dataset.promptId), node: it.dataset.node } })), items.indexOf(item));
  }

  // Show recent results from the server history on page load.
  async loadHistory() {
    this.history.refresh();
    let h;
    try { h = await fetch('/api/history?max_items=12', { cache: 'no-store' }).then((r) => (r.ok ? r.json() : {})); } catch { return; }
    const entries = Object.entries(h || {});
    for (const [pid, item] of entries) {
      for (const [nid, out] of Object.entries(item.outputs || {})) {
        for (const img of out.images || []) if (img.type !== 'temp') this.addImage(img, pid, nid);
      }
    }
  }
}

function short(id) { return String(id || '').slice(0, 8); }
