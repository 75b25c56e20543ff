// Workflow input/output: download as JSON, export as a ComfyUI workflow (POST /lg/export), open
// JSON/PNG (file picker or drag-and-drop onto the canvas, converted by POST /lg/import on the
// server; the message says what the import kept), the example menu, and the copy of the current
// graph kept in localStorage across reloads (saved after every graph change event).

import { imageInputOf, uploadInto } from './widgets.js';

const STORE_KEY = 'latentgraph.workflow.v1';
const KEPT_KINDS = [['Note', 'note'], ['MarkdownNote', 'Markdown note'], ['Reroute', 'reroute'], ['PrimitiveNode', 'primitive']];

// "14 nodes, 20 links, 2 groups, 2 notes, 3 reroutes, 1 primitive" from /lg/import's summary.
export function keptText(summary) {
  if (!summary) return '';
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const parts = [plural(summary.nodes, 'node'), plural(summary.links, 'link')];
  if (summary.groups) parts.push(plural(summary.groups, 'group'));
  for (const [type, word] of KEPT_KINDS) if ((summary.frontend || {})[type]) parts.push(plural(summary.frontend[type], word));
  return parts.join(', ');
}

export class WorkflowIO {
  // env: {graph, api, toast, refreshSchemas} (as the widgets get); load(doc, {record, fit}) is the
  // editor's loadGraph (it also clears the selection and error marks).
  constructor(env, { root, canvas, load }) {
    this.env = env;
    this.graph = env.graph;
    this.api = env.api;
    this.toast = env.toast;
    this.canvas = canvas;
    this.load = load;
    this.saveTimer = null;
    this.graph.on('change', () => this.scheduleSave());
    this.fileInput = document.createElement('input');
    Object.assign(this.fileInput, { type: 'file', accept: '.json,.png,application/json,image/png', hidden: true });
    this.fileInput.dataset.openFile = '1';
    this.fileInput.addEventListener('change', () => {
      if (this.fileInput.files.length) this.openFile(this.fileInput.files[0]);
      this.fileInput.value = '';
    });
    root.appendChild(this.fileInput);
    this.addExportButton(root);
    const c = canvas;
    c.addEventListener('dragover', (e) => {
      if ([...(e.dataTransfer?.types || [])].includes('Files')) { e.preventDefault(); c.classList.add('lg-dropping'); }
    });
    c.addEventListener('dragleave', () => c.classList.remove('lg-dropping'));
    c.addEventListener('drop', (e) => this.onDrop(e));
  }

  // A file dropped on an image-loading node is uploaded into it; anywhere else it is a workflow.
  onDrop(e) {
    this.canvas.classList.remove('lg-dropping');
    const files = e.dataTransfer ? [...e.dataTransfer.files] : [];
    if (!files.length) return;
    e.preventDefault();
    const nodeEl = e.target.closest && e.target.closest('.lg-node');
    const node = nodeEl && this.graph.nodes.get(nodeEl.dataset.id);
    const input = imageInputOf(this.graph, node);
    if (input && /^image\//.test(files[0].type)) uploadInto(this.env, node, input, files[0]);
    else this.openFile(files[0]);
  }

  pickFile() { this.fileInput.click(); }

  // Any supported file (native / ComfyUI UI / ComfyUI API JSON, PNG with metadata) → load it.
  async openFile(file) {
    try {
      this.loaded(file.name, await this.api.importFile(file));
    } catch (e) {
      // The server's own sentence ("Cannot import x.png: …") reads better than "400: …".
      const why = e.body && typeof e.body.error === 'string' ? e.body.error : e.message;
      this.toast(/^Cannot import /.test(why) || why.startsWith(file.name) ? why : `Cannot open ${file.name}: ${why}`, 'error');
    }
  }

  // A workflow object (a run's, from the history) → load it through the same import.
  async openObject(obj, name) {
    this.loaded(name, await this.api.importObject(obj));
  }

  // Load an import's document and say what it kept (and which node types cannot run here).
  loaded(name, res) {
    this.load(res.workflow, { record: true, fit: true });
    const kept = keptText(res.summary);
    this.toast(`Loaded ${name}${res.kind ? ` (${res.kind})` : ''}${kept ? `: ${kept}` : ''}`, 'info');
    const unknown = (res.summary && res.summary.unknown) || [];
    if (unknown.length) this.toast(`Kept ${unknown.length} node type(s) this server does not know (they cannot run): ${unknown.join(', ')}`, 'warn');
  }

  // "Export" beside Save in the toolbar: the graph as a ComfyUI workflow (notes, reroutes,
  // primitives, groups and everything an import kept go back as ComfyUI saved them).
  addExportButton(root) {
    const save = root.querySelector('[data-action="save"]');
    if (!save) return;
    const b = document.createElement('button');
    Object.assign(b, { type: 'button', className: 'lg-btn', textContent: 'Export', title: 'Download as a ComfyUI workflow (.json)' });
    b.dataset.action = 'export-comfy';
    b.addEventListener('click', (e) => { e.preventDefault(); this.exportComfy(); });
    save.after(b);
  }

  async exportComfy(name = 'workflow-comfyui.json') {
    try {
      const res = await fetch('/lg/export', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ workflow: this.graph.serialize() }) });
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
      this.saveBlob(name, new Blob([JSON.stringify(body.workflow, null, 2)], { type: 'application/json' }));
    } catch (e) {
      this.toast(`Export failed: ${e.message}`, 'error');
    }
  }

  download(name = 'workflow.json') {
    this.saveBlob(name, new Blob([JSON.stringify(this.graph.serialize(), null, 2)], { type: 'application/json' }));
  }

  saveBlob(name, blob) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 2000);
  }

  // Persist the graph soon (debounced) so a reload finds it again.
  scheduleSave() {
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.saveNow(), 250);
  }

  saveNow() {
    clearTimeout(this.saveTimer);
    try { localStorage.setItem(STORE_KEY, JSON.stringify(this.graph.serialize())); } catch (e) { console.warn('localStorage', e); }
  }

  stored() {
    try {
      const doc = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
      return doc && doc.format === 'latentgraph' ? doc : null;
    } catch { return null; }
  }

  async fillExamples(select) {
    try {
      const res = await this.api.workflows();
      for (const w of res.workflows || []) {
        const o = document.createElement('option');
        o.value = w.name; o.textContent = w.title;
        select.appendChild(o);
      }
    } catch (e) {
      this.toast(`Cannot list example workflows: ${e.message}`, 'error');
    }
    select.addEventListener('change', async () => {
      const name = select.value;
      select.value = '';
      if (name) await this.loadExample(name);
    });
  }

  async loadExample(name, { quietMissing = false } = {}) {
    try {
      const res = await this.api.workflow(name);
      this.load(res.workflow, { record: true, fit: true });
      return true;
    } catch (e) {
      if (!(quietMissing && e.status === 404)) this.toast(`Cannot load example “${name}”: ${e.message}`, 'error');
      return false;
    }
  }

  // Load a result image's embedded workflow back into the editor (via the server's PNG import).
  async loadFromImage(url, name) {
    try {
      const res = await fetch(url);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const blob = await res.blob();
      await this.openFile(new File([blob], name || 'image.png', { type: blob.type || 'image/png' }));
    } catch (e) {
      this.toast(`Cannot read the image's workflow: ${e.message}`, 'error');
    }
  }
}
