"""A native editor document → ComfyUI's UI workflow (the frontend's save format, version 0.4).

Used to offer our example workflows as templates to ComfyUI's official frontend. The inverse of
``comfy_ui.ui_to_native`` for what a native document holds: each node gets its socket inputs (and
a widget input with ``"widget": {"name"}`` for every widget fed by a link), its outputs with their
link ids, and ``widgets_values`` in the layout ``comfy_ui.widget_values`` reads first: every
widget in declaration order, linked ones included, with the control value
("fixed"/"increment"/"decrement"/"randomize") after each ``control_after_generate`` widget.
Numeric node ids become numbers, as the frontend writes them.
"""
from __future__ import annotations

from typing import Any, Mapping

from engine.formats.comfy_api import BYPASS, MUTED
from engine.formats.native import migrate
from engine.nodedef import NodeDef, Registry

_MODE_NUMBERS = {MUTED: 2, BYPASS: 4}
UI_VERSION = 0.4

__all__ = ["native_to_ui"]


def _node_id(value: Any) -> int | str:
    text = str(value)
    return int(text) if text.isdigit() else text


def _widgets_values(nd: NodeDef, node: Mapping) -> list:
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


def _ui_node(node: Mapping, nd: NodeDef | None, order: int, links_in: dict, links_out: dict) -> dict:
    """One UI node; ``links_in`` {input name: (link id, type)}, ``links_out`` {slot: [link ids]}."""
    inputs = []
    for spec in nd.inputs if nd is not None else []:
        if spec.widget and spec.name not in links_in:
            continue
        link, typ = links_in.get(spec.name, (None, spec.type))
        entry: dict[str, Any] = {"name": spec.name, "type": typ, "link": link}
        if spec.widget:
            entry["widget"] = {"name": spec.name}
        inputs.append(entry)
    outputs = [{"name": out.label, "type": out.type, "links": links_out.get(slot, []), "slot_index": slot}
               for slot, out in enumerate(nd.outputs if nd is not None else [])]
    ui = {"id": _node_id(node.get("id")), "type": node.get("type"), "pos": list(node.get("pos") or [0, 0]),
          "size": list(node.get("size") or [300, 120]), "flags": {}, "order": order,
          "mode": _MODE_NUMBERS.get(node.get("mode"), 0), "inputs": inputs, "outputs": outputs,
          "properties": {"Node name for S&R": node.get("type")},
          "widgets_values": _widgets_values(nd, node) if nd is not None else []}
    if node.get("title"):
        ui["title"] = node["title"]
    if node.get("color"):
        ui["color"] = node["color"]
    return ui


def native_to_ui(doc: Mapping, registry: Registry) -> dict:
    """The UI workflow of a native document (migrated first); unknown node types keep no sockets."""
    doc = migrate(doc, registry)
    links_in: dict[str, dict[str, tuple[int, str]]] = {}
    links_out: dict[str, dict[int, list[int]]] = {}
    ui_links = []
    for link in doc.get("links") or []:
        (src, slot), (dst, name), lid = link["from"], link["to"], int(link["id"])
        links_in.setdefault(str(dst), {})[str(name)] = (lid, link.get("type") or "*")
        links_out.setdefault(str(src), {}).setdefault(int(slot), []).append(lid)
        ui_links.append([lid, _node_id(src), int(slot), _node_id(dst), None, link.get("type") or "*"])
    nodes = [_ui_node(n, registry.get(n.get("type")), i, links_in.get(str(n.get("id")), {}),
                      links_out.get(str(n.get("id")), {})) for i, n in enumerate(doc.get("nodes") or [])]
    slots = {(n["id"], inp["link"]): i for n in nodes for i, inp in enumerate(n["inputs"]) if inp["link"] is not None}
    for entry in ui_links:  # target slot = the input's position in its node's inputs list
        entry[4] = slots.get((entry[3], entry[0]), 0)
    view = doc.get("view") or {}
    numeric = [n["id"] for n in nodes if isinstance(n["id"], int)]
    return {"last_node_id": max(numeric, default=0), "last_link_id": max((e[0] for e in ui_links), default=0),
            "nodes": nodes, "links": ui_links,
            "groups": [{"title": g.get("title", ""), "bounding": list(g.get("bounds") or [0, 0, 0, 0]),
                        **({"color": g["color"]} if g.get("color") else {})} for g in doc.get("groups") or []],
            "config": {}, "extra": {"ds": {"scale": view.get("scale", 1.0), "offset": list(view.get("offset") or [0, 0])}},
            "version": UI_VERSION}
