// Client for the backend: the ComfyUI API (/api/...), the editor routes (/lg/...) and /ws events.
// Every failure becomes an Error with a readable message (and `.status` / `.body` when HTTP).

export class ApiError extends Error {
  constructor(message, status = 0, body = null) { super(message); this.status = status; this.body = body; }
}

function newClientId() {
  const a = new Uint8Array(16);
  (window.crypto || {}).getRandomValues ? crypto.getRandomValues(a) : a.forEach((_, i) => { a[i] = Math.random() * 256; });
  return [...a].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function request(url, options = {}) {
  let res;
  try {
    res = await fetch(url, { cache: 'no-store', ...options });
  } catch (e) {
    throw new ApiError(`Cannot reach the server (${e.message || e})`);
  }
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!res.ok) {
    const err = body && body.error;
    const msg = (err && (err.message || (typeof err === 'string' ? err : ''))) || text.slice(0, 300) || res.statusText;
    throw new ApiError(`${res.status}: ${msg}`, res.status, body);
  }
  return body;
}

const jsonPost = (url, data) => request(url, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(data),
});

export class Api {
  constructor() {
    this.clientId = sessionStorage.getItem('latentgraph.clientId') || newClientId();
    sessionStorage.setItem('latentgraph.clientId', this.clientId);
    this.handlers = {};
    this.ws = null;
    this.closed = false;
  }

  on(type, fn) { (this.handlers[type] = this.handlers[type] || []).push(fn); }
  fire(type, data) { for (const fn of this.handlers[type] || []) { try { fn(data); } catch (e) { console.error(e); } } }

  objectInfo() { return request('/api/object_info'); }
  workflows() { return request('/lg/workflows'); }
  workflow(name) { return request(`/lg/workflows/${encodeURIComponent(name)}`); }
  queueWorkflow(workflow, { count = 1, front = false } = {}) {
    return jsonPost('/lg/queue', { workflow, client_id: this.clientId, count, front });
  }
  importObject(obj) { return jsonPost('/lg/import', obj); }
  importFile(file) {
    const fd = new FormData();
    fd.append('file', file, file.name || 'workflow');
    return request('/lg/import', { method: 'POST', body: fd });
  }
  getQueue() { return request('/api/queue'); }
  deleteFromQueue(ids) { return jsonPost('/api/queue', { delete: ids }); }
  interrupt() { return jsonPost('/api/interrupt', {}); }
  history(id) { return request(`/api/history/${encodeURIComponent(id)}`); }
  // Never overwrites: the server picks a free name ("x (1).png") and we use the name it returns.
  uploadImage(file) {
    const fd = new FormData();
    fd.append('image', file, file.name);
    fd.append('type', 'input');
    return request('/api/upload/image', { method: 'POST', body: fd });
  }
  viewUrl(img) {
    const q = new URLSearchParams({ filename: img.filename, subfolder: img.subfolder || '', type: img.type || 'output' });
    return `/api/view?${q}`;
  }

  // WebSocket with automatic reconnection; JSON frames → fire(type, data), binary previews → 'preview'.
  connect() {
    if (this.closed) return;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${proto}://${location.host}/ws?clientId=${this.clientId}`);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => this.fire('connected', true);
    ws.onmessage = (ev) => this.onFrame(ev.data);
    ws.onclose = () => {
      this.fire('connected', false);
      if (!this.closed) setTimeout(() => this.connect(), 1500);
    };
    this.ws = ws;
  }

  onFrame(data) {
    if (typeof data === 'string') {
      let msg;
      try { msg = JSON.parse(data); } catch { return; }
      if (msg && msg.type) this.fire(msg.type, msg.data || {});
      return;
    }
    const view = new DataView(data);
    if (data.byteLength < 8 || view.getUint32(0) !== 1) return;
    const mime = view.getUint32(4) === 2 ? 'image/png' : 'image/jpeg';
    this.fire('preview', new Blob([data.slice(8)], { type: mime }));
  }
}
