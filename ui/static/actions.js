// Editor commands shared by the toolbar, the keyboard, the context menu and the palette:
// add/delete/copy/paste, undo/redo, selection, groups, node modes, titles, help. Each command is one
// graph edit (one undo step); nothing here redraws: the renderer follows the graph's change events.
// Mixed into the Editor class in main.js.

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
    const node = this.graph.addNode(type, pos);
    this.selection.set([node.id]);
    return node;
  }

  selectAll() { this.selection.add(this.graph.nodes.keys()); }

  deleteSelected() {
    if (this.selection.size) this.graph.removeNodes(this.selection.list());
  }

  copy() {
    if (!this.selection.size) return;
    const ids = new Set(this.selection.list());
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
    const ids = this.graph.insertCopies(clip.nodes, clip.links, 40);
    this.selection.set(ids);
    this.clipboard = { nodes: clip.nodes.map((n) => ({ ...n, pos: [n.pos[0] + 40, n.pos[1] + 40] })), links: clip.links };
  }

  undo() { if (this.graph.undo()) this.feedback.clearErrors(); }
  redo() { if (this.graph.redo()) this.feedback.clearErrors(); }

  fitView() { this.graph.setView(this.renderer.fittedView()); }

  clearGraph() {
    if (!this.graph.nodes.size && !this.graph.groups.length) return;
    this.graph.load({ format: 'latentgraph', version: 1, nodes: [], links: [], groups: [] }, { keepView: true, record: true });
    this.toast('Cleared. Undo (Ctrl+Z) brings the graph back.', 'info');
  }

  toggleMode(mode) {
    if (!this.selection.size) return;
    this.graph.edit((g) => {
      for (const id of this.selection.list()) g.setNodeProps(id, { mode: g.nodes.get(id).mode === mode ? 'normal' : mode });
    });
  }

  // Frame the selected nodes (or an empty area in view) in a new titled group.
  groupSelected() {
    const nodes = this.selection.list().map((id) => this.graph.nodes.get(id)).filter(Boolean);
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
    this.graph.addGroup({ title: 'Group', bounds: bounds.map(Math.round), color: GROUP_COLORS[this.graph.groups.length % GROUP_COLORS.length] });
  }

  cycleGroupColor(i) {
    const g = this.graph.groups[i];
    if (g) this.graph.setGroup(i, { color: GROUP_COLORS[(GROUP_COLORS.indexOf(g.color) + 1) % GROUP_COLORS.length] });
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
      if (ok && v && v !== current) apply(v);
      else target.textContent = current;
    };
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') finish(true); if (e.key === 'Escape') finish(false); e.stopPropagation(); });
    input.addEventListener('blur', () => finish(true));
  }

  renameNode(id) {
    const n = this.graph.nodes.get(id), e = this.renderer.nodeEl(id);
    if (!n || !e) return;
    this.editTitle(e.querySelector('.lg-node-title'), n.title, (v) => this.graph.setNodeProps(id, { title: v }));
  }

  renameGroup(i) {
    const g = this.graph.groups[i];
    const head = this.renderer.groupLayer.querySelector(`[data-group="${i}"] .lg-group-title`);
    if (!g || !head) return;
    this.editTitle(head, g.title, (v) => this.graph.setGroup(i, { title: v }));
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
}
