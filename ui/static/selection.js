// The selected node ids. Not part of the document (no undo, not saved); listeners ('change') are
// told after every change, and ids of nodes the graph removed or no longer has drop out by themselves.

export class Selection {
  constructor(graph) {
    this.ids = new Set();
    this.listeners = [];
    graph.on('change', (c) => {
      const gone = [...this.ids].filter((id) => c.removed.has(id) || (c.load && !graph.nodes.has(id)));
      if (gone.length) { for (const id of gone) this.ids.delete(id); this.emit(); }
    });
  }

  on(fn) { this.listeners.push(fn); }
  emit() { for (const fn of this.listeners) fn(this.ids); }

  get size() { return this.ids.size; }
  has(id) { return this.ids.has(id); }
  list() { return [...this.ids]; }

  // Replace the selection (an empty list clears it).
  set(ids) { this.ids = new Set(ids); this.emit(); }
  add(ids) { for (const id of ids) this.ids.add(id); this.emit(); }
  toggle(id) { if (this.ids.has(id)) this.ids.delete(id); else this.ids.add(id); this.emit(); }
}
