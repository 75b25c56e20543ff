// Right-click menus: on a node (rename, mode, colour, widget ↔ input, duplicate, delete) and on the
// empty canvas (add node, group, fit, paste). Every entry is also reachable by keyboard or toolbar;
// the menu only makes them discoverable.

import { el } from './dom.js';

const NODE_COLORS = [['default', null], ['red', '#7a3a3a'], ['green', '#3a6a44'], ['blue', '#34507a'],
  ['purple', '#5d3f78'], ['yellow', '#7a6a2e'], ['cyan', '#2f6a70']];

export class ContextMenu {
  constructor(editor) {
    this.editor = editor;
    this.box = el('div', 'lg-menu', { role: 'menu', 'data-menu': '1' });
    this.box.hidden = true;
    editor.root.appendChild(this.box);
    editor.canvas.addEventListener('contextmenu', (e) => this.onContext(e));
    document.addEventListener('pointerdown', (e) => { if (!e.target.closest('.lg-menu')) this.close(); }, true);
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape') this.close(); });
  }

  close() { this.box.hidden = true; }

  onContext(e) {
    if (e.target.closest('input, textarea, select')) return;
    e.preventDefault();
    const nodeEl = e.target.closest('.lg-node');
    const items = nodeEl ? this.nodeItems(nodeEl.dataset.id) : this.canvasItems(e);
    this.show(items, e.clientX, e.clientY);
  }

  show(items, x, y) {
    this.box.textContent = '';
    for (const it of items) {
      if (it === '-') { this.box.appendChild(el('div', 'lg-menu-sep')); continue; }
      const row = el('div', 'lg-menu-item', { role: 'menuitem', 'data-menu-item': it.id }, it.label);
      if (it.checked) row.classList.add('lg-checked');
      row.addEventListener('click', () => { this.close(); it.run(); });
      this.box.appendChild(row);
    }
    const root = this.editor.root.getBoundingClientRect();
    this.box.hidden = false;
    const w = this.box.offsetWidth, h = this.box.offsetHeight;
    this.box.style.left = `${Math.max(0, Math.min(x - root.left, root.width - w - 4))}px`;
    this.box.style.top = `${Math.max(0, Math.min(y - root.top, root.height - h - 4))}px`;
  }

  // Apply `fn` to the node as one undoable step and redraw it.
  edit(id, fn) {
    const node = this.editor.graph.nodes.get(id);
    if (!node) return;
    this.editor.graph.checkpoint();
    fn(node);
    this.editor.renderer.renderNode(id);
    this.editor.changed({});
  }

  nodeItems(id) {
    const ed = this.editor, g = ed.graph, node = g.nodes.get(id), schema = g.schema(node.type);
    const items = [
      { id: 'rename', label: 'Rename', run: () => ed.renameNode(id) },
      { id: 'mute', label: 'Mute', checked: node.mode === 'muted', run: () => this.edit(id, (n) => { n.mode = n.mode === 'muted' ? 'normal' : 'muted'; }) },
      { id: 'bypass', label: 'Bypass', checked: node.mode === 'bypass', run: () => this.edit(id, (n) => { n.mode = n.mode === 'bypass' ? 'normal' : 'bypass'; }) },
      '-',
    ];
    for (const [name, color] of NODE_COLORS) {
      items.push({ id: `color-${name}`, label: `Colour: ${name}`, checked: (node.color || null) === color,
        run: () => this.edit(id, (n) => { n.color = color; }) });
    }
    const widgets = schema ? schema.inputs.filter((i) => i.widget) : [];
    if (widgets.length) items.push('-');
    for (const w of widgets) {
      const conv = node.converted.includes(w.name);
      items.push({ id: `convert-${w.name}`, label: conv ? `Convert ${w.name} to widget` : `Convert ${w.name} to input`,
        run: () => { g.checkpoint(); g.toggleConverted(id, w.name); ed.changed({}); } });
    }
    items.push('-',
      { id: 'duplicate', label: 'Duplicate', run: () => { ed.selection.clear(); ed.selection.add(id); ed.copy(); ed.paste(); } },
      { id: 'delete', label: 'Delete', run: () => { ed.selection.clear(); ed.selection.add(id); ed.deleteSelected(); } });
    return items;
  }

  canvasItems(e) {
    const ed = this.editor;
    return [
      { id: 'add-node', label: 'Add node…', run: () => ed.palette.open(e.clientX, e.clientY) },
      { id: 'paste', label: 'Paste', run: () => ed.paste() },
      { id: 'group', label: 'Group selected nodes', run: () => ed.groupSelected() },
      { id: 'select-all', label: 'Select all', run: () => ed.selectAll() },
      { id: 'fit', label: 'Fit view', run: () => ed.fitView() },
    ];
  }
}
