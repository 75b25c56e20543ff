// Entry point of the Latentgraph editor: builds the layout inside the Gradio host, wires the graph
// model, renderer, interaction, palette, workflow I/O and run panel, and exposes window.latentgraph.
// Components get what they need (the graph, the selection, the renderer as the view, the api client,
// the command table), not the editor; they follow the graph's change events instead of being called
// after each edit.
import { Api } from './api.js';
import { Graph } from './graph.js';
import { Selection } from './selection.js';
import { Renderer } from './render.js';
import { el } from './dom.js';
import { Interaction } from './interact.js';
import { Palette } from './palette.js';
import { WorkflowIO } from './io.js';
import { RunPanel } from './run.js';
import { EditorActions } from './actions.js';
import { Feedback } from './feedback.js';
import { ContextMenu } from './menu.js';

// Toolbar buttons: data-action, label, tooltip, command (see Editor.commands).
const TOOLBAR = [
  ['add-node', 'Add node', 'Add a node (or double-click the canvas)', 'openPalette'],
  ['open', 'Open…', 'Open a workflow (.json or .png), or drop it on the canvas', 'pickFile'],
  ['save', 'Save', 'Download the workflow as JSON (Ctrl+S)', 'download'],
  ['undo', 'Undo', 'Ctrl+Z', 'undo'], ['redo', 'Redo', 'Ctrl+Y / Ctrl+Shift+Z', 'redo'],
  ['fit', 'Fit', 'Fit the graph to the view (.)', 'fitView'],
  ['group', 'Group', 'Frame the selected nodes in a group (Ctrl+G)', 'groupSelected'],
  ['refresh', 'Refresh', 'Re-read node types and model lists from the server', 'refreshSchemas'],
  ['clear', 'Clear', 'Remove every node', 'clearGraph'],
  ['help', '?', 'Mouse and keyboard shortcuts', 'toggleHelp'],
];

class Editor extends EditorActions {
  constructor(host) {
    super();
    this.host = host;
    this.api = new Api();
    this.graph = new Graph();
    this.selection = new Selection(this.graph);   // first 'change' listener: prunes removed ids
    this.cmd = this.commands();
    this.buildLayout();
    const graph = this.graph, selection = this.selection, commands = this.cmd;
    const env = { graph, api: this.api, toast: (m, k) => this.toast(m, k), refreshSchemas: (o) => this.refreshObjectInfo(o) };
    this.renderer = new Renderer(graph, this.canvas, { selection, widgetEnv: env });
    this.feedback = new Feedback(this.root, this.renderer, this.banner, this.toasts);
    this.interaction = new Interaction(graph, this.renderer, this.canvas, { selection, commands });
    this.palette = new Palette(graph, this.renderer, this.root, selection);
    this.menu = new ContextMenu(graph, this.root, this.canvas, { selection, commands });
    this.io = new WorkflowIO(env, { root: this.root, canvas: this.canvas, load: (doc, o) => this.loadGraph(doc, o) });
    this.run = new RunPanel(graph, this.api, this.side, { root: this.root, view: this.renderer, feedback: this.feedback,
      io: this.io });
  }

  // Everything the toolbar, keyboard, canvas and menus may ask for, by name.
  commands() {
    const c = {};
    for (const name of ['deleteSelected', 'fitView', 'undo', 'redo', 'paste', 'copy', 'selectAll', 'toggleMode',
      'groupSelected', 'clearGraph', 'toggleHelp', 'renameNode', 'renameGroup', 'cycleGroupColor']) c[name] = (...a) => this[name](...a);
    return Object.assign(c, {
      download: () => this.io.download(), pickFile: () => this.io.pickFile(), queue: (o) => this.run.queue(o),
      openPalette: (x, y, link) => this.palette.open(x, y, link), closePalette: () => this.palette.close(),
      refuse: (id, input, why) => this.feedback.refuse(id, input, why), refreshSchemas: () => this.refreshObjectInfo(),
      isLive: () => this.root.isConnected,
    });
  }

  buildLayout() {
    this.host.textContent = '';
    this.root = el('div', 'lg-app', { 'data-lg-app': '1' });
    const bar = el('div', 'lg-toolbar');
    bar.appendChild(el('span', 'lg-brand', {}, 'Latentgraph'));
    for (const [action, label, title, command] of TOOLBAR) {
      const b = el('button', 'lg-btn', { type: 'button', 'data-action': action, title }, label);
      b.addEventListener('click', (e) => { e.preventDefault(); this.cmd[command](); });
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

  toast(message, kind = 'info') { this.feedback.toast(message, kind); }

  // New node types / model lists; the graph fills new defaults and its change event redraws.
  async refreshObjectInfo({ quiet = false } = {}) {
    try {
      const info = await this.api.objectInfo();
      this.graph.setSchemas(info);
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
    this.selection.set([]);
    this.feedback.clearErrors();
    this.graph.load(doc, { record });
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
