// In-place widgets of a node: numbers (min/max/step enforced), sliders for floats in [0,1],
// prompts, combos (+ refresh), toggles, seed control-after-generate, image upload with thumbnail,
// and the "convert to input" switch. Each widget row carries data-widget="<input name>".
// Widgets change the document only through the Graph API (one edit = one undo step; the graph's
// change event redraws and saves). `env` = {graph, api, toast(message, kind), refreshSchemas()}.
import { clampNumber, CONTROL_MODES } from './graph.js';
import { el } from './dom.js';
import { isFrontendOnly, markdownHtml, PRIMITIVE } from './kinds.js';
import { maskButton } from './maskeditor.js';

// Set the value through the graph (no-op when equal). Returns the value.
function commit(env, node, name, value) {
  env.graph.setWidget(node.id, name, value);
  return value;
}

// Do the widget rows `names` of a drawn node already show the document's values? (Image choices
// never count as shown: their thumbnail is drawn with the node.)
export function widgetsShow(nodeEl, node, schema, names) {
  if (node.type === PRIMITIVE || node.type === 'MarkdownNote') return false;   // spec / preview follow the value
  for (const name of names) {
    const inp = schema && schema.inputs.find((i) => i.name === name);
    if (!inp || inp.options.image_upload) return false;
    const row = nodeEl.querySelector(`[data-widget="${name}"]`);
    if (!row) continue;            // converted to a socket: nothing drawn for the value
    const field = row.querySelector('[data-field]'), control = row.querySelector('[data-control]');
    const v = node.widgets[name];
    if (field && (field.type === 'checkbox' ? field.checked !== !!v : field.value !== String(v ?? ''))) return false;
    if (control && control.value !== (node.controls[name] || 'fixed')) return false;
  }
  return true;
}

function numberWidget(env, node, inp) {
  const o = inp.options;
  const isSlider = inp.type === 'FLOAT' && (o.display === 'slider' || (o.min >= 0 && o.max <= 1 && o.max > o.min));
  const box = el('span', 'lg-num-box');
  const num = el('input', 'lg-input lg-number', {
    type: 'number', 'data-field': inp.name, min: o.min, max: o.max,
    step: o.step !== undefined ? o.step : (inp.type === 'INT' ? 1 : 'any'),
  });
  num.value = node.widgets[inp.name];
  let slider = null;
  if (isSlider) {
    slider = el('input', 'lg-input lg-slider', { type: 'range', min: o.min, max: o.max, step: o.step || 0.01, 'data-slider': inp.name });
    slider.value = node.widgets[inp.name];
    slider.addEventListener('input', () => { num.value = slider.value; });
    slider.addEventListener('change', () => { num.value = commit(env, node, inp.name, clampNumber(inp, slider.value)); });
    box.appendChild(slider);
  }
  num.addEventListener('change', () => {
    // A cleared (or unparsable) field keeps the previous value, as in ComfyUI: not the minimum.
    if (num.value.trim() === '' || !Number.isFinite(Number(num.value))) {
      num.value = node.widgets[inp.name];
      if (slider) slider.value = node.widgets[inp.name];
      return;
    }
    const v = clampNumber(inp, num.value);
    num.value = v;
    if (slider) slider.value = v;
    commit(env, node, inp.name, v);
  });
  box.appendChild(num);
  return box;
}

function stringWidget(env, node, inp) {
  const multi = !!inp.options.multiline;
  const e = multi ? el('textarea', 'lg-input lg-text', { rows: 3, 'data-field': inp.name, spellcheck: 'false' })
    : el('input', 'lg-input lg-text', { type: 'text', 'data-field': inp.name });
  e.value = node.widgets[inp.name] ?? '';
  if (inp.options.placeholder) e.placeholder = inp.options.placeholder;
  e.addEventListener('change', () => commit(env, node, inp.name, e.value));
  return e;
}

function comboWidget(env, node, inp) {
  const box = el('span', 'lg-combo-box');
  const sel = el('select', 'lg-input lg-combo', { 'data-field': inp.name });
  const value = node.widgets[inp.name];
  const choices = [...(inp.choices || [])];
  if (value !== undefined && value !== null && value !== '' && !choices.includes(value)) {
    choices.unshift(value);   // keep a missing file visible instead of silently switching
    sel.classList.add('lg-missing-value');
    sel.title = `“${value}” is not available on the server`;
  }
  for (const c of choices) sel.appendChild(el('option', null, { value: String(c) }, String(c)));
  sel.value = String(value ?? '');
  sel.addEventListener('change', () => {
    const v = choices.find((c) => String(c) === sel.value);
    commit(env, node, inp.name, v === undefined ? sel.value : v);
  });
  const refresh = el('button', 'lg-refresh', { type: 'button', title: 'Refresh lists from the server', 'data-refresh': inp.name }, '↻');
  refresh.addEventListener('click', () => env.refreshSchemas());
  box.append(sel, refresh);
  return box;
}

function boolWidget(env, node, inp) {
  const label = el('label', 'lg-toggle');
  const cb = el('input', 'lg-input lg-check', { type: 'checkbox', 'data-field': inp.name });
  cb.checked = !!node.widgets[inp.name];
  const text = el('span', 'lg-toggle-text');
  const show = () => { text.textContent = cb.checked ? (inp.options.label_on || 'true') : (inp.options.label_off || 'false'); };
  show();
  cb.addEventListener('change', () => { show(); commit(env, node, inp.name, cb.checked); });
  label.append(cb, text);
  return label;
}

function controlWidget(env, node, inp) {
  const sel = el('select', 'lg-input lg-control', { 'data-control': inp.name, title: 'control after generate' });
  for (const m of CONTROL_MODES) sel.appendChild(el('option', null, { value: m }, m));
  sel.value = node.controls[inp.name] || 'fixed';
  sel.addEventListener('change', () => env.graph.setControl(node.id, inp.name, sel.value));
  return sel;
}

function imageUpload(env, node, inp) {
  const box = el('div', 'lg-image-box');
  const value = node.widgets[inp.name];
  if (value) {
    const img = el('img', 'lg-thumb', { alt: String(value), 'data-thumb': inp.name, loading: 'lazy' });
    const sub = String(value).includes('/') ? String(value).split('/').slice(0, -1).join('/') : '';
    img.src = env.api.viewUrl({ filename: String(value).split('/').pop(), subfolder: sub, type: 'input' });
    box.appendChild(img);
  }
  const file = el('input', 'lg-file', { type: 'file', accept: 'image/*', 'data-upload': inp.name });
  file.hidden = true;
  const btn = el('button', 'lg-btn lg-upload', { type: 'button' }, 'Upload image…');
  btn.addEventListener('click', () => file.click());
  file.addEventListener('change', () => {
    if (file.files.length) uploadInto(env, node, inp.name, file.files[0]);
  });
  box.append(btn, file);
  if (value) box.appendChild(maskButton(env, node, inp.name));
  return box;
}

// Upload an image to input/ (POST /api/upload/image) and select it in the node's image combo.
export async function uploadInto(env, node, name, fileObj) {
  try {
    const res = await env.api.uploadImage(fileObj);
    const value = res.subfolder ? `${res.subfolder}/${res.name}` : res.name;
    await env.refreshSchemas({ quiet: true });
    commit(env, node, name, value);
    return true;
  } catch (e) {
    env.toast(`Upload failed: ${e.message}`, 'error');
    return false;
  }
}

// The node's image-upload combo input, if it has one (LoadImage, LoadImageMask, ...).
export function imageInputOf(graph, node) {
  const s = node && graph.schema(node.type);
  const inp = s && s.inputs.find((i) => i.type === 'COMBO' && i.options.image_upload && !node.converted.includes(i.name));
  return inp ? inp.name : null;
}

function widgetControl(env, node, inp) {
  switch (inp.type) {
    case 'INT': case 'FLOAT': return numberWidget(env, node, inp);
    case 'STRING': return stringWidget(env, node, inp);
    case 'BOOLEAN': return boolWidget(env, node, inp);
    case 'COMBO': return comboWidget(env, node, inp);
    default: return el('span', 'lg-unsupported', {}, inp.type);
  }
}

// All widget rows of a node (widgets converted to sockets are shown as sockets instead). A
// primitive's widget copies the input it feeds (graph.nodeSchema); a Markdown note shows its text.
export function buildWidgets(env, node, staticSchema) {
  const schema = env.graph.nodeSchema(node) || staticSchema;
  const box = el('div', 'lg-node-widgets');
  if (node.type === PRIMITIVE && !schema.inputs.length) {
    box.appendChild(el('div', 'lg-kind-hint', { 'data-hint': 'primitive' }, 'Connect to a widget input (convert the widget to an input first).'));
  }
  if (node.type === 'MarkdownNote') {
    const view = el('div', 'lg-markdown', { 'data-markdown': '1' });
    view.innerHTML = markdownHtml(node.widgets.text);   // escaped by markdownHtml
    box.appendChild(view);
  }
  for (const inp of schema.inputs) {
    if (!inp.widget || node.converted.includes(inp.name) || inp.options.forceInput) continue;
    const multi = inp.type === 'STRING' && inp.options.multiline;
    const row = el('div', `lg-widget${multi ? ' lg-widget-multi' : ''}`, { 'data-widget': inp.name, 'data-wtype': inp.type });
    if (inp.options.tooltip) row.title = inp.options.tooltip;
    const conv = el('button', 'lg-convert', { type: 'button', title: 'Convert to input socket', 'data-convert': inp.name }, '○');
    conv.addEventListener('click', (ev) => {
      ev.stopPropagation();
      env.graph.toggleConverted(node.id, inp.name);
    });
    if (isFrontendOnly(node.type)) conv.hidden = true;   // notes and primitives have no sockets to convert to
    row.append(conv, el('span', 'lg-widget-label', {}, inp.name));
    row.appendChild(widgetControl(env, node, inp));
    if (inp.options.control_after_generate) row.appendChild(controlWidget(env, node, inp));
    box.appendChild(row);
    if (inp.type === 'COMBO' && inp.options.image_upload) box.appendChild(imageUpload(env, node, inp));
  }
  return box;
}
