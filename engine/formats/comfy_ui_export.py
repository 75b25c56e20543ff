"""A native editor document → ComfyUI's UI workflow (the frontend's save format, version 0.4).

Used to offer our example workflows as templates to ComfyUI's official frontend and by the
editor's "Export (ComfyUI)". The inverse of ``comfy_ui.ui_to_native``: each node gets its socket
inputs (and a widget input with ``"widget": {"name"}`` for every widget fed by a link), its
outputs with their link ids, and ``widgets_values`` in the layout ``comfy_ui.widget_values``
reads first: every widget in declaration order, linked ones included, with the control value
("fixed"/"increment"/"decrement"/"randomize") after each ``control_after_generate`` widget.
What an import kept (a node's ``ui``: properties, bgcolor, socket entries, the saved positional
values; a group's ``ui``; the document's ``comfy``: extra, config, version, ids) is written back,
and Reroute / Note / MarkdownNote / PrimitiveNode are exported as the frontend saves them, so an
imported workflow exports as the same workflow. Numeric node ids become numbers, as the frontend
writes them.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from engine.formats.comfy_api import BYPASS, MUTED, node_title
from engine.formats.comfy_ui import widget_values
from engine.formats.frontend_nodes import (DEFAULT_PROPERTIES, FRONTEND_ONLY, REROUTE, TITLES, ui_sockets,
                                           ui_widgets_values)
from engine.formats.native import migrate
from engine.nodedef import NodeDef, Registry

_MODE_NUMBERS = {MUTED: 2, BYPASS: 4}
UI_VERSION = 0.4
_MISSING = object()

__all__ = ["native_to_ui"]


def _node_id(value: Any) -> int | str:
    text = str(value)
    return int(text) if text.isdigit() else text


def _fresh_values(nd: NodeDef, node: Mapping) -> list:
    widgets = node.get("widgets") or {}
    controls = node.get("controls") or {}
    values: list = []
    for spec in nd.inputs:
        if not spec.widget:
            continue
        values.append(widgets.get(spec.name, spec.default))
        if spec.opts.get("control_after_generate"):
            values.append(controls.get(spec.name, "fixed"))
    return values


def _widgets_values(nd: NodeDef, node: Mapping, inputs: list) -> list:
    """The positional values; the list the workflow was imported with when nothing changed (its
    layout may be an older frontend's), else every widget in order with any kept surplus after."""
    fresh = _fresh_values(nd, node)
    kept = (node.get("ui") or {}).get("widgets_values")
    if not isinstance(kept, list):
        return fresh
    values, controls = widget_values({"widgets_values": kept, "inputs": inputs}, nd)
    widgets, now = node.get("widgets") or {}, node.get("controls") or {}
    names = {s.name for s in nd.inputs if s.widget}
    same = (all(widgets.get(k, _MISSING) == v for k, v in values.items())
            and all(now.get(k, "fixed") == v for k, v in controls.items())
            and names & set(widgets) <= set(values))
    return kept if same else fresh + kept[len(fresh):]


def _socket_entries(node: Mapping, nd: NodeDef | None, links_in: dict) -> list:
    """The node's UI inputs: the kept entries (labels, shapes, widget inputs of newer frontends)
    with their current links, then any other linked input in declaration order."""
    inputs, seen = [], set()
    for entry in (node.get("ui") or {}).get("inputs") or []:
        if isinstance(entry, Mapping):
            widget = entry.get("widget")
            name = str(widget.get("name")) if isinstance(widget, Mapping) and widget.get("name") else str(entry.get("name"))
            seen.add(name)
            inputs.append({**entry, "link": links_in.get(name, (None, None))[0]})
    specs = [(s.name, s.type, s.widget) for s in nd.inputs] if nd is not None else \
        [(name, typ, False) for name, (_lid, typ) in links_in.items()]
    for name, typ, widget in specs:
        if name in seen or (widget and name not in links_in):
            continue
        link, link_type = links_in.get(name, (None, typ))
        entry: dict[str, Any] = {"name": name, "type": link_type if nd is None else typ, "link": link}
        if widget:
            entry["widget"] = {"name": name}
        inputs.append(entry)
    return inputs


def _output_entries(node: Mapping, nd: NodeDef | None, links_out: dict) -> list:
    kept = [e for e in (node.get("ui") or {}).get("outputs") or [] if isinstance(e, Mapping)]
    if not kept:
        return [{"name": out.label, "type": out.type, "links": links_out.get(slot, []), "slot_index": slot}
                for slot, out in enumerate(nd.outputs if nd is not None else [])]
    return [{**e, "links": links_out.get(slot) or ([] if e.get("links") else e.get("links", []))}
            for slot, e in enumerate(kept)]


def _ui_node(node: Mapping, registry: Registry, order: int, links_in: dict, links_out: dict,
             out_types: dict) -> dict:
    """One UI node; ``links_in`` {input name: (link id, type)}, ``links_out`` {slot: [link ids]}."""
    kind, nd = node.get("type"), registry.get(node.get("type"))
    kept = {k: v for k, v in (node.get("ui") or {}).items() if k not in ("inputs", "outputs", "widgets_values", "size")}
    if kind in FRONTEND_ONLY:
        inputs, outputs = ui_sockets(node, links_in, links_out, out_types.get(0, "*"))
        values = ui_widgets_values(node)
        default_title, properties = TITLES[kind], DEFAULT_PROPERTIES[kind]
    else:
        inputs, outputs = _socket_entries(node, nd, links_in), _output_entries(node, nd, links_out)
        values = _widgets_values(nd, node, inputs) if nd is not None else \
            (node.get("ui") or {}).get("widgets_values", [])
        default_title, properties = node_title(registry, kind), {"Node name for S&R": kind}
    mode = _MODE_NUMBERS.get(node.get("mode"), kept.pop("mode", 0))
    ui = {"id": _node_id(node.get("id")), "type": kind, "pos": list(node.get("pos") or [0, 0]),
          "size": _size(node), "flags": dict(node.get("flags") or {}), "order": order,
          "mode": mode, "inputs": inputs, "outputs": outputs, "properties": properties, **kept}
    if values or kind != REROUTE:
        ui["widgets_values"] = values
    if node.get("title") and node["title"] != default_title:
        ui["title"] = node["title"]
    if node.get("color"):
        ui["color"] = node["color"]
    return ui


def native_to_ui(doc: Mapping, registry: Registry) -> dict:
    """The UI workflow of a native document (migrated first); what an import kept (``ui``, ``comfy``)
    is written back, so an imported ComfyUI workflow exports as the same workflow."""
    doc = migrate(doc, registry)
    links_in: dict[str, dict[str, tuple[int, str]]] = {}
    links_out: dict[str, dict[int, list[int]]] = {}
    out_types: dict[str, dict[int, str]] = {}
    ui_links = []
    for link in doc.get("links") or []:
        (src, slot), (dst, name), lid = link["from"], link["to"], int(link["id"])
        typ = link.get("type") or "*"
        links_in.setdefault(str(dst), {})[str(name)] = (lid, typ)
        links_out.setdefault(str(src), {}).setdefault(int(slot), []).append(lid)
        out_types.setdefault(str(src), {}).setdefault(int(slot), typ)
        ui_links.append([lid, _node_id(src), int(slot), _node_id(dst), str(name), typ])
    nodes = [_ui_node(n, registry, i, links_in.get(str(n.get("id")), {}), links_out.get(str(n.get("id")), {}),
                      out_types.get(str(n.get("id")), {})) for i, n in enumerate(doc.get("nodes") or [])]
    slots = {(n["id"], inp["link"]): i for n in nodes for i, inp in enumerate(n["inputs"]) if inp["link"] is not None}
    for entry in ui_links:  # target slot = the input's position in its node's inputs list
        entry[4] = slots.get((entry[3], entry[0]), 0)
    view = doc.get("view") or {}
    comfy = copy.deepcopy(doc.get("comfy")) if isinstance(doc.get("comfy"), Mapping) else {}
    if not (isinstance(comfy.get("version"), (int, float)) and comfy["version"] < 1):
        # Links are written in the 0.4 list form; a schema-1 file's own keys would contradict it.
        comfy = {k: v for k, v in comfy.items() if k not in ("version", "state", "reroutes")}
    numeric = [n["id"] for n in nodes if isinstance(n["id"], int)]
    extra = comfy.get("extra") if isinstance(comfy.get("extra"), dict) else {}
    extra["ds"] = {"scale": view.get("scale", 1.0), "offset": list(view.get("offset") or [0, 0])}
    return {**comfy, "last_node_id": max([*numeric, _int(comfy.get("last_node_id"))]),
            "last_link_id": max([*(e[0] for e in ui_links), _int(comfy.get("last_link_id"))]),
            "nodes": nodes, "links": ui_links, "groups": [_ui_group(g) for g in doc.get("groups") or []],
            "config": comfy.get("config", {}), "extra": extra, "version": comfy.get("version", UI_VERSION)}


def _ui_group(group: Mapping) -> dict:
    out = {"title": group.get("title", ""), "bounding": list(group.get("bounds") or [0, 0, 0, 0])}
    if group.get("color"):
        out["color"] = group["color"]
    return {**out, **copy.deepcopy(group.get("ui") or {})}


def _size(node: Mapping) -> list:
    """The node's width, and the height ComfyUI saved when it was imported (the editor measures
    its own heights, which are not ComfyUI's)."""
    size = list(node.get("size") or [300, 120])
    kept = (node.get("ui") or {}).get("size")
    if isinstance(kept, list) and len(kept) >= 2 and len(size) >= 2:
        size[1] = kept[1]
    return size


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
