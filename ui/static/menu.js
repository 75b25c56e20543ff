// Right-click menus: on a node (rename, mode, colour, widget ↔ input, duplicate, delete) and on the
// empty canvas (add node, group, fit, paste). Every entry is also reachable by keyboard or toolbar;
// the menu only makes them discoverable.

import { el } from './dom.js';

const NODE_COLORS = [['default', null], ['red', '#7a3a3a'], ['green', '#3a6a44'], ['blue', '#34507a'],
  ['purple', '#5d3f78'], ['yellow', '#7a6a2e'], ['cyan', '#2f6a70']];

export class ContextMenu {
  // commands: the editor's command table (main.js); root/canvas: where the menu lives and opens.
  constructor(graph, root, canvas, { selection, commands }) {
    this.graph = graph;
    this.root = root;
    this.selection = selection;
    this.commands = commands;
    this.box = el('div', 'lg-menu', { role: 'menu', 'data-menu': '1' });
    this.box.hidden = true;
    root.appendChild(this.box);
    canvas.addEventListener('contextmenu', (e) => this.onContext(e));
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
    const root = this.root.getBoundingClientRect();
    this.box.hidden = false;
    const w = this.box.offsetWidth, h = this.box.offsetHeight;
    this.box.style.left = `${Math.max(0, Math.min(x - root.left, root.width - w - 4))}px`;
    this.box.style.top = `${Math.max(0, Math.min(y - root.top, root.height - h - 4))}px`;
  }

  nodeItems(id) {
    const c = this.commands, g = this.graph, node = g.nodes.get(id), schema = g.schema(node.type);
    const mode = (m) => () => { const n = g.nodes.get(id); if (n) g.setNodeProps(id, { mode: n.mode === m ? 'normal' : m }); };
    const items = [
      { id: 'rename', label: 'Rename', run: () => c.renameNode(id) },
      { id: 'mute', label: 'Mute', checked: node.mode === 'muted', run: mode('muted') },
      { id: 'bypass', label: 'Bypass', checked: node.mode === 'bypass', run: mode('bypass') },
      '-',
    ];
    for (const [name, color] of NODE_COLORS) {
      items.push({ id: `color-${name}`, label: `Colour: ${name}`, checked: (node.color || null) === color,
        run: () => g.setNodeProps(id, { color }) });
    }
    const widgets = schema ? schema.inputs.filter((i) => i.widget) : [];
    if (widgets.length) items.push('-');
    for (const w of widgets) {
      const conv = node.converted.includes(w.name);
      items.push({ id: `convert-${w.name}`, label: conv ? `Convert ${w.name} to widget` : `Convert ${w.name} to input`,
        run: () => g.toggleConverted(id, w.name) });
    }
    items.push('-',
      { id: 'duplicate', label: 'Duplicate', run: () => { this.selection.set([id]); c.copy(); c.paste(); } },
      { id: 'delete', label: 'Delete', run: () => { this.selection.set([id]); c.deleteSelected(); } });
    return items;
  }

  canvasItems(e) {
    const c = this.commands;
    return [
      { id: 'add-node', label: 'Add node…', run: () => c.openPalette(e.clientX, e.clientY) },
      { id: 'paste', label: 'Paste', run: c.paste },
      { id: 'group', label: 'Group selected nodes', run: c.groupSelected },
      { id: 'select-all', label: 'Select all', run: c.selectAll },
      { id: 'fit', label: 'Fit view', run: c.fitView },
    ];
  }
}
