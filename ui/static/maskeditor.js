// Mask editor for image-loading nodes (Load Image): paint the area to inpaint with a soft brush,
// erase, change size and feather (blur of the brush edge), invert, clear. Saving works as
// ComfyUI's mask editor does: the mask goes to POST /upload/mask as the alpha channel of a PNG
// (alpha 0 = masked) with `original_ref` naming the image; the server writes a copy of the
// original with that alpha into input/clipspace/, and the node's image becomes that copy, so
// LoadImage's MASK output (1 − alpha) carries the mask. An image that already has a mask opens
// with it.

import { el } from './dom.js';

const MAX_VIEW = 0.8;    // of the window, for the image on screen
const MAX_ZOOM = 4;      // small images are enlarged up to this much

// The "Edit mask…" button under a node's image (widgets.js draws it).
export function maskButton(env, node, name) {
  const b = el('button', 'lg-btn lg-mask-open', { type: 'button', 'data-mask-edit': name, title: 'Paint a mask (inpainting area) on this image' }, 'Edit mask…');
  b.addEventListener('click', (e) => {
    e.stopPropagation();
    new MaskEditor(env, node, name, b.closest('.lg-app') || document.body).open();
  });
  return b;
}

// {filename, subfolder, type} of an image widget value ("sub/x.png", or ComfyUI's "x.png [output]").
function imageRef(value) {
  const m = /^(.*) \[(input|output|temp)\]$/.exec(String(value));
  const parts = (m ? m[1] : String(value)).split('/');
  return { filename: parts.pop(), subfolder: parts.join('/'), type: m ? m[2] : 'input' };
}

class MaskEditor {
  constructor(env, node, name, root) {
    this.env = env;
    this.node = node;
    this.name = name;
    this.root = root;
    this.ref = imageRef(node.widgets[name]);
    this.tool = 'brush';
    this.size = 24;
    this.feather = 0.5;
    this.last = null;
    this.onKey = (e) => { if (e.key === 'Escape') { e.stopPropagation(); this.close(); } };
  }

  async open() {
    this.build();
    this.root.appendChild(this.box);
    document.addEventListener('keydown', this.onKey, true);
    try {
      const img = await loadImage(this.env.api.viewUrl(this.ref));
      this.setImage(img);
      this.box.dataset.ready = '1';
    } catch (e) {
      this.env.toast(`Cannot open the image: ${e.message}`, 'error');
      this.close();
    }
  }

  build() {
    this.box = el('div', 'lg-mask-editor', { 'data-mask-editor': '1', role: 'dialog' });
    const bar = el('div', 'lg-mask-bar');
    const tool = (id, label) => {
      const b = el('button', 'lg-btn lg-mask-tool', { type: 'button', 'data-mask-tool': id }, label);
      b.addEventListener('click', () => this.setTool(id));
      return b;
    };
    this.toolButtons = [tool('brush', 'Brush'), tool('eraser', 'Eraser')];
    const range = (key, label, min, max, step, value, apply) => {
      const r = el('input', 'lg-input', { type: 'range', min, max, step, value, [`data-mask-${key}`]: '1', title: label });
      r.addEventListener('input', () => apply(Number(r.value)));
      const wrap = el('label', 'lg-mask-range', {}, `${label} `);
      wrap.appendChild(r);
      return wrap;
    };
    const act = (id, label, fn) => {
      const b = el('button', 'lg-btn', { type: 'button', 'data-mask-action': id }, label);
      b.addEventListener('click', fn);
      return b;
    };
    bar.append(...this.toolButtons, range('size', 'Size', 1, 256, 1, this.size, (v) => { this.size = v; }),
      range('feather', 'Feather', 0, 1, 0.05, this.feather, (v) => { this.feather = v; }),
      act('invert', 'Invert', () => this.invert()), act('clear', 'Clear', () => this.clear()),
      el('span', 'lg-mask-gap'), act('cancel', 'Cancel', () => this.close()), act('save', 'Save', () => this.save()));
    this.stage = el('div', 'lg-mask-stage');
    this.view = el('canvas', 'lg-mask-view', { 'data-mask-canvas': '1' });
    this.stage.appendChild(this.view);
    this.box.append(bar, this.stage);
    this.setTool('brush');
    this.view.addEventListener('pointerdown', (e) => this.down(e));
    this.view.addEventListener('pointermove', (e) => { if (this.last) this.paintTo(this.toImage(e)); });
    for (const ev of ['pointerup', 'pointercancel', 'pointerleave']) this.view.addEventListener(ev, () => { this.last = null; });
  }

  setTool(id) {
    this.tool = id;
    for (const b of this.toolButtons) b.classList.toggle('lg-active', b.dataset.maskTool === id);
  }

  // The photo (its RGB, opaque) and the mask layer (alpha = how much is masked) at image size.
  setImage(img) {
    const w = img.naturalWidth, h = img.naturalHeight;
    this.photo = canvasOf(w, h);
    this.mask = canvasOf(w, h);
    const probe = canvasOf(w, h).getContext('2d', { willReadFrequently: true });
    probe.drawImage(img, 0, 0);
    const px = probe.getImageData(0, 0, w, h);
    const m = this.mask.getContext('2d').createImageData(w, h);
    for (let i = 0; i < px.data.length; i += 4) {   // an existing mask: transparent pixels
      m.data[i + 3] = 255 - px.data[i + 3];
      px.data[i + 3] = 255;
    }
    this.photo.getContext('2d').putImageData(px, 0, 0);
    this.mask.getContext('2d').putImageData(m, 0, 0);
    const scale = Math.min(MAX_ZOOM, (window.innerWidth * MAX_VIEW) / w, (window.innerHeight * MAX_VIEW) / h);
    this.view.width = w; this.view.height = h;
    this.view.style.width = `${Math.round(w * scale)}px`;
    this.view.style.height = `${Math.round(h * scale)}px`;
    this.redraw();
  }

  toImage(e) {
    const r = this.view.getBoundingClientRect();
    return [((e.clientX - r.left) * this.view.width) / r.width, ((e.clientY - r.top) * this.view.height) / r.height];
  }

  down(e) {
    if (e.button !== 0) return;
    e.preventDefault();
    this.view.setPointerCapture(e.pointerId);
    const p = this.toImage(e);
    this.last = p;
    this.dab(p);
    this.redraw();
  }

  // Dabs along the segment from the last point, so a fast stroke has no gaps.
  paintTo(p) {
    const [x0, y0] = this.last, d = Math.hypot(p[0] - x0, p[1] - y0), step = Math.max(1, this.size / 6);
    for (let t = step; t <= d; t += step) this.dab([x0 + ((p[0] - x0) * t) / d, y0 + ((p[1] - y0) * t) / d]);
    this.dab(p);
    this.last = p;
    this.redraw();
  }

  // One round dab: solid to (1 − feather) of the radius, then fading out (the brush's blur).
  dab([x, y]) {
    const ctx = this.mask.getContext('2d'), r = this.size / 2;
    let fill = 'rgba(0,0,0,1)';
    if (this.feather > 0.01) {   // (a gradient whose two circles coincide would paint nothing)
      fill = ctx.createRadialGradient(x, y, r * (1 - this.feather), x, y, r);
      fill.addColorStop(0, 'rgba(0,0,0,1)');
      fill.addColorStop(1, 'rgba(0,0,0,0)');
    }
    ctx.globalCompositeOperation = this.tool === 'eraser' ? 'destination-out' : 'source-over';
    ctx.fillStyle = fill;
    ctx.beginPath();
    ctx.arc(x, y, r, 0, Math.PI * 2);
    ctx.fill();
    ctx.globalCompositeOperation = 'source-over';
  }

  mapAlpha(fn) {
    const ctx = this.mask.getContext('2d'), d = ctx.getImageData(0, 0, this.mask.width, this.mask.height);
    for (let i = 3; i < d.data.length; i += 4) d.data[i] = fn(d.data[i]);
    ctx.putImageData(d, 0, 0);
    this.redraw();
  }

  invert() { this.mapAlpha((a) => 255 - a); }
  clear() { this.mapAlpha(() => 0); }

  // The photo with the mask shown as a translucent tint.
  redraw() {
    const ctx = this.view.getContext('2d');
    ctx.clearRect(0, 0, this.view.width, this.view.height);
    ctx.drawImage(this.photo, 0, 0);
    const tint = canvasOf(this.mask.width, this.mask.height), t = tint.getContext('2d');
    t.drawImage(this.mask, 0, 0);
    t.globalCompositeOperation = 'source-in';
    t.fillStyle = 'rgba(255, 40, 120, 0.6)';
    t.fillRect(0, 0, tint.width, tint.height);
    ctx.drawImage(tint, 0, 0);
  }

  // The PNG ComfyUI's editor uploads: black, alpha = 255 − mask (painted = transparent).
  maskPng() {
    const w = this.mask.width, h = this.mask.height, out = canvasOf(w, h), ctx = out.getContext('2d');
    const m = this.mask.getContext('2d').getImageData(0, 0, w, h), d = ctx.createImageData(w, h);
    for (let i = 3; i < d.data.length; i += 4) d.data[i] = 255 - m.data[i];
    ctx.putImageData(d, 0, 0);
    return new Promise((resolve) => out.toBlob(resolve, 'image/png'));
  }

  async save() {
    try {
      const fd = new FormData();
      fd.append('image', await this.maskPng(), `clipspace-mask-${Date.now()}.png`);
      fd.append('type', 'input');
      fd.append('subfolder', 'clipspace');
      fd.append('original_ref', JSON.stringify(this.ref));
      const res = await fetch('/api/upload/mask', { method: 'POST', body: fd });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error((body.error && body.error.message) || `HTTP ${res.status}`);
      await this.env.refreshSchemas({ quiet: true });   // the new file joins the image list
      this.env.graph.setWidget(this.node.id, this.name, body.subfolder ? `${body.subfolder}/${body.name}` : body.name);
      this.close();
    } catch (e) {
      this.env.toast(`Saving the mask failed: ${e.message}`, 'error');
    }
  }

  close() {
    document.removeEventListener('keydown', this.onKey, true);
    this.box.remove();
  }
}

function canvasOf(w, h) {
  const c = document.createElement('canvas');
  c.width = w; c.height = h;
  return c;
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('the image did not load'));
    img.src = url;
  });
}
