// Visible feedback on the canvas, outside the document: toasts, refused links, validation errors
// (banner + marked nodes and inputs) and per-node run state. Needs only the DOM boxes and the view.

export class Feedback {
  constructor(root, view, banner, toasts) {
    this.root = root;
    this.view = view;
    this.banner = banner;
    this.toasts = toasts;
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
    const e = this.view.nodeEl(nodeId);
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
    const e = this.view.nodeEl(id);
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
    this.view.socketsMoved(id);   // the messages change the node's height
  }

  // A run-time warning from the server (a skipped embedding, a refused file, an automatic tiled
  // decode): kept on the node until the next run, and toasted. `id` may be null (whole prompt).
  warn(id, message) {
    const e = id === null || id === undefined ? null : this.view.nodeEl(String(id));
    const box = e && e.querySelector('.lg-node-messages');
    if (box) {
      const line = document.createElement('div');
      line.className = 'lg-node-message lg-node-warning';
      line.dataset.warning = '1';
      line.textContent = message;
      box.appendChild(line);
      this.view.socketsMoved(String(id));   // the message changes the node's height
    }
    this.toast(e ? `#${id}: ${message}` : message, 'warn');
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
    const e = this.view.nodeEl(id);
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
