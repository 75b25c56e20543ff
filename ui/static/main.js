// Entry point of the Latentgraph editor: builds the layout inside the Gradio host, wires the graph
// model, renderer, interaction, palette, workflow I/O and run panel, and exposes window.latentgraph.
import { Api } from './api.js';
import { Graph } from './graph.js';
import { Renderer } from './render.js';
import { el } from './dom.js';
import { Interaction } from './interact.js';
import { Palette } from './palette.js';
import { WorkflowIO } from './io.js';
import { RunPanel } from './run.js';
import { EditorActions } from './actions.js';
import { ContextMenu } from './menu.js';

const TOOLBAR = [
  ['add-node', 'Add node', 'Add a node (or double-click the canvas)'],
  ['open', 'Open…', 'Open a workflow (.json or .png), or drop it on the canvas'],
  ['save', 'Save', 'Download the workflow as JSON (Ctrl+S)'],
  ['undo', 'Undo', 'Ctrl+Z'], ['redo', 'Redo', 'Ctrl+Y / Ctrl+Shift+Z'],
  ['fit', 'Fit', 'Fit the graph to the view (.)'], ['group', 'Group', 'Frame the selected nodes in a group (Ctrl+G)'],
  ['refresh', 'Refresh', 'Re-read node types and model lists from the server'],
  ['clear', 'Clear', 'Remove every node'],
  ['help', '?', 'Mouse and keyboard shortcuts'],
];

class Editor extends EditorActions {
  constructor(host) {
    super();
    this.host = host;
    this.api = new Api();
    this.graph = new Graph();
    this.selection = new Set();
    this.buildLayout();
    this.renderer = new Renderer(this, this.canvas);
    this.interaction = new Interaction(this, this.canvas);
    this.palette = new Palette(this, this.root);
    this.menu = new ContextMenu(this);
    this.io = new WorkflowIO(this);
    this.run = new RunPanel(this, this.side);
    this.graph.onChange((kind, detail) => this.onGraph(kind, detail));
  }

  buildLayout() {
    this.host.textContent = '';
    this.root = el('div', 'lg-app', { 'data-lg-app': '1' });
    const bar = el('div', 'lg-toolbar');
    bar.appendChild(el('span', 'lg-brand', {}, 'Latentgraph'));
    for (const [action, label, title] of TOOLBAR) {
      const b = el('button', 'lg-btn', { type: 'button', 'data-action': action, title }, label);
      b.addEventListener('click', (e) => this.toolbar(action, e));
      bar.appendChild(b);
    }
    this.examples = el('select', 'lg-input lg-examples', { 'data-examples': '1', title: 'Example workflows' });
    this.examples.appendChild(el('option', null, { value: '' }, 'Examples…'));
    bar.appendChild(this.examples);
    bar.appendChild(el('span', 'lg-conn', { title: 'Server connection' }));
    this.banner = el('div', 'lg-banner', { 'data-error-banner': '1', role: 'alert' });
    this.banner.hidden = true;
    this.banner.addEventListener('click', () => { this.banner.hidden = true; });
    const main = el('div', 'lg-main');
    this.canvas = el('div', 'lg-canvas', { tabindex: '0', 'data-canvas': '1' });
    this.side = el('div', 'lg-side');
    main.append(this.canvas, this.side);
    this.toasts = el('div', 'lg-toasts');
    this.root.append(bar, this.banner, main, this.toasts);
    this.host.appendChild(this.root);
  }

  toolbar(action, e) {
    const acts = {
      'add-node': () => this.palette.open(), open: () => this.io.pickFile(), save: () => this.io.download(),
      undo: () => this.undo(), redo: () => this.redo(), fit: () => this.fitView(), group: () => this.groupSelected(),
      refresh: () => this.refreshObjectInfo(), clear: () => this.clearGraph(), help: () => this.toggleHelp(),
    };
    e.preventDefault();
    acts[action]();
  }

  onGraph(kind, detail) {
    const r = this.renderer;
    if (kind === 'load') {
      for (const id of [...this.selection]) if (!this.graph.nodes.has(id)) this.selection.delete(id);
      r.renderAll();
    } else if (kind === 'add' || kind === 'node') r.renderNode(detail);
    else if (kind === 'remove') for (const id of detail) { this.selection.delete(id); r.renderNode(id); }
    else if (kind === 'links') r.scheduleLinks();
  }

  // Persist after every change; structural edits clear stale validation marks on nodes.
  changed(info = {}) {
    if (info.groups) this.renderer.renderGroups();
    this.io.scheduleSave();
  }

  async refreshObjectInfo({ quiet = false } = {}) {
    try {
      const info = await this.api.objectInfo();
      this.graph.setSchemas(info);
      for (const n of this.graph.nodes.values()) this.graph.fillDefaults(n);
      this.renderer.renderAll();
      if (!quiet) this.toast(`${Object.keys(info).length} node types loaded`, 'info');
      return true;
    } catch (e) {
      this.toast(`Cannot read /object_info: ${e.message}`, 'error');
      return false;
    }
  }

  getGraph() { return this.graph.serialize(); }

  // Replace the graph. record=true makes it undoable; fit=true frames it in the view.
  loadGraph(doc, { record = false, fit = false } = {}) {
    if (record) this.graph.checkpoint();
    this.selection.clear();
    this.clearErrors();
    this.graph.load(doc);
    if (fit || !doc.view) this.fitView();
    this.io.saveNow();
  }

  async start() {
    this.api.connect();
    const ok = await this.refreshObjectInfo({ quiet: true });
    const stored = this.io.stored();
    let loaded = false;
    if (stored) {
      try { this.graph.load(stored); loaded = true; } catch (e) { console.warn(e); }
    }
    if (!loaded && ok) loaded = await this.io.loadExample('default', { quietMissing: true });
    if (!loaded) this.renderer.renderAll();
    this.renderer.applyView();
    this.io.fillExamples(this.examples);
    this.run.refreshQueue();
    this.run.loadHistory();
    this.root.dataset.ready = '1';
  }
}

// Called by the gr.HTML host's js_on_load once this module has loaded.
window.latentgraphBoot = (host) => {
  const editor = new Editor(host);
  window.latentgraph = {
    editor,
    getGraph: () => editor.getGraph(),
    loadGraph: (doc) => editor.loadGraph(doc, { record: true }),
    fitView: () => editor.fitView(),
    ready: editor.start().then(() => true, (e) => { editor.toast(`Editor start failed: ${e.message}`, 'error'); return false; }),
  };
};
