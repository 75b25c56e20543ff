import { typesCompatible } from './graph.js';
import { el } from './dom.js';

// Searchable node palette (double-click on the canvas or the "Add node" button): node types from
// /object_info grouped by category; type to filter, arrows + Enter or click to add.

// Score how well a schema matches the query words (0 = no match). Title hits rank first.
function score(schema, words) {
  const title = schema.title.toLowerCase(), type = schema.type.toLowerCase(), cat = schema.category.toLowerCase();
  let total = 0;
  for (const w of words) {
    if (title.startsWith(w) || type.startsWith(w)) total += 4;
    else if (title.includes(w) || type.includes(w)) total += 2;
    else if (cat.includes(w) || schema.description.toLowerCase().includes(w)) total += 1;
    else return 0;
  }
  return total;
}

export class Palette {
  // view: the Renderer (client → world coordinates); root: the editor box it opens in.
  constructor(graph, view, root, selection) {
    this.graph = graph;
    this.view = view;
    this.root = root;
    this.selection = selection;
    this.box = el('div', 'lg-palette', { role: 'dialog', 'aria-label': 'Add node' });
    this.box.hidden = true;
    this.search = el('input', 'lg-input lg-palette-search', { type: 'search', placeholder: 'Search nodes…', 'data-palette-search': '1' });
    this.list = el('div', 'lg-palette-list');
    this.box.append(this.search, this.list);
    root.appendChild(this.box);
    this.active = 0;
    this.items = [];
    this.search.addEventListener('input', () => { this.active = 0; this.fill(); });
    this.search.addEventListener('keydown', (e) => this.onKey(e));
    this.list.addEventListener('click', (e) => {
      const it = e.target.closest('[data-node-type]');
      if (it) this.choose(it.dataset.nodeType);
    });
    document.addEventListener('pointerdown', (e) => {
      if (!this.box.hidden && !e.target.closest('.lg-palette, [data-action="add-node"]')) this.close();
    }, true);
  }

  // Open at a client position; new nodes go to the matching world position. With `fromLink`
  // ({src: [id, output], type}) only nodes with a compatible input are listed and get connected.
  open(clientX, clientY, fromLink = null) {
    this.fromLink = fromLink;
    const root = this.root.getBoundingClientRect();
    const canvas = this.view.canvas.getBoundingClientRect();
    if (clientX === undefined) { clientX = canvas.left + canvas.width / 2 - 140; clientY = canvas.top + 60; }
    this.worldPos = this.view.toWorld(clientX, clientY);
    const x = Math.min(clientX - root.left, root.width - 320), y = Math.min(clientY - root.top, root.height - 380);
    Object.assign(this.box.style, { left: `${Math.max(4, x)}px`, top: `${Math.max(4, y)}px` });
    this.box.hidden = false;
    this.search.value = '';
    this.active = 0;
    this.fill();
    this.search.focus();
  }

  close() { this.box.hidden = true; }

  fill() {
    const words = this.search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const g = this.graph, link = this.fromLink;
    const all = Object.values(g.schemas).filter((s) => !link || s.inputs.some((i) => typesCompatible(link.type, i.type)));
    let shown;
    if (words.length) {
      shown = all.map((s) => [score(s, words), s]).filter(([n]) => n > 0)
        .sort((a, b) => b[0] - a[0] || a[1].title.localeCompare(b[1].title)).map(([, s]) => s);
    } else {
      shown = all.sort((a, b) => a.category.localeCompare(b.category) || a.title.localeCompare(b.title));
    }
    this.items = shown;
    this.list.textContent = '';
    let lastCat = null;
    shown.forEach((s, i) => {
      if (!words.length && s.category !== lastCat) {
        this.list.appendChild(el('div', 'lg-palette-cat', { 'data-category': s.category }, s.category));
        lastCat = s.category;
      }
      const item = el('div', `lg-palette-item${i === this.active ? ' lg-active' : ''}`, { 'data-node-type': s.type, title: s.description || s.type });
      item.append(el('span', 'lg-palette-title', {}, s.title), el('span', 'lg-palette-meta', {}, words.length ? s.category : s.type));
      this.list.appendChild(item);
    });
    if (!shown.length) this.list.appendChild(el('div', 'lg-palette-empty', {}, 'No node matches.'));
  }

  onKey(e) {
    if (e.key === 'Escape') { this.close(); return; }
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const n = this.items.length;
      if (!n) return;
      this.active = (this.active + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
      this.fill();
      const a = this.list.querySelector('.lg-active');
      if (a) a.scrollIntoView({ block: 'nearest' });
    } else if (e.key === 'Enter') {
      e.preventDefault();
      if (this.items[this.active]) this.choose(this.items[this.active].type);
    }
  }

  // Add the node (connected to the dragged link, if any) as one undo step and select it.
  choose(type) {
    this.close();
    const link = this.fromLink;
    const node = this.graph.edit((g) => {
      const n = g.addNode(type, this.worldPos || [0, 0]);
      const inputs = link ? g.schema(type).inputs : [];
      const inp = inputs.find((i) => !i.widget && typesCompatible(link.type, i.type))
        || inputs.find((i) => typesCompatible(link.type, i.type));
      if (inp && !g.checkConnect(link.src[0], link.src[1], n.id, inp.name)) g.connect(link.src[0], link.src[1], n.id, inp.name);
      return n;
    });
    this.selection.set([node.id]);
  }
}
