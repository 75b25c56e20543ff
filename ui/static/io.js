// Workflow input/output: download as JSON, open JSON/PNG (file picker or drag-and-drop onto the
// canvas, converted by POST /lg/import on the server), the example menu, and the copy of the
// current graph kept in localStorage across reloads (saved after every graph change event).

import { imageInputOf, uploadInto } from './widgets.js';

const STORE_KEY = 'latentgraph.workflow.v1';

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
      const res = await this.api.importFile(file);
      this.load(res.workflow, { record: true, fit: true });
      this.toast(`Loaded ${file.name}${res.kind ? ` (${res.kind})` : ''}`, 'info');
    } catch (e) {
      // The server's own sentence ("Cannot import x.png: …") reads better than "400: …".
      const why = e.body && typeof e.body.error === 'string' ? e.body.error : e.message;
      this.toast(/^Cannot import /.test(why) || why.startsWith(file.name) ? why : `Cannot open ${file.name}: ${why}`, 'error');
    }
  }

  download(name = 'workflow.json') {
    const blob = new Blob([JSON.stringify(this.graph.serialize(), null, 2)], { type: 'application/json' });
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
