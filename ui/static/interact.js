// Pointer and keyboard interaction on the canvas: select (click, shift-click, box), drag nodes and
// groups, pan (empty canvas / middle button), zoom (wheel), connect typed sockets by dragging,
// detach/reconnect by dragging off an input, and the keyboard shortcuts.
// Every kind of drag is one row of DRAGS (move / end); a drag changes the document only through
// graph edits that share the drag as their `step`, so one drag is one undo step.

const EDITABLE = 'input, textarea, select, [contenteditable="true"]';

// Pointer moves below this many pixels (world units for nodes/groups) do not start a move.
const SLOP = 3;

// The drag kinds. `move(ix, e, d)` on each pointer move, `end(ix, e, d)` on release; `d` is the
// state the start function made ({kind, ...}).
const DRAGS = {
  pan: {
    move(ix, e, d) {
      const dx = e.clientX - d.x, dy = e.clientY - d.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) d.moved = true;
      ix.graph.setView({ scale: ix.graph.view.scale, offset: [d.offset[0] + dx, d.offset[1] + dy] });
    },
    end(ix, e, d) {   // a click on the empty canvas clears the selection
      if (!d.moved && e.target.closest && e.target.closest('.lg-canvas') && ix.selection.size) ix.selection.set([]);
    },
  },
  box: {
    move(ix, e, d) {
      const x = Math.min(e.clientX, d.x), y = Math.min(e.clientY, d.y), cr = ix.canvas.getBoundingClientRect();
      Object.assign(ix.boxEl.style, { left: `${x - cr.left}px`, top: `${y - cr.top}px`, width: `${Math.abs(e.clientX - d.x)}px`, height: `${Math.abs(e.clientY - d.y)}px` });
      ix.boxEl.hidden = false;
      d.end = ix.view.toWorld(e.clientX, e.clientY);
    },
    end: (ix, e, d) => ix.finishBox(d),
  },
  nodes: {
    move(ix, e, d) {
      const [dx, dy] = ix.worldDelta(e, d);
      if (dx === null) return;
      ix.graph.edit((g) => g.moveNodes(d.ids.map((id, i) => [id, [d.orig[i][0] + dx, d.orig[i][1] + dy]])), { step: d });
    },
  },
  group: {
    move(ix, e, d) {
      const [dx, dy] = ix.worldDelta(e, d);
      if (dx === null) return;
      const o = d.orig;
      ix.graph.edit((g) => {
        if (d.mode === 'resize') { g.setGroup(d.index, { bounds: [o[0], o[1], Math.max(120, Math.round(o[2] + dx)), Math.max(60, Math.round(o[3] + dy))] }); return; }
        g.setGroup(d.index, { bounds: [Math.round(o[0] + dx), Math.round(o[1] + dy), o[2], o[3]] });
        g.moveNodes(d.ids.map((id, i) => [id, [d.origPos[i][0] + dx, d.origPos[i][1] + dy]]));
      }, { step: d });
    },
  },
  resize: {
    move(ix, e, d) {
      const w = ix.view.toWorld(e.clientX, e.clientY);
      ix.graph.edit((g) => g.resizeNode(d.id, Math.max(160, d.width + w[0] - d.start[0])), { step: d });
    },
  },
  link: { move: (ix, e, d) => ix.moveLink(e, d), end: (ix, e, d) => ix.finishLink(e, d) },
  rlink: { move: (ix, e, d) => ix.moveReverse(e, d), end: (ix, e, d) => ix.finishReverse(e, d) },
};

// Keyboard shortcuts → command names (see Editor.commands in main.js).
const KEYS = { delete: 'deleteSelected', backspace: 'deleteSelected', '.': 'fitView' };
const MOD_KEYS = { y: 'redo', v: 'paste', a: 'selectAll', g: 'groupSelected', s: 'download', o: 'pickFile' };

export class Interaction {
  // view: the Renderer (coordinates, node elements, the dragged link); commands: see main.js.
  constructor(graph, view, canvas, { selection, commands }) {
    this.graph = graph;
    this.view = view;
    this.canvas = canvas;
    this.selection = selection;
    this.commands = commands;
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

  onMove(e) { if (this.drag) DRAGS[this.drag.kind].move(this, e, this.drag); }

  onUp(e) {
    const d = this.drag;
    if (!d) return;
    this.drag = null;
    this.canvas.classList.remove('lg-panning');
    const end = DRAGS[d.kind].end;
    if (end) end(this, e, d);
  }

  // World-space movement since the drag started, or [null, null] while still within the slop.
  worldDelta(e, d) {
    const w = this.view.toWorld(e.clientX, e.clientY), dx = w[0] - d.start[0], dy = w[1] - d.start[1];
    if (!d.moved && Math.abs(dx) + Math.abs(dy) < SLOP) return [null, null];
    d.moved = true;
    return [dx, dy];
  }

  startPan(e) {
    this.drag = { kind: 'pan', x: e.clientX, y: e.clientY, offset: [...this.graph.view.offset], moved: false };
    this.canvas.classList.add('lg-panning');
  }

  startBox(e) {
    e.preventDefault();
    this.drag = { kind: 'box', x: e.clientX, y: e.clientY, start: this.view.toWorld(e.clientX, e.clientY) };
  }

  startNodeDrag(e, id) {
    const sel = this.selection;
    if (e.shiftKey || e.ctrlKey || e.metaKey) { sel.toggle(id); return; }
    if (!sel.has(id)) sel.set([id]);
    const ids = sel.list();
    this.drag = { kind: 'nodes', start: this.view.toWorld(e.clientX, e.clientY), ids,
      orig: ids.map((i) => [...this.graph.nodes.get(i).pos]), moved: false };
  }

  startResize(e, id) {
    e.preventDefault();
    const node = this.graph.nodes.get(id);
    this.drag = { kind: 'resize', id, start: this.view.toWorld(e.clientX, e.clientY), width: node.size[0] || 260 };
  }

  startGroup(e, index, mode) {
    e.preventDefault();
    const g = this.graph.groups[index];
    if (!g) return;
    const inside = mode === 'move' ? [...this.graph.nodes.values()].filter((n) => n.pos[0] >= g.bounds[0] && n.pos[1] >= g.bounds[1]
      && n.pos[0] + n.size[0] <= g.bounds[0] + g.bounds[2] && n.pos[1] + n.size[1] <= g.bounds[1] + g.bounds[3]).map((n) => n.id) : [];
    this.drag = { kind: 'group', mode, index, start: this.view.toWorld(e.clientX, e.clientY), orig: [...g.bounds], ids: inside,
      origPos: inside.map((i) => [...this.graph.nodes.get(i).pos]), moved: false };
  }

  startConnect(e, id, outIndex) {
    e.preventDefault();
    const type = this.graph.outputType(this.graph.nodes.get(id), outIndex);
    this.drag = { kind: 'link', src: [id, outIndex], type, from: this.view.socketPos(id, 'out', outIndex) };
  }

  // Dragging a linked input off detaches its link at once; dropping it elsewhere reconnects it in
  // the same undo step.
  startDetach(e, id, name) {
    e.preventDefault();
    const link = this.graph.linkInto(id, name);
    if (!link) return this.startReverse(id, name);
    const d = { kind: 'link', src: [...link.from], type: link.type, from: this.view.socketPos(link.from[0], 'out', link.from[1]) };
    this.graph.edit((g) => g.removeLink(link.id), { step: d });
    this.drag = d;
    this.onMove(e);
  }

  // Dragging from a free input: the link is drawn backwards and dropped on an output socket.
  startReverse(id, name) {
    const type = this.graph.inputType(this.graph.nodes.get(id), name);
    this.drag = { kind: 'rlink', dst: [id, name], type, to: this.view.socketPos(id, 'in', name) };
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
    this.view.setTempLink(this.view.toWorld(e.clientX, e.clientY), d.to, d.type, !!(t && t.why));
  }

  finishReverse(e, d) {
    this.view.setTempLink(null);
    const t = this.reverseTarget(e, d);
    if (!t) return;
    if (t.why) { this.commands.refuse(d.dst[0], d.dst[1], t.why); return; }
    this.graph.connect(t.src[0], t.src[1], d.dst[0], d.dst[1]);
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

  clearHover() {
    for (const x of this.canvas.querySelectorAll('.lg-hover-ok, .lg-hover-bad')) x.classList.remove('lg-hover-ok', 'lg-hover-bad');
  }

  moveLink(e, d) {
    const w = this.view.toWorld(e.clientX, e.clientY);
    const target = this.dropTarget(e, d);
    this.clearHover();
    if (target && target.input) {
      const s = this.canvas.querySelector(`.lg-node[data-id="${target.nodeId}"] [data-input="${target.input}"], .lg-node[data-id="${target.nodeId}"] [data-widget="${target.input}"]`);
      if (s) s.classList.add(target.why ? 'lg-hover-bad' : 'lg-hover-ok');
    }
    this.view.setTempLink(d.from, w, d.type, !!(target && target.why));
  }

  finishLink(e, d) {
    this.view.setTempLink(null);
    this.clearHover();
    const target = this.dropTarget(e, d);
    if (!target) {   // released on the empty canvas: offer the nodes that accept this type
      const hit = document.elementFromPoint(e.clientX, e.clientY);
      if (hit && hit.closest('.lg-canvas') && !hit.closest('.lg-group-title')) this.commands.openPalette(e.clientX, e.clientY, { src: d.src, type: d.type });
      return;
    }
    if (target.why || !target.input) {
      this.commands.refuse(target.nodeId, target.input, target.why || 'no input');
      return;
    }
    this.graph.edit((g) => g.connect(d.src[0], d.src[1], target.nodeId, target.input), { step: d });
  }

  finishBox(d) {
    this.boxEl.hidden = true;
    if (!d.end) return;
    const x0 = Math.min(d.start[0], d.end[0]), x1 = Math.max(d.start[0], d.end[0]);
    const y0 = Math.min(d.start[1], d.end[1]), y1 = Math.max(d.start[1], d.end[1]);
    const hit = [...this.graph.nodes.values()].filter((n) => n.pos[0] < x1 && n.pos[0] + n.size[0] > x0
      && n.pos[1] < y1 && n.pos[1] + n.size[1] > y0).map((n) => n.id);
    this.selection.add(hit);
  }

  onWheel(e) {
    if (e.target.closest('textarea, select, .lg-palette') && !e.ctrlKey) return;
    e.preventDefault();
    const v = this.graph.view, r = this.canvas.getBoundingClientRect();
    const factor = Math.exp(-e.deltaY * 0.0015);
    const s = Math.max(0.1, Math.min(4, v.scale * factor));
    const mx = e.clientX - r.left, my = e.clientY - r.top;
    this.graph.setView({ scale: s, offset: [mx - (mx - v.offset[0]) * (s / v.scale), my - (my - v.offset[1]) * (s / v.scale)] });
  }

  onDblClick(e) {
    const t = e.target;
    if (t.closest(`${EDITABLE}, button, .lg-palette`)) return;
    const title = t.closest('.lg-node-title');
    if (title) return this.commands.renameNode(title.closest('.lg-node').dataset.id);
    const gt = t.closest('.lg-group-title');
    if (gt) return this.commands.renameGroup(Number(gt.parentElement.dataset.group));
    if (!t.closest('.lg-node')) this.commands.openPalette(e.clientX, e.clientY);
  }

  onClick(e) {
    const t = e.target.closest('button');
    if (!t) return;
    if (t.dataset.unconvert) this.graph.toggleConverted(t.closest('.lg-node').dataset.id, t.dataset.unconvert);
    else if (t.dataset.groupDelete !== undefined) this.graph.removeGroup(Number(t.dataset.groupDelete));
    else if (t.dataset.groupColor !== undefined) this.commands.cycleGroupColor(Number(t.dataset.groupColor));
  }

  onKey(e) {
    const c = this.commands;
    if (!c.isLive()) return;
    const mod = e.ctrlKey || e.metaKey, k = e.key.toLowerCase();
    if (mod && k === 'enter') { e.preventDefault(); c.queue({ front: e.shiftKey }); return; }
    if (e.target.closest && e.target.closest(EDITABLE)) return;
    if (k === 'escape') { c.closePalette(); return; }
    let fn = null;
    if (mod) {
      const special = {
        z: () => (e.shiftKey ? c.redo() : c.undo()),
        c: () => ((this.selection.size > 0 && String(window.getSelection() || '') === '') ? c.copy() : false),
        m: () => c.toggleMode('muted'), b: () => c.toggleMode('bypass'),
      };
      fn = special[k] || (MOD_KEYS[k] && c[MOD_KEYS[k]]);
    } else if (!e.altKey && KEYS[k]) fn = c[KEYS[k]];
    if (fn && fn() !== false) e.preventDefault();
  }
}
