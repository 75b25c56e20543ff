// Rendering: DOM divs for nodes and groups, one SVG layer for links, the pan/zoom transform.
// It follows the graph's change events (and the selection's); nobody asks it to redraw after an edit.
// Links are redrawn once per animation frame however many changes were made (UI-NOTES pitfall 6).
import { buildWidgets, widgetsShow } from './widgets.js';
import { el } from './dom.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const TYPE_COLORS = {
  MODEL: '#b39ddb', CLIP: '#ffd54f', VAE: '#ef5350', CONDITIONING: '#ffa726', LATENT: '#ec407a',
  IMAGE: '#64b5f6', MASK: '#81c784', UPSCALE_MODEL: '#9575cd', INT: '#4db6ac', FLOAT: '#aed581',
  STRING: '#90a4ae', BOOLEAN: '#f06292', COMBO: '#a1887f',
};

export function typeColor(type) {
  if (TYPE_COLORS[type]) return TYPE_COLORS[type];
  let h = 0;
  for (const c of String(type)) h = (h * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${h}, 55%, 62%)`;
}

export class Renderer {
  // widgetEnv: what the widgets need (graph, api, toast, refreshSchemas), see widgets.js.
  constructor(graph, canvas, { selection, widgetEnv }) {
    this.graph = graph;
    this.selection = selection;
    this.widgetEnv = widgetEnv;
    this.canvas = canvas;
    this.world = el('div', 'lg-world');
    this.groupLayer = el('div', 'lg-groups');
    this.svg = document.createElementNS(SVG_NS, 'svg');
    this.svg.setAttribute('class', 'lg-links');
    this.nodeLayer = el('div', 'lg-nodes');
    this.world.append(this.groupLayer, this.svg, this.nodeLayer);
    this.hint = el('div', 'lg-empty-hint', {}, 'Double-click to add a node · drop a workflow (.json / .png) here · Examples… to start from a template');
    canvas.append(this.world, this.hint);
    this.nodeEls = new Map();
    this.socketCache = new Map();
    this.linksPending = false;
    this.tempPath = null;
    graph.on('change', (c) => this.update(c));
    selection.on((ids) => this.setSelected(ids));
  }

  // Redraw what one graph edit changed.
  update(c) {
    if (c.load) { this.renderAll(); return; }
    for (const id of c.nodes) this.renderNode(id);
    for (const id of c.moved) if (!c.nodes.has(id)) this.moveNode(id);
    for (const id of c.resized) if (!c.nodes.has(id)) this.resizeNode(id);
    for (const [id, names] of c.widgets) if (!c.nodes.has(id)) this.syncWidgets(id, names);
    if (c.groups) this.renderGroups();
    if (c.links) this.scheduleLinks();
    if (c.view) this.applyView();
  }

  // A widget the user just edited already shows its value; a value set elsewhere (control after
  // generate) or an image choice (thumbnail) redraws the node.
  syncWidgets(id, names) {
    const node = this.graph.nodes.get(id), e = this.nodeEls.get(id);
    if (node && e && !widgetsShow(e, node, this.graph.schema(node.type), names)) this.renderNode(id);
  }

  resizeNode(id) {
    const node = this.graph.nodes.get(id), e = this.nodeEls.get(id);
    if (!node || !e) return;
    e.style.width = `${node.size[0]}px`;
    this.measure(node);
    this.socketsMoved(id);
  }

  // A node's layout changed (size, messages): its socket positions must be measured again.
  socketsMoved(id) {
    this.socketCache.delete(id);
    this.scheduleLinks();
  }

  applyView() {
    const v = this.graph.view;
    this.world.style.transform = `translate(${v.offset[0]}px, ${v.offset[1]}px) scale(${v.scale})`;
    this.canvas.style.setProperty('--lg-grid', `${24 * v.scale}px`);
    this.canvas.style.backgroundPosition = `${v.offset[0]}px ${v.offset[1]}px`;
  }

  // Screen (client) coordinates → world coordinates.
  toWorld(clientX, clientY) {
    const r = this.canvas.getBoundingClientRect(), v = this.graph.view;
    return [(clientX - r.left - v.offset[0]) / v.scale, (clientY - r.top - v.offset[1]) / v.scale];
  }

  renderAll() {
    this.nodeLayer.textContent = '';
    this.nodeEls.clear();
    this.socketCache.clear();
    const frag = document.createDocumentFragment();
    for (const node of this.graph.nodes.values()) frag.appendChild(this.buildNode(node));
    this.nodeLayer.appendChild(frag);
    for (const node of this.graph.nodes.values()) this.measure(node);
    this.renderGroups();
    this.applyView();
    this.drawLinks();
  }

  renderNode(id) {
    const node = this.graph.nodes.get(id);
    const old = this.nodeEls.get(id);
    this.socketCache.delete(id);
    if (!node) { if (old) old.remove(); this.nodeEls.delete(id); this.scheduleLinks(); return; }
    const fresh = this.buildNode(node);
    if (old) { Renderer.keepRunState(old, fresh); old.replaceWith(fresh); } else this.nodeLayer.appendChild(fresh);
    this.measure(node);
    this.scheduleLinks();
  }

  // A rebuilt node keeps what the run panel showed on it (state, badge, messages, preview).
  static keepRunState(old, fresh) {
    for (const c of ['lg-running', 'lg-cached', 'lg-done', 'lg-error']) if (old.classList.contains(c)) fresh.classList.add(c);
    if (old.dataset.state) fresh.dataset.state = old.dataset.state;
    for (const sel of ['.lg-node-badge', '.lg-node-messages']) fresh.querySelector(sel).replaceWith(old.querySelector(sel));
    const prev = old.querySelector('.lg-preview');
    if (prev && !prev.hidden) fresh.querySelector('.lg-preview').replaceWith(prev);
  }

  measure(node) {
    const e = this.nodeEls.get(node.id);
    if (e) this.graph.noteSize(node.id, [node.size[0] || 240, e.offsetHeight]);
  }

  buildNode(node) {
    const g = this.graph, schema = g.schema(node.type);
    const e = el('div', 'lg-node', { 'data-id': node.id, 'data-type': node.type, 'data-mode': node.mode });
    if (!schema) e.classList.add('lg-missing');
    if (this.selection.has(node.id)) e.classList.add('lg-selected');
    e.style.left = `${node.pos[0]}px`; e.style.top = `${node.pos[1]}px`;
    e.style.width = `${node.size[0] || 240}px`;
    if (node.color) e.style.setProperty('--lg-node-color', node.color);
    const head = el('div', 'lg-node-header');
    head.append(el('span', 'lg-node-title', {}, node.title || node.type),
      el('span', 'lg-node-badge', { 'data-badge': node.id }));
    if (node.mode !== 'normal') head.appendChild(el('span', 'lg-node-mode', {}, node.mode));
    e.appendChild(head);
    if (!schema) e.appendChild(el('div', 'lg-node-error', {}, `Unknown node type “${node.type}”`));
    e.appendChild(this.buildSockets(node, schema));
    if (schema) e.appendChild(buildWidgets(this.widgetEnv, node, schema));
    e.appendChild(el('div', 'lg-node-messages'));
    const prev = el('img', 'lg-preview', { alt: '' });
    prev.hidden = true;
    e.append(prev, el('div', 'lg-node-resize', { title: 'Drag to resize' }));
    this.nodeEls.set(node.id, e);
    return e;
  }

  buildSockets(node, schema) {
    const box = el('div', 'lg-node-io');
    const ins = this.graph.socketInputs(node);
    const outs = schema ? schema.outputs : [];
    const rows = Math.max(ins.length, outs.length);
    for (let r = 0; r < rows; r++) {
      const row = el('div', 'lg-io-row');
      const inp = ins[r];
      if (inp) {
        const s = el('div', 'lg-socket lg-in', { 'data-input': inp.name, 'data-type': inp.type, title: `${inp.name}: ${inp.type}` });
        const dot = el('span', 'lg-dot');
        dot.style.setProperty('--lg-type-color', typeColor(inp.type));
        s.append(dot, el('span', 'lg-socket-label', {}, inp.name + (inp.optional ? '?' : '')));
        if (inp.widget) {
          const back = el('button', 'lg-unconvert', { 'data-unconvert': inp.name, title: 'Convert back to a widget', type: 'button' }, '⇄');
          s.appendChild(back);
        }
        if (this.graph.linkInto(node.id, inp.name)) s.classList.add('lg-linked');
        row.appendChild(s);
      } else row.appendChild(el('div', 'lg-socket-gap'));
      const out = outs[r];
      if (out) {
        const s = el('div', 'lg-socket lg-out', { 'data-output': String(r), 'data-type': out.type, title: `${out.name}: ${out.type}` });
        const dot = el('span', 'lg-dot');
        dot.style.setProperty('--lg-type-color', typeColor(out.type));
        s.append(el('span', 'lg-socket-label', {}, out.name), dot);
        row.appendChild(s);
      }
      box.appendChild(row);
    }
    return box;
  }

  nodeEl(id) { return this.nodeEls.get(id) || null; }

  moveNode(id) {
    const node = this.graph.nodes.get(id), e = this.nodeEls.get(id);
    if (node && e) { e.style.left = `${node.pos[0]}px`; e.style.top = `${node.pos[1]}px`; }
    this.scheduleLinks();
  }

  // Socket dot centre relative to its node (layout offsets are unaffected by the transform).
  socketOffsets(id) {
    if (this.socketCache.has(id)) return this.socketCache.get(id);
    const e = this.nodeEls.get(id);
    const res = { in: {}, out: {} };
    if (e) {
      for (const dot of e.querySelectorAll('.lg-socket .lg-dot')) {
        let x = dot.offsetWidth / 2, y = dot.offsetHeight / 2, cur = dot;
        while (cur && cur !== e) { x += cur.offsetLeft; y += cur.offsetTop; cur = cur.offsetParent; }
        const s = dot.parentElement;
        if (s.dataset.input !== undefined) res.in[s.dataset.input] = [x, y];
        else res.out[s.dataset.output] = [x, y];
      }
    }
    this.socketCache.set(id, res);
    return res;
  }

  socketPos(id, kind, key) {
    const node = this.graph.nodes.get(id);
    if (!node) return null;
    const off = this.socketOffsets(id)[kind][String(key)];
    return off ? [node.pos[0] + off[0], node.pos[1] + off[1]] : [node.pos[0] + (kind === 'out' ? node.size[0] : 0), node.pos[1] + 14];
  }

  scheduleLinks() {
    if (this.linksPending) return;
    this.linksPending = true;
    requestAnimationFrame(() => { this.linksPending = false; this.drawLinks(); });
  }

  static curve(a, b) {
    const dx = Math.max(40, Math.abs(b[0] - a[0]) * 0.5);
    return `M${a[0]},${a[1]} C${a[0] + dx},${a[1]} ${b[0] - dx},${b[1]} ${b[0]},${b[1]}`;
  }

  drawLinks() {
    this.hint.hidden = this.graph.nodes.size > 0;
    const parts = [];
    for (const l of this.graph.links.values()) {
      const a = this.socketPos(l.from[0], 'out', l.from[1]), b = this.socketPos(l.to[0], 'in', l.to[1]);
      if (!a || !b) continue;
      parts.push(`<path class="lg-link" data-link="${l.id}" data-type="${String(l.type).replace(/"/g, '')}" stroke="${typeColor(l.type)}" d="${Renderer.curve(a, b)}"/>`);
    }
    this.svg.innerHTML = parts.join('');
    if (this.tempPath) this.svg.appendChild(this.tempPath);
    const linked = new Set([...this.graph.links.values()].map((l) => `${l.to[0]}\u0000${l.to[1]}`));
    for (const [id, e] of this.nodeEls) {
      for (const s of e.querySelectorAll('.lg-in')) s.classList.toggle('lg-linked', linked.has(`${id}\u0000${s.dataset.input}`));
    }
  }

  // The link being dragged by the user (null to remove it).
  setTempLink(a, b, type, refused = false) {
    if (!a) { if (this.tempPath) this.tempPath.remove(); this.tempPath = null; return; }
    if (!this.tempPath) {
      this.tempPath = document.createElementNS(SVG_NS, 'path');
      this.svg.appendChild(this.tempPath);
    }
    this.tempPath.setAttribute('class', refused ? 'lg-link lg-temp lg-refused' : 'lg-link lg-temp');
    this.tempPath.setAttribute('stroke', refused ? '#ff1744' : typeColor(type));
    this.tempPath.setAttribute('d', Renderer.curve(a, b));
  }

  renderGroups() {
    this.groupLayer.textContent = '';
    this.graph.groups.forEach((g, i) => {
      const e = el('div', 'lg-group', { 'data-group': String(i) });
      e.style.left = `${g.bounds[0]}px`; e.style.top = `${g.bounds[1]}px`;
      e.style.width = `${g.bounds[2]}px`; e.style.height = `${g.bounds[3]}px`;
      e.style.setProperty('--lg-group-color', g.color || '#3f5f7f');
      const head = el('div', 'lg-group-title', {}, g.title);
      const tools = el('span', 'lg-group-tools');
      tools.append(el('button', 'lg-group-color', { type: 'button', title: 'Change colour', 'data-group-color': String(i) }, '●'),
        el('button', 'lg-group-delete', { type: 'button', title: 'Remove group (keeps its nodes)', 'data-group-delete': String(i) }, '×'));
      head.appendChild(tools);
      e.append(head, el('div', 'lg-group-resize', { 'data-group-resize': String(i) }));
      this.groupLayer.appendChild(e);
    });
  }

  setSelected(ids) {
    for (const [id, e] of this.nodeEls) e.classList.toggle('lg-selected', ids.has(id));
  }

  // Bounding box of all nodes and groups in world coordinates, or null for an empty graph.
  bounds() {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of this.graph.nodes.values()) {
      x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1]);
      x1 = Math.max(x1, n.pos[0] + (n.size[0] || 240)); y1 = Math.max(y1, n.pos[1] + (n.size[1] || 100));
    }
    for (const g of this.graph.groups) {
      x0 = Math.min(x0, g.bounds[0]); y0 = Math.min(y0, g.bounds[1]);
      x1 = Math.max(x1, g.bounds[0] + g.bounds[2]); y1 = Math.max(y1, g.bounds[1] + g.bounds[3]);
    }
    return Number.isFinite(x0) ? [x0, y0, x1, y1] : null;
  }

  // The view that frames the whole graph in the canvas (the caller sets it through the graph).
  fittedView() {
    const b = this.bounds(), r = this.canvas.getBoundingClientRect();
    if (!b || r.width < 10) return { scale: 1, offset: [0, 0] };
    const pad = 40;
    const s = Math.max(0.1, Math.min(1.5, (r.width - 2 * pad) / (b[2] - b[0]), (r.height - 2 * pad) / (b[3] - b[1])));
    return {
      scale: Number(s.toFixed(4)),
      offset: [Math.round((r.width - (b[2] - b[0]) * s) / 2 - b[0] * s), Math.round((r.height - (b[3] - b[1]) * s) / 2 - b[1] * s)],
    };
  }
}
