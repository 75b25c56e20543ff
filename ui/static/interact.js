// Pointer and keyboard interaction on the canvas: select (click, shift-click, box), drag nodes and
// groups, pan (empty canvas / middle button), zoom (wheel), connect typed sockets by dragging,
// detach/reconnect by dragging off an input, and the keyboard shortcuts.

const EDITABLE = 'input, textarea, select, [contenteditable="true"]';

export class Interaction {
  constructor(editor, canvas) {
    this.editor = editor;
    this.graph = editor.graph;
    this.r = editor.renderer;
    this.canvas = canvas;
    this.drag = null;
    this.boxEl = document.createElement('div');
    this.boxEl.className = 'lg-boxsel';
    this.boxEl.hidden = true;
    canvas.appendChild(this.boxEl);
    canvas.addEventListener('pointerdown', (e) => this.onDown(e));
    canvas.addEventListener('wheel', (e) => this.onWheel(e), { passive: false });
    canvas.addEventListener('dblclick', (e) => this.onDblClick(e));
    canvas.addEventListener('click', (e) => this.onClick(e));
    canvas.addEventListener('auxclick', (e) => { if (e.button === 1) e.preventDefault(); });
    window.addEventListener('pointermove', (e) => this.onMove(e));
    window.addEventListener('pointerup', (e) => this.onUp(e));
    document.addEventListener('keydown', (e) => this.onKey(e));
  }

  onDown(e) {
    const t = e.target;
    if (e.button === 1) { e.preventDefault(); return this.startPan(e); }
    if (e.button !== 0 || t.closest(`${EDITABLE}, button, .lg-palette`)) return;
    const out = t.closest('.lg-out'), inp = t.closest('.lg-in');
    const nodeEl = t.closest('.lg-node');
    if (out && nodeEl) return this.startConnect(e, nodeEl.dataset.id, Number(out.dataset.output));
    if (inp && nodeEl) return this.startDetach(e, nodeEl.dataset.id, inp.dataset.input);
    if (t.closest('.lg-node-resize') && nodeEl) return this.startResize(e, nodeEl.dataset.id);
    const resize = t.closest('[data-group-resize]');
    if (resize) return this.startGroup(e, Number(resize.dataset.groupResize), 'resize');
    const gtitle = t.closest('.lg-group-title');
    if (gtitle) return this.startGroup(e, Number(gtitle.parentElement.dataset.group), 'move');
    if (nodeEl) return this.startNodeDrag(e, nodeEl.dataset.id);
    if (e.shiftKey || e.ctrlKey || e.metaKey) return this.startBox(e);
    this.startPan(e);
  }

  startPan(e) {
    this.drag = { kind: 'pan', x: e.clientX, y: e.clientY, offset: [...this.graph.view.offset], moved: false };
    this.canvas.classList.add('lg-panning');
  }

  startBox(e) {
    e.preventDefault();
    this.drag = { kind: 'box', x: e.clientX, y: e.clientY, additive: true, start: this.r.toWorld(e.clientX, e.clientY) };
  }

  startNodeDrag(e, id) {
    const sel = this.editor.selection;
    if (e.shiftKey || e.ctrlKey || e.metaKey) {
      if (sel.has(id)) sel.delete(id); else sel.add(id);
      this.editor.selectionChanged();
      return;
    }
    if (!sel.has(id)) { sel.clear(); sel.add(id); this.editor.selectionChanged(); }
    const w = this.r.toWorld(e.clientX, e.clientY);
    this.drag = { kind: 'nodes', start: w, ids: [...sel], orig: [...sel].map((i) => [...this.graph.nodes.get(i).pos]), moved: false };
  }

  startResize(e, id) {
    e.preventDefault();
    const node = this.graph.nodes.get(id);
    this.drag = { kind: 'resize', id, start: this.r.toWorld(e.clientX, e.clientY), width: node.size[0] || 260, moved: false };
  }

  moveResize(e, d) {
    const node = this.graph.nodes.get(d.id), elx = this.r.nodeEl(d.id);
    if (!node || !elx) return;
    const w = this.r.toWorld(e.clientX, e.clientY);
    if (!d.moved) { this.graph.checkpoint(); d.moved = true; }
    node.size[0] = Math.max(160, Math.round(d.width + w[0] - d.start[0]));
    elx.style.width = `${node.size[0]}px`;
    this.r.socketCache.delete(d.id);
    this.r.scheduleLinks();
  }

  startGroup(e, index, mode) {
    e.preventDefault();
    const g = this.graph.groups[index];
    if (!g) return;
    const inside = mode === 'move' ? [...this.graph.nodes.values()].filter((n) => n.pos[0] >= g.bounds[0] && n.pos[1] >= g.bounds[1]
      && n.pos[0] + n.size[0] <= g.bounds[0] + g.bounds[2] && n.pos[1] + n.size[1] <= g.bounds[1] + g.bounds[3]).map((n) => n.id) : [];
    this.drag = { kind: 'group', mode, index, start: this.r.toWorld(e.clientX, e.clientY), orig: [...g.bounds], ids: inside,
      origPos: inside.map((i) => [...this.graph.nodes.get(i).pos]), moved: false };
  }

  startConnect(e, id, outIndex) {
    e.preventDefault();
    const type = this.graph.outputType(this.graph.nodes.get(id), outIndex);
    this.drag = { kind: 'link', src: [id, outIndex], type, from: this.r.socketPos(id, 'out', outIndex), checkpointed: false };
  }

  startDetach(e, id, name) {
    e.preventDefault();
    const link = this.graph.linkInto(id, name);
    if (!link) return this.startReverse(id, name);
    this.graph.checkpoint();
    this.graph.removeLink(link.id);
    this.editor.changed({ links: true });
    this.drag = { kind: 'link', src: [...link.from], type: link.type, from: this.r.socketPos(link.from[0], 'out', link.from[1]), checkpointed: true };
    this.onMove(e);
  }

  // Dragging from a free input: the link is drawn backwards and dropped on an output socket.
  startReverse(id, name) {
    const type = this.graph.inputType(this.graph.nodes.get(id), name);
    this.drag = { kind: 'rlink', dst: [id, name], type, to: this.r.socketPos(id, 'in', name) };
  }

  reverseTarget(e, d) {
    const hit = document.elementFromPoint(e.clientX, e.clientY);
    const out = hit && hit.closest('.lg-out');
    const nodeEl = out && out.closest('.lg-node');
    if (!nodeEl) return null;
    const src = [nodeEl.dataset.id, Number(out.dataset.output)];
    return { src, why: this.graph.checkConnect(src[0], src[1], d.dst[0], d.dst[1]) };
  }

  moveReverse(e, d) {
    const t = this.reverseTarget(e, d);
    this.r.setTempLink(this.r.toWorld(e.clientX, e.clientY), d.to, d.type, !!(t && t.why));
  }

  finishReverse(e, d) {
    this.r.setTempLink(null);
    const t = this.reverseTarget(e, d);
    if (!t) return;
    if (t.why) { this.editor.refuse(d.dst[0], d.dst[1], t.why); return; }
    this.graph.checkpoint();
    this.graph.connect(t.src[0], t.src[1], d.dst[0], d.dst[1]);
    this.editor.changed({ node: d.dst[0] });
  }

  onMove(e) {
    const d = this.drag;
    if (!d) return;
    if (d.kind === 'pan') {
      const dx = e.clientX - d.x, dy = e.clientY - d.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) d.moved = true;
      this.graph.view.offset = [d.offset[0] + dx, d.offset[1] + dy];
      this.r.applyView();
    } else if (d.kind === 'box') {
      const x = Math.min(e.clientX, d.x), y = Math.min(e.clientY, d.y), cr = this.canvas.getBoundingClientRect();
      Object.assign(this.boxEl.style, { left: `${x - cr.left}px`, top: `${y - cr.top}px`, width: `${Math.abs(e.clientX - d.x)}px`, height: `${Math.abs(e.clientY - d.y)}px` });
      this.boxEl.hidden = false;
      d.end = this.r.toWorld(e.clientX, e.clientY);
    } else if (d.kind === 'nodes') this.moveNodes(e, d);
    else if (d.kind === 'group') this.moveGroup(e, d);
    else if (d.kind === 'link') this.moveLink(e, d);
    else if (d.kind === 'rlink') this.moveReverse(e, d);
    else if (d.kind === 'resize') this.moveResize(e, d);
  }

  moveNodes(e, d) {
    const w = this.r.toWorld(e.clientX, e.clientY), dx = w[0] - d.start[0], dy = w[1] - d.start[1];
    if (!d.moved && Math.abs(dx) + Math.abs(dy) < 3) return;
    if (!d.moved) { this.graph.checkpoint(); d.moved = true; }
    d.ids.forEach((id, i) => {
      const n = this.graph.nodes.get(id);
      if (n) { n.pos = [Math.round(d.orig[i][0] + dx), Math.round(d.orig[i][1] + dy)]; this.r.moveNode(id); }
    });
  }

  moveGroup(e, d) {
    const w = this.r.toWorld(e.clientX, e.clientY), dx = w[0] - d.start[0], dy = w[1] - d.start[1];
    if (!d.moved && Math.abs(dx) + Math.abs(dy) < 3) return;
    if (!d.moved) { this.graph.checkpoint(); d.moved = true; }
    const g = this.graph.groups[d.index], o = d.orig;
    if (d.mode === 'resize') g.bounds = [o[0], o[1], Math.max(120, Math.round(o[2] + dx)), Math.max(60, Math.round(o[3] + dy))];
    else {
      g.bounds = [Math.round(o[0] + dx), Math.round(o[1] + dy), o[2], o[3]];
      d.ids.forEach((id, i) => { this.graph.nodes.get(id).pos = [Math.round(d.origPos[i][0] + dx), Math.round(d.origPos[i][1] + dy)]; this.r.moveNode(id); });
    }
    this.r.renderGroups();
  }

  // Where a dragged link would land: {nodeId, input, why} (why = refusal reason or null).
  dropTarget(e, d) {
    const hit = document.elementFromPoint(e.clientX, e.clientY);
    const nodeEl = hit && hit.closest('.lg-node');
    if (!nodeEl) return null;
    const id = nodeEl.dataset.id, node = this.graph.nodes.get(id);
    const sock = hit.closest('.lg-in, [data-widget]');
    let name = sock ? (sock.dataset.input || sock.dataset.widget) : null;
    if (!name) {   // dropped on the node body: first free compatible input, else first compatible
      const ins = this.graph.socketInputs(node);
      const ok = ins.filter((i) => !this.graph.checkConnect(d.src[0], d.src[1], id, i.name));
      const free = ok.find((i) => !this.graph.linkInto(id, i.name));
      name = (free || ok[0] || ins[0] || {}).name;
      if (!name) return { nodeId: id, input: null, why: 'this node has no inputs' };
    }
    return { nodeId: id, input: name, why: this.graph.checkConnect(d.src[0], d.src[1], id, name) };
  }

  moveLink(e, d) {
    const w = this.r.toWorld(e.clientX, e.clientY);
    const target = this.dropTarget(e, d);
    for (const x of this.canvas.querySelectorAll('.lg-hover-ok, .lg-hover-bad')) x.classList.remove('lg-hover-ok', 'lg-hover-bad');
    if (target && target.input) {
      const s = this.canvas.querySelector(`.lg-node[data-id="${target.nodeId}"] [data-input="${target.input}"], .lg-node[data-id="${target.nodeId}"] [data-widget="${target.input}"]`);
      if (s) s.classList.add(target.why ? 'lg-hover-bad' : 'lg-hover-ok');
    }
    this.r.setTempLink(d.from, w, d.type, !!(target && target.why));
  }

  finishLink(e, d) {
    this.r.setTempLink(null);
    for (const x of this.canvas.querySelectorAll('.lg-hover-ok, .lg-hover-bad')) x.classList.remove('lg-hover-ok', 'lg-hover-bad');
    const target = this.dropTarget(e, d);
    if (!target) {   // released on the empty canvas: offer the nodes that accept this type
      const hit = document.elementFromPoint(e.clientX, e.clientY);
      if (hit && hit.closest('.lg-canvas') && !hit.closest('.lg-group-title')) this.editor.palette.open(e.clientX, e.clientY, { src: d.src, type: d.type });
      return;
    }
    if (target.why || !target.input) {
      this.editor.refuse(target.nodeId, target.input, target.why || 'no input');
      return;
    }
    if (!d.checkpointed) this.graph.checkpoint();
    this.graph.connect(d.src[0], d.src[1], target.nodeId, target.input);
    this.editor.changed({ node: target.nodeId });
  }

  onUp(e) {
    const d = this.drag;
    if (!d) return;
    this.drag = null;
    this.canvas.classList.remove('lg-panning');
    if (d.kind === 'pan') {
      if (!d.moved && e.target.closest && e.target.closest('.lg-canvas') && this.editor.selection.size) {
        this.editor.selection.clear(); this.editor.selectionChanged();
      }
      this.editor.changed({ viewOnly: true });
    } else if (d.kind === 'box') this.finishBox(d);
    else if (d.kind === 'link') this.finishLink(e, d);
    else if (d.kind === 'rlink') this.finishReverse(e, d);
    else if (d.kind === 'resize') { this.r.measure(this.graph.nodes.get(d.id)); this.editor.changed({}); }
    else if (d.moved) this.editor.changed({ moved: true });
  }

  finishBox(d) {
    this.boxEl.hidden = true;
    if (!d.end) return;
    const x0 = Math.min(d.start[0], d.end[0]), x1 = Math.max(d.start[0], d.end[0]);
    const y0 = Math.min(d.start[1], d.end[1]), y1 = Math.max(d.start[1], d.end[1]);
    for (const n of this.graph.nodes.values()) {
      if (n.pos[0] < x1 && n.pos[0] + n.size[0] > x0 && n.pos[1] < y1 && n.pos[1] + n.size[1] > y0) this.editor.selection.add(n.id);
    }
    this.editor.selectionChanged();
  }

  onWheel(e) {
    if (e.target.closest('textarea, select, .lg-palette') && !e.ctrlKey) return;
    e.preventDefault();
    const v = this.graph.view, r = this.canvas.getBoundingClientRect();
    const factor = Math.exp(-e.deltaY * 0.0015);
    const s = Math.max(0.1, Math.min(4, v.scale * factor));
    const mx = e.clientX - r.left, my = e.clientY - r.top;
    v.offset = [mx - (mx - v.offset[0]) * (s / v.scale), my - (my - v.offset[1]) * (s / v.scale)];
    v.scale = s;
    this.r.applyView();
    this.editor.changed({ viewOnly: true });
  }

  onDblClick(e) {
    const t = e.target;
    if (t.closest(`${EDITABLE}, button, .lg-palette`)) return;
    const title = t.closest('.lg-node-title');
    if (title) return this.editor.renameNode(title.closest('.lg-node').dataset.id);
    const gt = t.closest('.lg-group-title');
    if (gt) return this.editor.renameGroup(Number(gt.parentElement.dataset.group));
    if (!t.closest('.lg-node')) this.editor.palette.open(e.clientX, e.clientY);
  }

  onClick(e) {
    const t = e.target.closest('button');
    if (!t) return;
    if (t.dataset.unconvert) {
      const id = t.closest('.lg-node').dataset.id;
      this.graph.checkpoint(); this.graph.toggleConverted(id, t.dataset.unconvert); this.editor.changed({});
    } else if (t.dataset.groupDelete !== undefined) {
      this.graph.checkpoint(); this.graph.groups.splice(Number(t.dataset.groupDelete), 1); this.editor.changed({ groups: true });
    } else if (t.dataset.groupColor !== undefined) {
      this.graph.checkpoint(); this.editor.cycleGroupColor(Number(t.dataset.groupColor));
    }
  }

  onKey(e) {
    if (!this.editor.root.isConnected) return;
    const mod = e.ctrlKey || e.metaKey, k = e.key.toLowerCase();
    if (mod && k === 'enter') { e.preventDefault(); this.editor.run.queue({ front: e.shiftKey }); return; }
    if (e.target.closest && e.target.closest(EDITABLE)) return;
    if (k === 'escape') { this.editor.palette.close(); return; }
    const ed = this.editor;
    const actions = {
      delete: () => ed.deleteSelected(), backspace: () => ed.deleteSelected(), '.': () => ed.fitView(),
    };
    const modActions = {
      z: () => (e.shiftKey ? ed.redo() : ed.undo()), y: () => ed.redo(), v: () => ed.paste(),
      c: () => ((ed.selection.size > 0 && String(window.getSelection() || '') === '') ? ed.copy() : false),
      a: () => ed.selectAll(), m: () => ed.toggleMode('muted'), b: () => ed.toggleMode('bypass'), g: () => ed.groupSelected(),
      s: () => ed.io.download(), o: () => ed.io.pickFile(),
    };
    const fn = mod ? modActions[k] : (e.altKey ? null : actions[k]);
    if (fn && fn() !== false) e.preventDefault();
  }
}
