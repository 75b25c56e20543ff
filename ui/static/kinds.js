// ComfyUI's frontend-only nodes as editor nodes: Reroute, Note, MarkdownNote, PrimitiveNode.
// They have no /object_info entry, so their schemas are declared here; the server keeps them in
// the native document and drops/resolves them when it builds the prompt (engine/formats/
// frontend_nodes.py), exactly as ComfyUI's frontend does. A primitive takes the widget spec of the
// input it feeds (its value widget is a copy of that widget, with control-after-generate for
// numbers and combos); a reroute's output carries whatever type reaches its input.

export const REROUTE = 'Reroute';
export const PRIMITIVE = 'PrimitiveNode';
const NOTES = new Set(['Note', 'MarkdownNote']);
const WIDGET_INPUT_TYPES = new Set(['INT', 'FLOAT', 'STRING', 'BOOLEAN', 'COMBO']);
// Default sizes ComfyUI gives them (the renderer measures the height).
const SIZES = { Reroute: [90, 0], Note: [320, 0], MarkdownNote: [320, 0], PrimitiveNode: [280, 0] };

function schema(type, title, description, inputs, outputs) {
  return { type, title, category: 'utils', description, inputs, outputs, outputNode: false, frontendOnly: true };
}

const textInput = { name: 'text', type: 'STRING', options: { multiline: true, default: '' }, optional: false, widget: true, choices: null };

// Parsed schemas (the shape graph.parseSchema gives) of the four kinds.
export function frontendSchemas() {
  return {
    Reroute: schema(REROUTE, 'Reroute', 'Passes one link through, to tidy long links (editor only).',
      [{ name: 'input', type: '*', options: {}, optional: false, widget: false, choices: null }],
      [{ type: '*', name: '', isList: false }]),
    Note: schema('Note', 'Note', 'A text note on the canvas (not run).', [textInput], []),
    MarkdownNote: schema('MarkdownNote', 'Markdown Note', 'A Markdown note on the canvas (not run).', [textInput], []),
    PrimitiveNode: schema(PRIMITIVE, 'Primitive', 'One value feeding widget inputs converted to sockets (seed, steps, a prompt…), with control after generate.',
      [], [{ type: '*', name: 'connect to widget input', isList: false }]),
  };
}

export const isFrontendOnly = (type) => type === REROUTE || type === PRIMITIVE || NOTES.has(type);
export const isNote = (type) => NOTES.has(type);
export const defaultSize = (type) => [...(SIZES[type] || [260, 0])];

// The widget input a primitive feeds (the first link's target), or null while it feeds nothing.
export function primitiveTarget(graph, node) {
  for (const l of graph.links.values()) {
    if (l.from[0] !== node.id) continue;
    const dst = graph.nodes.get(l.to[0]);
    const s = dst && graph.schema(dst.type);
    const inp = s && s.inputs.find((i) => i.name === l.to[1]);
    if (inp) return { node: dst, input: inp };
  }
  return null;
}

// A primitive's schema: one "value" widget copying its target's spec (min/max/step/choices).
export function primitiveSchema(graph, node) {
  const base = graph.schema(PRIMITIVE);
  const t = primitiveTarget(graph, node);
  if (!t) return base;
  const options = { ...t.input.options };
  delete options.forceInput;
  if (t.input.type === 'COMBO' || t.input.type === 'INT' || t.input.type === 'FLOAT') options.control_after_generate = true;
  const value = { ...t.input, name: 'value', options, optional: false, widget: true };
  return { ...base, inputs: [value], outputs: [{ ...base.outputs[0], type: t.input.type }] };
}

// The type a reroute's or primitive's output carries now ('*' while unconnected).
export function frontendOutputType(graph, node, depth = 0) {
  if (node.type === PRIMITIVE) {
    const t = primitiveTarget(graph, node);
    return t ? t.input.type : '*';
  }
  const l = graph.linkInto(node.id, 'input');
  const src = l && graph.nodes.get(l.from[0]);
  if (!src || depth > 64) return '*';
  return src.type === REROUTE ? frontendOutputType(graph, src, depth + 1) : (graph.outputType(src, l.from[1]) || '*');
}

// Why a link from/into a frontend-only node is refused (null when allowed). A primitive feeds only
// widget inputs, all of one type; a reroute accepts anything.
export function refuseFrontendLink(graph, src, dst, inputName) {
  if (src.type !== PRIMITIVE) return null;
  const s = graph.schema(dst.type);
  const inp = s && s.inputs.find((i) => i.name === inputName);
  if (dst.type === REROUTE) return null;
  if (!inp || !inp.widget || !WIDGET_INPUT_TYPES.has(inp.type)) return 'a primitive feeds widget inputs only (convert the widget to an input first)';
  const t = primitiveTarget(graph, src);
  if (t && t.input.type !== inp.type) return `this primitive already feeds ${t.input.type} inputs`;
  return null;
}

// A minimal, escaped Markdown rendering for MarkdownNote (headings, bold, italics, code, lists).
export function markdownHtml(text) {
  const esc = String(text || '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const inline = (s) => s.replace(/`([^`]+)`/g, '<code>$1</code>').replace(/\*\*([^*]+)\*\*/g, '<b>$1</b>')
    .replace(/\*([^*]+)\*/g, '<i>$1</i>');
  const out = [];
  let list = false;
  for (const line of esc.split('\n')) {
    const item = /^\s*[*-] (.*)$/.exec(line), head = /^(#{1,4}) (.*)$/.exec(line);
    if (item && !list) { out.push('<ul>'); list = true; }
    if (!item && list) { out.push('</ul>'); list = false; }
    if (item) out.push(`<li>${inline(item[1])}</li>`);
    else if (head) out.push(`<h${head[1].length + 2}>${inline(head[2])}</h${head[1].length + 2}>`);
    else if (line.trim()) out.push(`<p>${inline(line)}</p>`);
  }
  if (list) out.push('</ul>');
  return out.join('');
}

// The look of these nodes, the mask editor and the history lives in kinds.css (loaded once,
// after editor.css).
export function installStyles() {
  if (document.querySelector('link[data-lg-kinds]')) return;
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = new URL('./kinds.css', import.meta.url).href;
  link.dataset.lgKinds = '1';
  document.head.appendChild(link);
}
