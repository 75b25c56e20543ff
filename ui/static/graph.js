// Graph model of the editor: the native document (ARCHITECTURE.md §3) plus node schemas from
// /object_info, typed connections, snapshot-based undo/redo, and the edit() transaction through
// which every change goes (listeners get one change event per edit). No DOM here.
import { defaultSize, frontendOutputType, frontendSchemas, isFrontendOnly, PRIMITIVE, primitiveSchema,
  refuseFrontendLink } from './kinds.js';

export const WIDGET_TYPES = new Set(['INT', 'FLOAT', 'STRING', 'BOOLEAN', 'COMBO']);
export const CONTROL_MODES = ['fixed', 'increment', 'decrement', 'randomize'];
const UNDO_LIMIT = 120;
const DOC_KEYS = new Set(['format', 'version', 'nodes', 'links', 'groups', 'view']);

// One input of a node schema: {name, type, options, optional, widget: bool, choices?}.
function parseInput(name, spec, optional) {
  const raw = Array.isArray(spec) ? spec : [spec];
  let type = raw[0];
  const options = (raw[1] && typeof raw[1] === 'object') ? raw[1] : {};
  let choices = null;
  if (Array.isArray(type)) { choices = type; type = 'COMBO'; }
  else if (type === 'COMBO') { choices = options.options || []; }
  return { name, type: String(type), options, optional, widget: WIDGET_TYPES.has(type), choices };
}

// Normalise one /object_info entry into {type, title, category, inputs[], outputs[], ...}.
export function parseSchema(type, info) {
  const req = (info.input && info.input.required) || {};
  const opt = (info.input && info.input.optional) || {};
  const order = info.input_order || {};
  const names = (o, listed) => (listed && listed.length ? listed.filter((n) => n in o) : Object.keys(o));
  const inputs = [];
  for (const n of names(req, order.required)) inputs.push(parseInput(n, req[n], false));
  for (const n of names(opt, order.optional)) inputs.push(parseInput(n, opt[n], true));
  const outTypes = info.output || [];
  const outputs = outTypes.map((t, i) => ({
    type: Array.isArray(t) ? 'COMBO' : String(t),
    name: (info.output_name && info.output_name[i]) || String(t),
    isList: !!(info.output_is_list && info.output_is_list[i]),
  }));
  return {
    type, inputs, outputs, title: info.display_name || info.name || type,
    category: info.category || 'other', description: info.description || '',
    outputNode: !!info.output_node,
  };
}

export function typesCompatible(outType, inType) {
  if (outType === '*' || inType === '*') return true;
  const a = String(outType).split(','), b = String(inType).split(',');
  return a.some((t) => b.includes(t));
}

export function widgetDefault(inp) {
  const o = inp.options;
  if (o.default !== undefined) return o.default;
  switch (inp.type) {
    case 'INT': case 'FLOAT': return o.min !== undefined ? Math.max(0, o.min) : 0;
    case 'STRING': return '';
    case 'BOOLEAN': return false;
    case 'COMBO': return inp.choices && inp.choices.length ? inp.choices[0] : '';
    default: return null;
  }
}

// Clamp/round a number widget value to its declared min/max/step (ComfyUI semantics).
export function clampNumber(inp, value) {
  const o = inp.options;
  let v = Number(value);
  if (!Number.isFinite(v)) v = Number(widgetDefault(inp)) || 0;
  if (o.min !== undefined) v = Math.max(o.min, v);
  if (o.max !== undefined) v = Math.min(o.max, v);
  if (inp.type === 'INT') {
    const step = o.step && o.step >= 1 ? o.step : 1;
    const base = o.min !== undefined && Number.isFinite(o.min) ? o.min : 0;
    v = Math.round((v - base) / step) * step + base;
    if (o.max !== undefined && v > o.max) v -= step;
    return Math.round(v);
  }
  const r = o.round !== undefined && o.round !== false ? o.round : (o.step || 0);
  if (r > 0) v = Math.round(v / r) * r;
  return Number(v.toFixed(10));
}

// What one edit changed, handed to the 'change' listeners (renderer, workflow storage, selection).
// nodes: ids to redraw (added, restructured or removed); moved/resized: ids whose position/width
// changed; widgets: id -> names of widget values or control modes; load: redraw everything.
function newChanges() {
  return { load: false, nodes: new Set(), removed: new Set(), moved: new Set(), resized: new Set(),
    widgets: new Map(), links: false, groups: false, view: false };
}

const NODE_PROPS = ['title', 'mode', 'color'];
const GROUP_PROPS = ['title', 'bounds', 'color'];

export class Graph {
  constructor() {
    this.schemas = {};
    this.nodes = new Map();      // id -> node doc object
    this.links = new Map();      // id -> link doc object
    this.groups = [];
    this.view = { scale: 1, offset: [0, 0] };
    this.extra = {};             // top-level keys we do not edit (title, extra, ...), kept as they are
    this.undoStack = [];
    this.redoStack = [];
    this.listeners = {};
    this.tx = null;              // the edit in progress (see edit)
    this.lastStep = null;        // `step` of the edit that recorded the newest undo snapshot
  }

  // Subscribe to 'change' (one change set per edit); returns the unsubscribe function.
  on(kind, fn) {
    (this.listeners[kind] = this.listeners[kind] || []).push(fn);
    return () => { this.listeners[kind] = this.listeners[kind].filter((f) => f !== fn); };
  }

  emit(kind, detail) { for (const fn of this.listeners[kind] || []) fn(detail); }

  // The one way to change the document: fn(graph) runs as one step. The first document change in it
  // records an undo snapshot (record=false: none, e.g. control-after-generate); edits passing the
  // same `step` token (every pointer move of one drag) share one snapshot. Afterwards one 'change'
  // event says what changed. Mutators called outside an edit open their own; inside one they join it.
  // If fn throws after changing the document, the step is rolled back.
  edit(fn, { record = true, step = null } = {}) {
    if (this.tx) return fn(this);
    const tx = { record, step, changes: newChanges(), touched: false, docTouched: false, snapshot: null };
    this.tx = tx;
    try {
      return fn(this);
    } catch (e) {
      if (tx.snapshot) this.rollback(tx);
      throw e;
    } finally {
      this.tx = null;
      if (tx.touched) this.emit('change', tx.changes);
    }
  }

  // Called by every mutator *before* it changes anything (so the snapshot is the state before).
  touch(kind, detail) {
    const tx = this.tx;
    if (!tx) throw new Error('the graph changes only inside graph.edit()');
    if (kind !== 'view' && !tx.docTouched) { tx.docTouched = true; if (tx.record) this.record(tx); }
    tx.touched = true;
    const c = tx.changes;
    if (kind === 'load') c.load = true;
    else if (kind === 'node') c.nodes.add(detail);
    else if (kind === 'remove') { c.nodes.add(detail); c.removed.add(detail); }
    else if (kind === 'widget') {
      if (!c.widgets.has(detail[0])) c.widgets.set(detail[0], new Set());
      c.widgets.get(detail[0]).add(detail[1]);
    } else if (kind === 'moved' || kind === 'resized') c[kind].add(detail);
    else c[kind] = true;         // links, groups, view
  }

  record(tx) {
    if (tx.step !== null && tx.step === this.lastStep) return;   // same gesture: same undo step
    tx.snapshot = JSON.stringify(this.serialize());
    tx.redo = this.redoStack;
    this.undoStack.push(tx.snapshot);
    if (this.undoStack.length > UNDO_LIMIT) this.undoStack.shift();
    this.redoStack = [];
    this.lastStep = tx.step;
  }

  rollback(tx) {
    this.undoStack.pop();
    this.redoStack = tx.redo;
    this.lastStep = null;
    this.load(JSON.parse(tx.snapshot), { keepView: true });
  }

  setSchemas(objectInfo) {
    this.schemas = {};
    for (const [type, info] of Object.entries(objectInfo || {})) this.schemas[type] = parseSchema(type, info);
    Object.assign(this.schemas, frontendSchemas());   // Reroute, Note, MarkdownNote, PrimitiveNode
    this.edit(() => {            // nodes of newly known types get their widget defaults
      this.touch('load');
      for (const n of this.nodes.values()) this.fillDefaults(n);
    }, { record: false });
  }

  schema(type) { return this.schemas[type] || null; }

  // The schema a node is drawn and controlled with: a primitive's depends on what it feeds.
  nodeSchema(node) { return node.type === PRIMITIVE ? primitiveSchema(this, node) : this.schema(node.type); }

  nextNodeId() {
    let m = 0;
    for (const id of this.nodes.keys()) { const n = parseInt(id, 10); if (n > m) m = n; }
    return String(m + 1);
  }

  nextLinkId() {
    let m = 0;
    for (const id of this.links.keys()) if (id > m) m = id;
    return m + 1;
  }

  // A new node of `type` at `pos` with all widget defaults filled.
  addNode(type, pos, { id = null } = {}) {
    const s = this.schema(type);
    if (!s) throw new Error(`Unknown node type ${type}`);
    const node = {
      id: id || this.nextNodeId(), type, title: s.title, pos: [Math.round(pos[0]), Math.round(pos[1])],
      size: defaultSize(type), color: null, mode: 'normal', widgets: {}, controls: {}, converted: [],
    };
    for (const inp of s.inputs) {
      if (!inp.widget) continue;
      node.widgets[inp.name] = widgetDefault(inp);
      if (inp.options.control_after_generate) node.controls[inp.name] = 'randomize';
    }
    return this.edit(() => { this.touch('node', node.id); this.nodes.set(node.id, node); return node; });
  }

  // Copies of document nodes (the clipboard) with new ids, moved by `offset`, and the links among
  // them (`from`/`to` naming the copied ids). Returns the new ids in order.
  insertCopies(nodes, links, offset) {
    return this.edit(() => {
      const map = new Map();
      for (const n of nodes) {
        const copy = JSON.parse(JSON.stringify(n));
        copy.id = this.nextNodeId();
        copy.pos = [n.pos[0] + offset, n.pos[1] + offset];
        this.fillDefaults(copy);
        this.touch('node', copy.id);
        this.nodes.set(copy.id, copy);
        map.set(n.id, copy.id);
      }
      for (const l of links) {
        const id = this.nextLinkId();
        this.touch('links');
        this.links.set(id, { id, from: [map.get(l.from[0]), l.from[1]], to: [map.get(l.to[0]), l.to[1]], type: l.type });
      }
      return [...map.values()];
    });
  }

  // Socket inputs of a node: declared sockets plus widgets converted to sockets.
  socketInputs(node) {
    const s = this.schema(node.type);
    if (!s) {
      const names = [...this.links.values()].filter((l) => l.to[0] === node.id).map((l) => ({ name: l.to[1], type: l.type }));
      return names;
    }
    return s.inputs.filter((i) => !i.widget || node.converted.includes(i.name) || i.options.forceInput);
  }

  inputType(node, name) {
    const s = this.schema(node.type);
    const inp = s && s.inputs.find((i) => i.name === name);
    return inp ? inp.type : null;
  }

  outputType(node, index) {
    if (isFrontendOnly(node.type)) return frontendOutputType(this, node);
    const s = this.schema(node.type);
    return s && s.outputs[index] ? s.outputs[index].type : null;
  }

  linkInto(nodeId, name) {
    for (const l of this.links.values()) if (l.to[0] === nodeId && l.to[1] === name) return l;
    return null;
  }

  // Why a connection from (src, out) to (dst, input) is refused, or null when it is allowed.
  checkConnect(srcId, outIndex, dstId, inputName) {
    const src = this.nodes.get(srcId), dst = this.nodes.get(dstId);
    if (!src || !dst) return 'missing node';
    if (srcId === dstId) return 'a node cannot feed itself';
    const outType = this.outputType(src, outIndex), inType = this.inputType(dst, inputName);
    if (!outType || !inType) return 'unknown socket';
    if (!typesCompatible(outType, inType)) return `type mismatch: ${outType} → ${inType}`;
    const kindWhy = refuseFrontendLink(this, src, dst, inputName);
    if (kindWhy) return kindWhy;
    if (this.reaches(dstId, srcId)) return 'this link would make a cycle';
    return null;
  }

  reaches(fromId, targetId) {     // is targetId downstream of fromId?
    const seen = new Set([fromId]); const stack = [fromId];
    while (stack.length) {
      const cur = stack.pop();
      if (cur === targetId) return true;
      for (const l of this.links.values()) {
        if (l.from[0] === cur && !seen.has(l.to[0])) { seen.add(l.to[0]); stack.push(l.to[0]); }
      }
    }
    return false;
  }

  // Connect; replaces any link already in that input (one link per input). Returns link or throws.
  connect(srcId, outIndex, dstId, inputName) {
    const why = this.checkConnect(srcId, outIndex, dstId, inputName);
    if (why) throw new Error(why);
    return this.edit(() => {
      this.touch('links');
      const old = this.linkInto(dstId, inputName);
      if (old) this.links.delete(old.id);
      const dst = this.nodes.get(dstId);
      const inp = this.schema(dst.type).inputs.find((i) => i.name === inputName);
      if (inp.widget && !dst.converted.includes(inputName)) { this.touch('node', dstId); dst.converted.push(inputName); }
      const src = this.nodes.get(srcId), outType = this.outputType(src, outIndex);
      const link = { id: this.nextLinkId(), from: [srcId, outIndex], to: [dstId, inputName],
        type: outType === '*' ? this.inputType(dst, inputName) || '*' : outType };
      this.links.set(link.id, link);
      if (src.type === PRIMITIVE) this.adoptTarget(src, dst, inputName);
      return link;
    });
  }

  removeLink(id) {
    if (!this.links.has(id)) return false;
    return this.edit(() => {
      this.touch('links');
      const src = this.nodes.get(this.links.get(id).from[0]);
      if (src && src.type === PRIMITIVE) this.touch('node', src.id);   // its widget follows its target
      return this.links.delete(id);
    });
  }

  removeNodes(ids) {
    const set = new Set(ids);
    this.edit(() => {
      for (const id of set) this.touch('remove', id);
      for (const [lid, l] of [...this.links]) {
        if (set.has(l.from[0]) || set.has(l.to[0])) { this.touch('links'); this.links.delete(lid); }
      }
      for (const id of set) this.nodes.delete(id);
    });
  }

  // Widget → socket and back. Converting back drops the link that fed it.
  toggleConverted(nodeId, name) {
    const node = this.nodes.get(nodeId);
    this.edit(() => {
      this.touch('node', nodeId);
      const i = node.converted.indexOf(name);
      if (i >= 0) {
        node.converted.splice(i, 1);
        const l = this.linkInto(nodeId, name);
        if (l) { this.touch('links'); this.links.delete(l.id); }
      } else node.converted.push(name);
    });
  }

  // A widget value; returns whether it changed (an equal value records no undo step). A
  // primitive's value is written into the widgets it feeds too (ComfyUI shows it there).
  setWidget(nodeId, name, value) {
    const node = this.nodes.get(nodeId);
    if (!node || node.widgets[name] === value) return false;
    return this.edit(() => {
      this.touch('widget', [nodeId, name]);
      node.widgets[name] = value;
      if (node.type === PRIMITIVE) this.feedTargets(node);
      return true;
    });
  }

  // A primitive connected to its first widget input takes that widget's value and a control mode.
  adoptTarget(prim, dst, name) {
    this.touch('node', prim.id);
    if (!('value' in prim.widgets)) prim.widgets.value = dst.widgets[name];
    else this.feedTargets(prim);
    const s = this.nodeSchema(prim), inp = s.inputs[0];
    if (inp && inp.options.control_after_generate && !prim.controls.value) prim.controls.value = 'fixed';
  }

  feedTargets(prim) {
    for (const l of this.links.values()) {
      const dst = l.from[0] === prim.id && this.nodes.get(l.to[0]);
      if (dst && dst.type !== 'Reroute' && dst.widgets[l.to[1]] !== prim.widgets.value) {
        this.touch('widget', [dst.id, l.to[1]]);
        dst.widgets[l.to[1]] = prim.widgets.value;
      }
    }
  }

  // A control-after-generate mode (fixed | increment | decrement | randomize).
  setControl(nodeId, name, mode) {
    const node = this.nodes.get(nodeId);
    if (!node) return;
    this.edit(() => { this.touch('widget', [nodeId, name]); node.controls[name] = mode; });
  }

  // title / mode / color of a node.
  setNodeProps(nodeId, props) {
    const node = this.nodes.get(nodeId);
    if (!node) return;
    this.edit(() => {
      this.touch('node', nodeId);
      for (const k of NODE_PROPS) if (k in props) node[k] = props[k];
    });
  }

  // Move nodes: [[id, [x, y]], ...] (rounded to whole units).
  moveNodes(moves) {
    this.edit(() => {
      for (const [id, pos] of moves) {
        const n = this.nodes.get(id);
        if (!n) continue;
        this.touch('moved', id);
        n.pos = [Math.round(pos[0]), Math.round(pos[1])];
      }
    });
  }

  resizeNode(nodeId, width) {
    const node = this.nodes.get(nodeId);
    if (!node) return;
    this.edit(() => { this.touch('resized', nodeId); node.size = [Math.round(width), node.size[1]]; });
  }

  // The size the renderer measured (height follows the widgets). Layout read back from the DOM
  // while drawing, not an edit: no undo step, no event.
  noteSize(nodeId, size) {
    const node = this.nodes.get(nodeId);
    if (node) node.size = size;
  }

  addGroup(group) { this.edit(() => { this.touch('groups'); this.groups.push({ ...group }); }); }

  // title / bounds / color of group `index`.
  setGroup(index, props) {
    const g = this.groups[index];
    if (!g) return;
    this.edit(() => {
      this.touch('groups');
      for (const k of GROUP_PROPS) if (k in props) g[k] = props[k];
    });
  }

  removeGroup(index) {
    if (!this.groups[index]) return;
    this.edit(() => { this.touch('groups'); this.groups.splice(index, 1); });
  }

  // Pan/zoom. Saved with the document but never an undo step.
  setView(view) {
    this.edit(() => { this.touch('view'); this.view = { scale: view.scale, offset: [...view.offset] }; });
  }

  serialize() {
    return {
      format: 'latentgraph', version: 1,
      nodes: [...this.nodes.values()].map((n) => JSON.parse(JSON.stringify(n))),
      links: [...this.links.values()].map((l) => ({ id: l.id, from: [...l.from], to: [...l.to], type: l.type })),
      groups: this.groups.map((g) => JSON.parse(JSON.stringify(g))),
      view: { scale: this.view.scale, offset: [...this.view.offset] },
      ...JSON.parse(JSON.stringify(this.extra)),
    };
  }

  // Replace the whole graph with a native document (validated loosely; unknown types are kept).
  // record=true makes it an undo step (opening a file); startup and undo itself do not record.
  load(doc, { keepView = false, record = false } = {}) {
    if (!doc || doc.format !== 'latentgraph') throw new Error('Not a Latentgraph workflow document');
    this.edit(() => {
      this.touch('load');
      this.nodes.clear(); this.links.clear();
      for (const n of doc.nodes || []) {
        const node = {
          ...JSON.parse(JSON.stringify(n)),   // keys kept for the export (flags, ui) ride along
          id: String(n.id), type: n.type, title: n.title || (this.schema(n.type) || {}).title || n.type,
          pos: [...(n.pos || [0, 0])], size: [...(n.size || [260, 0])], color: n.color ?? null,
          mode: n.mode || 'normal', widgets: { ...(n.widgets || {}) }, controls: { ...(n.controls || {}) },
          converted: [...(n.converted || [])],
        };
        this.fillDefaults(node);
        this.nodes.set(node.id, node);
      }
      for (const l of doc.links || []) {
        const link = { id: Number(l.id), from: [String(l.from[0]), Number(l.from[1])], to: [String(l.to[0]), l.to[1]], type: l.type };
        if (this.nodes.has(link.from[0]) && this.nodes.has(link.to[0])) this.links.set(link.id, link);
      }
      this.groups = (doc.groups || []).map((g) => ({ ...JSON.parse(JSON.stringify(g)), title: g.title || 'Group', bounds: [...g.bounds], color: g.color || null }));
      if (!keepView && doc.view) this.view = { scale: doc.view.scale || 1, offset: [...(doc.view.offset || [0, 0])] };
      this.extra = {};
      for (const [k, v] of Object.entries(doc)) if (!DOC_KEYS.has(k)) this.extra[k] = v;
    }, { record });
  }

  // Fill missing widget defaults of a node object that is being built (not yet, or being, edited).
  fillDefaults(node) {
    const s = this.schema(node.type);
    if (!s) return;
    for (const inp of s.inputs) {
      if (inp.widget && !(inp.name in node.widgets) && !node.converted.includes(inp.name)) node.widgets[inp.name] = widgetDefault(inp);
      if (inp.options.control_after_generate && !(inp.name in node.controls)) node.controls[inp.name] = 'fixed';
    }
  }

  // Undo/redo: the snapshots edits recorded *before* each user action.
  undo() { return this.swap(this.undoStack, this.redoStack); }
  redo() { return this.swap(this.redoStack, this.undoStack); }

  swap(from, to) {
    if (!from.length) return false;
    to.push(JSON.stringify(this.serialize()));
    this.load(JSON.parse(from.pop()), { keepView: true });
    this.lastStep = null;
    return true;
  }

  // Apply control_after_generate (fixed/increment/decrement/randomize) after queueing: an edit
  // without undo step, as before. Returns the changed node ids.
  applyControls() {
    const changed = [];
    this.edit(() => {
      for (const node of this.nodes.values()) {
        const s = this.nodeSchema(node);
        if (!s || node.mode === 'muted') continue;
        for (const [name, mode] of Object.entries(node.controls || {})) {
          const inp = s.inputs.find((i) => i.name === name);
          if (!inp || mode === 'fixed' || node.converted.includes(name)) continue;
          this.touch('widget', [node.id, name]);
          node.widgets[name] = inp.type === 'COMBO' ? nextChoice(inp, mode, node.widgets[name])
            : nextControlValue(inp, mode, Number(node.widgets[name]) || 0);
          if (node.type === PRIMITIVE) this.feedTargets(node);
          if (!changed.includes(node.id)) changed.push(node.id);
        }
      }
    }, { record: false });
    return changed;
  }
}

// Combos step through their choices (ComfyUI's control for combo primitives).
function nextChoice(inp, mode, value) {
  const c = inp.choices || [];
  if (!c.length) return value;
  const i = Math.max(0, c.indexOf(value));
  if (mode === 'increment') return c[(i + 1) % c.length];
  if (mode === 'decrement') return c[(i - 1 + c.length) % c.length];
  return c[Math.floor(Math.random() * c.length)];
}

function nextControlValue(inp, mode, v) {
  const min = inp.options.min ?? 0, max = Math.min(inp.options.max ?? 0xffffffff, Number.MAX_SAFE_INTEGER);
  if (mode === 'increment') return v + 1 > max ? min : v + 1;
  if (mode === 'decrement') return v - 1 < min ? max : v - 1;
  if (mode === 'randomize') return min + Math.floor(Math.random() * Math.min(max - min + 1, 2 ** 50));
  return v;
}
