// Editor commands shared by the toolbar, the keyboard and the palette: add/delete/copy/paste,
// undo/redo, selection, groups, node modes, and the visible feedback (toasts, refused links,
// validation errors, per-node run state). Mixed into the Editor class in main.js.

const HELP = [
  ['Double-click canvas', 'add a node (search, ↑/↓, Enter)'], ['Drag output → input', 'connect (types must match)'],
  ['Drag from a linked input', 'detach / reconnect'], ['Release a link on the canvas', 'add a node that accepts it'],
  ['Drag canvas / middle button', 'pan'], ['Wheel', 'zoom'], ['Ctrl/Shift + drag', 'box select'],
  ['Shift-click', 'add to the selection'], ['Right-click', 'node / canvas menu'], ['Ctrl+Enter', 'queue (Shift: front)'],
  ['Ctrl+Z / Ctrl+Y', 'undo / redo'], ['Ctrl+C / Ctrl+V', 'copy / paste'], ['Delete', 'remove selected'],
  ['Ctrl+G', 'group selected'], ['Ctrl+M / Ctrl+B', 'mute / bypass'], ['Ctrl+S / Ctrl+O', 'save / open'],
  ['.', 'fit view'], ['Drop .json / .png', 'open a workflow (an image on Load Image uploads it)'],
];
const GROUP_COLORS = ['#3f5f7f', '#5f7f3f', '#7f5f3f', '#6f3f7f', '#3f7f7a', '#7f3f4f', '#55555f'];
const CLIP_KEY = 'latentgraph.clipboard.v1';

export class EditorActions {
  addNode(type, pos) {
    this.graph.checkpoint();
    const node = this.graph.addNode(type, pos);
    this.selection.clear();
    this.selection.add(node.id);
    this.selectionChanged();
    this.changed({});
    return node;
  }

  selectionChanged() { this.renderer.setSelected(this.selection); }

  selectAll() {
    for (const id of this.graph.nodes.keys()) this.selection.add(id);
    this.selectionChanged();
  }

  deleteSelected() {
    if (!this.selection.size) return;
    this.graph.checkpoint();
    this.graph.removeNodes([...this.selection]);
    this.selection.clear();
    this.changed({});
  }

  copy() {
    if (!this.selection.size) return;
    const ids = new Set(this.selection);
    const doc = this.graph.serialize();
    const clip = {
      nodes: doc.nodes.filter((n) => ids.has(n.id)),
      links: doc.links.filter((l) => ids.has(l.from[0]) && ids.has(l.to[0])),
    };
    this.clipboard = clip;
    try { localStorage.setItem(CLIP_KEY, JSON.stringify(clip)); } catch { /* quota: keep in memory only */ }
    this.toast(`Copied ${clip.nodes.length} node(s)`, 'info');
  }

  // Paste the copied nodes (new ids, offset by 40px) with the links among them; select them.
  paste() {
    let clip = this.clipboard;
    if (!clip) { try { clip = JSON.parse(localStorage.getItem(CLIP_KEY) || 'null'); } catch { clip = null; } }
    if (!clip || !clip.nodes.length) return;
    this.graph.checkpoint();
    const map = new Map();
    this.selection.clear();
    for (const n of clip.nodes) {
      const id = this.graph.nextNodeId();
      map.set(n.id, id);
      const copy = JSON.parse(JSON.stringify(n));
      copy.id = id;
      copy.pos = [n.pos[0] + 40, n.pos[1] + 40];
      this.graph.fillDefaults(copy);
      this.graph.nodes.set(id, copy);
      this.selection.add(id);
    }
    for (const l of clip.links) {
      const id = this.graph.nextLinkId();
      this.graph.links.set(id, { id, from: [map.get(l.from[0]), l.from[1]], to: [map.get(l.to[0]), l.to[1]], type: l.type });
    }
    this.clipboard = { nodes: clip.nodes.map((n) => ({ ...n, pos: [n.pos[0] + 40, n.pos[1] + 40] })), links: clip.links };
    this.renderer.renderAll();
    this.changed({});
  }

  undo() { if (this.graph.undo()) { this.clearErrors(); this.changed({}); } }
  redo() { if (this.graph.redo()) { this.clearErrors(); this.changed({}); } }

  fitView() { this.renderer.fitView(); this.changed({ viewOnly: true }); }

  clearGraph() {
    if (!this.graph.nodes.size && !this.graph.groups.length) return;
    this.graph.checkpoint();
    this.graph.load({ format: 'latentgraph', version: 1, nodes: [], links: [], groups: [] }, { keepView: true });
    this.changed({});
    this.toast('Cleared. Undo (Ctrl+Z) brings the graph back.', 'info');
  }

  toggleMode(mode) {
    if (!this.selection.size) return;
    this.graph.checkpoint();
    for (const id of this.selection) {
      const n = this.graph.nodes.get(id);
      n.mode = n.mode === mode ? 'normal' : mode;
      this.renderer.renderNode(id);
    }
    this.changed({});
  }

  // Frame the selected nodes (or an empty area in view) in a new titled group.
  groupSelected() {
    this.graph.checkpoint();
    const nodes = [...this.selection].map((id) => this.graph.nodes.get(id)).filter(Boolean);
    let bounds;
    if (nodes.length) {
      const x0 = Math.min(...nodes.map((n) => n.pos[0])) - 20, y0 = Math.min(...nodes.map((n) => n.pos[1])) - 50;
      const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0])) + 20, y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1])) + 20;
      bounds = [x0, y0, x1 - x0, y1 - y0];
    } else {
      const r = this.canvas.getBoundingClientRect();
      const p = this.renderer.toWorld(r.left + 80, r.top + 80);
      bounds = [Math.round(p[0]), Math.round(p[1]), 400, 300];
    }
    this.graph.groups.push({ title: 'Group', bounds: bounds.map(Math.round), color: GROUP_COLORS[this.graph.groups.length % GROUP_COLORS.length] });
    this.changed({ groups: true });
  }

  cycleGroupColor(i) {
    const g = this.graph.groups[i];
    if (!g) return;
    g.color = GROUP_COLORS[(GROUP_COLORS.indexOf(g.color) + 1) % GROUP_COLORS.length];
    this.changed({ groups: true });
  }

  // Inline title editing for nodes and groups (Enter/blur commits, Escape cancels).
  editTitle(target, current, apply) {
    const input = document.createElement('input');
    input.className = 'lg-input lg-title-edit';
    input.value = current;
    target.replaceChildren(input);
    input.focus(); input.select();
    let done = false;
    const finish = (ok) => {
      if (done) return; done = true;
      const v = input.value.trim();
      if (ok && v && v !== current) { this.graph.checkpoint(); apply(v); this.changed({}); }
      else target.textContent = current;
    };
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') finish(true); if (e.key === 'Escape') finish(false); e.stopPropagation(); });
    input.addEventListener('blur', () => finish(true));
  }

  renameNode(id) {
    const n = this.graph.nodes.get(id), e = this.renderer.nodeEl(id);
    if (!n || !e) return;
    this.editTitle(e.querySelector('.lg-node-title'), n.title, (v) => { n.title = v; this.renderer.renderNode(id); });
  }

  renameGroup(i) {
    const g = this.graph.groups[i];
    const head = this.renderer.groupLayer.querySelector(`[data-group="${i}"] .lg-group-title`);
    if (!g || !head) return;
    this.editTitle(head, g.title, (v) => { g.title = v; this.renderer.renderGroups(); });
  }

  toggleHelp() {
    if (this.help) { this.help.remove(); this.help = null; return; }
    const box = document.createElement('div');
    box.className = 'lg-help';
    box.dataset.help = '1';
    for (const [keys, what] of HELP) {
      const row = document.createElement('div');
      const k = document.createElement('kbd');
      k.textContent = keys;
      row.append(k, document.createTextNode(what));
      box.appendChild(row);
    }
    box.addEventListener('click', () => this.toggleHelp());
    this.root.appendChild(box);
    this.help = box;
  }

  toast(message, kind = 'info') {
    const t = document.createElement('div');
    t.className = `lg-toast lg-toast-${kind}`;
    t.dataset.toast = kind;
    t.textContent = message;
    this.toasts.appendChild(t);
    setTimeout(() => t.remove(), kind === 'error' ? 9000 : 3500);
  }

  // A refused connection: flash the input red and say why.
  refuse(nodeId, input, why) {
    const e = this.renderer.nodeEl(nodeId);
    const s = e && input && e.querySelector(`[data-input="${input}"], [data-widget="${input}"]`);
    const target = s || e;
    if (target) { target.classList.add('lg-refused'); setTimeout(() => target.classList.remove('lg-refused'), 1200); }
    this.toast(`Cannot connect: ${why}`, 'error');
  }

  clearErrors() {
    this.banner.hidden = true;
    for (const e of this.root.querySelectorAll('.lg-node.lg-error')) e.classList.remove('lg-error');
    for (const e of this.root.querySelectorAll('.lg-input-error')) { e.classList.remove('lg-input-error'); e.removeAttribute('data-error'); }
    for (const e of this.root.querySelectorAll('.lg-node-messages')) e.textContent = '';
  }

  setNodeError(id, messages, inputs = {}) {
    const e = this.renderer.nodeEl(id);
    if (!e) return;
    e.classList.add('lg-error');
    e.querySelector('.lg-node-badge').textContent = '!';
    const box = e.querySelector('.lg-node-messages');
    box.textContent = '';
    for (const m of messages) {
      const line = document.createElement('div');
      line.className = 'lg-node-message';
      line.textContent = m;
      box.appendChild(line);
    }
    for (const [name, msg] of Object.entries(inputs)) {
      const s = e.querySelector(`[data-input="${name}"], [data-widget="${name}"]`);
      if (s) { s.classList.add('lg-input-error'); s.dataset.error = msg; s.title = msg; }
    }
    this.renderer.socketCache.delete(id);
    this.renderer.scheduleLinks();
  }

  // A 400 from /lg/queue: banner with ComfyUI's message + every offending node and input marked.
  showValidation(body) {
    this.clearErrors();
    const err = body.error || {};
    const nodeErrors = body.node_errors || {};
    const lines = [];
    for (const [id, ne] of Object.entries(nodeErrors)) {
      const msgs = [], inputs = {};
      for (const x of ne.errors || []) {
        const text = notInListText(x) || (x.details ? `${x.message}: ${x.details}` : x.message);
        msgs.push(text);
        const name = x.extra_info && x.extra_info.input_name;
        if (name) inputs[name] = text;
      }
      this.setNodeError(String(id), msgs, inputs);
      lines.push(`#${id} ${ne.class_type || ''}: ${msgs.join('; ')}`);
    }
    const head = typeof err === 'string' ? err : (err.message || 'Validation failed');
    // With node lines the details would only repeat them.
    const details = err.details && !lines.length ? ` — ${err.details}` : '';
    this.banner.textContent = `${head}${details}${lines.length ? `\n${lines.join('\n')}` : ''}`;
    this.banner.hidden = false;
  }

  clearRunState() {
    for (const e of this.root.querySelectorAll('.lg-node')) {
      e.classList.remove('lg-running', 'lg-cached', 'lg-done', 'lg-error');
      const b = e.querySelector('.lg-node-badge');
      if (b) b.textContent = '';
    }
    for (const e of this.root.querySelectorAll('.lg-node-messages')) e.textContent = '';
  }

  setNodeState(id, state) {
    const e = this.renderer.nodeEl(id);
    if (!e) return;
    e.classList.remove('lg-running', 'lg-cached', 'lg-done');
    e.classList.add(`lg-${state}`);
    e.dataset.state = state;
    e.querySelector('.lg-node-badge').textContent = { running: '▶', cached: 'cached', done: '✓' }[state] || '';
  }
}

// "Value not in list" for a file (checkpoint, LoRA, image…) that is not there: say what to do
// instead of printing every choice.
function notInListText(x) {
  const info = x.extra_info || {};
  const choices = Array.isArray(info.input_config) ? info.input_config[0] : null;
  if (x.type !== 'value_not_in_list' || !info.input_name || !Array.isArray(choices)) return null;
  const name = info.input_name, value = String(info.received_value ?? '');
  if (!/\.[a-z0-9]{2,12}$/i.test(value)) return `${name}: “${value}” is not one of the ${choices.length} choices`;
  const folder = FILE_FOLDERS[name] ? `${FILE_FOLDERS[name]}/` : 'the server\'s folder';
  const put = `put the file into ${folder} and press Refresh`;
  return `${name}: “${value}” is not available — ${choices.length
    ? `choose one of the ${choices.length} in the list, or ${put}` : `none is installed; ${put}`}`;
}

// Where the usual file inputs are looked for (default folders; a ComfyUI models folder has the same).
const FILE_FOLDERS = { ckpt_name: 'models/checkpoints', lora_name: 'models/loras', vae_name: 'models/vae',
  model_name: 'models/upscale_models', embedding: 'models/embeddings', image: 'input' };
