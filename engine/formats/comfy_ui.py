"""ComfyUI's UI workflow (the frontend's save format) → the canonical prompt or a native document.

The UI format stores widget values positionally (``widgets_values``) in the declaration order of
a node's widget inputs, with one extra frontend-only value after every input declared
``control_after_generate`` ("fixed" | "increment" | "decrement" | "randomize", a boolean in 2023
files). Which widgets occupy a slot changed over the frontend's history (a widget converted to a
socket kept its value in some versions and not in others), so the layout is chosen by matching
the value count against the plausible layouts, then checking the control slots hold control
values. Frontend-only nodes are resolved for the prompt (Note/MarkdownNote dropped, Reroute chains
followed, PrimitiveNode values become literals of their targets); the native document keeps them
as nodes, with everything else the frontend saved, so the export gives the same workflow back. Subgraph instances (frontend >= 1.24,
``definitions.subgraphs``) are expanded first, inner nodes getting the frontend's ``"<instance>:<inner>"``
API ids.
"""
from __future__ import annotations

import copy
from typing import Any, Iterator, Mapping

from engine.formats.comfy_api import (BYPASS, MUTED, NORMAL, FormatError, finish_graph,
                                      node_title)
from engine.formats.frontend_nodes import (CONTROL_VALUES, FRONTEND_ONLY, NOTE_TYPES, PRIMITIVE, REROUTE, REROUTE_INPUT,
                                           TITLES, native_widgets)
from engine.formats.native import new_document
from engine.nodedef import NodeDef, Registry

_MODES = {2: MUTED, 4: BYPASS}
_CTRL = "\x00control"  # a layout slot ("\x00control", widget name) holds a control value

__all__ = ["is_ui_workflow", "ui_to_prompt", "ui_to_native", "widget_values", "flatten_subgraphs",
           "CONTROL_VALUES"]


def is_ui_workflow(obj: Any) -> bool:
    """True for a ComfyUI frontend workflow: a ``nodes`` list and ``links``."""
    return isinstance(obj, Mapping) and isinstance(obj.get("nodes"), list) and "links" in obj


def _is_control(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and value in CONTROL_VALUES)


# -- positional widget values ----------------------------------------------------------------
def _layouts(specs: list, linked: set[str], socketed: set[str]) -> Iterator[list]:
    """Plausible slot layouts, most likely first: (excluded widgets) × (which control slots exist)."""
    seen: list[list] = []
    for exclude, controls in (((), "all"), (linked, "included"), (linked, "all"), (socketed, "included"),
                              (socketed, "all"), ((), "none"), (linked, "none"), (socketed, "none")):
        layout: list = []
        for spec in specs:
            ctl = bool(spec.opts.get("control_after_generate"))
            if spec.name in exclude:
                if ctl and controls == "all":
                    layout.append((_CTRL, spec.name))
                continue
            layout.append(spec.name)
            if ctl and controls != "none":
                layout.append((_CTRL, spec.name))
        if layout not in seen:
            seen.append(layout)
            yield layout


def _lenient(specs: list, values: list) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fallback when no layout matches the count: walk in order, skipping control-like values
    after control widgets; surplus trailing values (e.g. LoadImage's upload button) are ignored."""
    out: dict[str, Any] = {}
    controls: dict[str, Any] = {}
    i = 0
    for spec in specs:
        if i >= len(values):
            break
        out[spec.name] = values[i]
        i += 1
        if spec.opts.get("control_after_generate") and i < len(values) and _is_control(values[i]):
            controls[spec.name] = _control_name(values[i])
            i += 1
    return out, controls


def widget_values(node: Mapping, nd: NodeDef) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(values by input name, control modes by input name)`` of one UI node."""
    raw = node.get("widgets_values")
    if isinstance(raw, Mapping):  # some nodes save a keyed object instead of a list
        return dict(raw), {}
    values = list(raw or [])
    specs = [s for s in nd.inputs if s.widget]
    entries = [i for i in node.get("inputs") or [] if isinstance(i, Mapping) and isinstance(i.get("widget"), Mapping)]
    socketed = {i["widget"].get("name") for i in entries}
    linked = {i["widget"].get("name") for i in entries if i.get("link") is not None}
    for layout in _layouts(specs, linked, socketed):
        if len(layout) != len(values):
            continue
        if all(_is_control(v) for slot, v in zip(layout, values) if isinstance(slot, tuple)):
            return _assign(layout, values)
    return _lenient(specs, values)


def _assign(layout: list, values: list) -> tuple[dict[str, Any], dict[str, Any]]:
    out: dict[str, Any] = {}
    controls: dict[str, Any] = {}
    for slot, value in zip(layout, values):
        if isinstance(slot, tuple):
            controls[slot[1]] = _control_name(value)
        else:
            out[slot] = value
    return out, controls


def _control_name(value: Any) -> str:
    """The 2023 boolean form meant "randomize" (true) or "fixed" (false)."""
    if isinstance(value, bool):
        return "randomize" if value else "fixed"
    return str(value)


# -- subgraphs (ComfyUI frontend >= 1.24) ----------------------------------------------------------
SUBGRAPH_IN, SUBGRAPH_OUT = -10, -20  # ids of a subgraph's input / output pseudo-nodes


def _link_tuple(link: Any) -> tuple | None:
    """(id, origin, origin_slot, target, target_slot, type) from the list or the object form."""
    if isinstance(link, Mapping):
        link = [link.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")]
    if isinstance(link, (list, tuple)) and len(link) >= 5 and link[0] is not None:
        return tuple(link[:5]) + (link[5] if len(link) > 5 else None,)
    return None


def _subgraph_defs(workflow: Mapping) -> dict[str, Mapping]:
    """Subgraph definitions by id, including ones nested in other definitions."""
    defs: dict[str, Mapping] = {}
    stack = [workflow]
    while stack:
        holder = stack.pop()
        for sg in ((holder.get("definitions") or {}).get("subgraphs") or []):
            if isinstance(sg, Mapping) and sg.get("id") not in defs:
                defs[str(sg.get("id"))] = sg
                stack.append(sg)
    return defs


class _Flattener:
    """Expands subgraph instances into their inner nodes with ids ``"<instance>:<inner>"`` (the
    frontend's API ids); values promoted onto an instance become PrimitiveNodes feeding the target."""

    def __init__(self, defs: Mapping[str, Mapping], warnings: list) -> None:
        self.defs, self.warnings = defs, warnings
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def expand(self, graph: Mapping, prefix: str, outer: dict, mode: Any, depth: int) -> dict:
        """Emit ``graph``'s nodes under ``prefix``; returns the sources of its output slots."""
        if depth > 32:
            self.warnings.append(f"subgraphs nested too deeply at {prefix!r}; not expanded")
            return {}
        links = {int(t[0]): t for t in map(_link_tuple, graph.get("links") or []) if t is not None}
        nodes = {n["id"]: n for n in graph.get("nodes") or [] if isinstance(n, Mapping) and "id" in n}
        expanded: dict[Any, dict] = {}

        def instance_outputs(nid: Any) -> dict:
            if nid not in expanded:
                expanded[nid] = {}  # a cycle through an instance resolves to nothing
                expanded[nid] = self._instance(nodes[nid], prefix, resolve, mode, depth)
            return expanded[nid]

        def resolve(link_id: Any) -> tuple | None:
            t = links.get(int(link_id)) if link_id is not None else None
            if t is None:
                return None
            origin, slot = t[1], int(t[2])
            if origin == SUBGRAPH_IN:
                return outer.get(slot)
            if origin not in nodes:
                return None
            if str(nodes[origin].get("type")) in self.defs:
                return instance_outputs(origin).get(slot)
            return ("link", f"{prefix}{origin}", slot)

        for nid, node in nodes.items():
            if str(node.get("type")) in self.defs:
                instance_outputs(nid)
            else:
                self._emit(node, prefix, resolve, mode)
        return {int(t[4]): resolve(t[0]) for t in links.values() if t[3] == SUBGRAPH_OUT}

    def _instance(self, node: Mapping, prefix: str, resolve: Any, mode: Any, depth: int) -> dict:
        values = node.get("widgets_values") if isinstance(node.get("widgets_values"), list) else []
        outer: dict[int, tuple | None] = {}
        widget_index = 0
        for k, entry in enumerate(node.get("inputs") or []):
            src = resolve(entry.get("link")) if isinstance(entry, Mapping) else None
            if isinstance(entry, Mapping) and entry.get("widget"):
                if src is None and widget_index < len(values):
                    src = ("value", values[widget_index])
                widget_index += 1
            outer[k] = src
        inner_mode = node.get("mode") if node.get("mode") in (2, 4) else mode
        first = len(self.nodes)
        outputs = self.expand(self.defs[str(node["type"])], f"{prefix}{node['id']}:", outer, inner_mode, depth + 1)
        ox, oy = _pair(node.get("pos"))
        for inner in self.nodes[first:]:  # inner positions are relative to the subgraph's own canvas
            x, y = _pair(inner.get("pos"))
            inner["pos"] = [x + ox, y + oy]
        return outputs

    def _emit(self, node: Mapping, prefix: str, resolve: Any, mode: Any) -> None:
        new = dict(node, id=f"{prefix}{node['id']}")
        if mode in (2, 4) and node.get("mode", 0) in (0, None):
            new["mode"] = mode
        new["inputs"] = []
        for entry in node.get("inputs") or []:
            if isinstance(entry, Mapping):
                slot = len(new["inputs"])
                link = self._link_to(resolve(entry.get("link")), new["id"], slot, entry.get("type"))
                new["inputs"].append(dict(entry, link=link))
        self.nodes.append(new)

    def _link_to(self, src: tuple | None, dst: str, slot: int, typ: Any) -> int | None:
        if src is None:
            return None
        lid = len(self.links) + 1
        if src[0] == "value":
            pid = f"{dst}:value{slot}"
            self.nodes.append({"id": pid, "type": PRIMITIVE, "mode": 0, "widgets_values": [src[1]],
                               "outputs": [{"name": str(typ), "type": typ, "links": [lid]}]})
            src = ("link", pid, 0)
        self.links.append([lid, src[1], src[2], dst, slot, typ])
        return lid


def flatten_subgraphs(workflow: Mapping, warnings: list | None = None) -> Mapping:
    """The workflow with every subgraph instance expanded (unchanged when it has none)."""
    defs = _subgraph_defs(workflow)
    if not defs or not any(str(n.get("type")) in defs for n in workflow.get("nodes") or []
                           if isinstance(n, Mapping)):
        return workflow
    flat = _Flattener(defs, warnings if warnings is not None else [])
    flat.expand(workflow, "", {}, 0, 0)
    out = {k: v for k, v in workflow.items() if k != "definitions"}
    out["nodes"], out["links"] = flat.nodes, flat.links
    return out


# -- links and frontend-only nodes -----------------------------------------------------------
class _Graph:
    """Indexes a UI workflow's nodes and links and resolves link sources through Reroutes/Primitives."""

    def __init__(self, workflow: Mapping) -> None:
        if not is_ui_workflow(workflow):
            raise FormatError("not a ComfyUI UI workflow (expected a nodes list and links)")
        self.nodes = {str(n["id"]): n for n in workflow["nodes"] if isinstance(n, Mapping) and "id" in n}
        self.links: dict[int, tuple[str, int, str, int, Any]] = {}
        for link in workflow.get("links") or []:
            if isinstance(link, Mapping):  # newer object form
                link = [link.get("id"), link.get("origin_id"), link.get("origin_slot"),
                        link.get("target_id"), link.get("target_slot"), link.get("type")]
            if isinstance(link, (list, tuple)) and len(link) >= 5 and link[0] is not None:
                typ = link[5] if len(link) > 5 else None
                self.links[int(link[0])] = (str(link[1]), int(link[2]), str(link[3]), int(link[4]), typ)

    def source(self, link_id: Any, depth: int = 0) -> tuple[str, Any] | None:
        """``("link", [src, slot])`` or ``("value", literal)`` for a link id, None when it leads nowhere."""
        if link_id is None or depth > 256:
            return None
        link = self.links.get(int(link_id))
        if link is None:
            return None
        src, slot = link[0], link[1]
        node = self.nodes.get(src)
        if node is None:
            return None
        kind = node.get("type")
        if kind == REROUTE:
            inputs = node.get("inputs") or [{}]
            return self.source(inputs[0].get("link"), depth + 1)
        if kind == PRIMITIVE:
            values = node.get("widgets_values")
            return ("value", values[0]) if isinstance(values, list) and values else None
        if kind in NOTE_TYPES:
            return None
        return "link", [src, slot]


def _input_name(entry: Mapping) -> str:
    widget = entry.get("widget")
    if isinstance(widget, Mapping) and widget.get("name"):
        return str(widget["name"])
    return str(entry.get("name"))


def _real_nodes(graph: _Graph, warnings: list) -> Iterator[tuple[str, Mapping]]:
    for nid, node in graph.nodes.items():
        if not isinstance(node.get("type"), str):
            warnings.append(f"node {nid}: no type; skipped")
        elif node["type"] not in FRONTEND_ONLY:
            yield nid, node


def _node_inputs(graph: _Graph, node: Mapping, registry: Registry, warnings: list) -> tuple[dict, dict, dict, list]:
    """Widget values, then links/primitive literals; returns (inputs, controls, input types, linked names)."""
    inputs, controls, _names = _native_widgets(node, str(node.get("type")), registry, warnings)
    types: dict[str, Any] = {}
    linked: list[str] = []
    for entry in node.get("inputs") or []:
        if not isinstance(entry, Mapping):
            continue
        name = _input_name(entry)
        types[name] = entry.get("type")
        src = graph.source(entry.get("link"))
        if src is None:
            continue
        inputs[name] = src[1]
        if src[0] == "link":
            linked.append(name)
    return inputs, controls, types, linked


def ui_to_prompt(workflow: Mapping, registry: Registry, warnings: list | None = None) -> dict[str, dict]:
    """The canonical API prompt of a ComfyUI UI workflow (positional widgets through the schemas)."""
    warnings = warnings if warnings is not None else []
    graph = _Graph(flatten_subgraphs(workflow, warnings) if is_ui_workflow(workflow) else workflow)
    nodes: dict[str, dict] = {}
    for nid, node in _real_nodes(graph, warnings):
        inputs, _controls, types, _linked = _node_inputs(graph, node, registry, warnings)
        outputs = {i: o.get("type") for i, o in enumerate(node.get("outputs") or []) if isinstance(o, Mapping)}
        nodes[nid] = {"class_type": node.get("type"), "inputs": inputs,
                      "mode": _MODES.get(node.get("mode"), NORMAL),
                      "_meta": {"title": node_title(registry, node.get("type"), node.get("title"))},
                      "input_types": types, "output_types": outputs}
    return finish_graph(nodes, registry)


# UI node keys the native node models itself; every other key is kept verbatim in its "ui" dict
_MODELLED = frozenset({"id", "type", "pos", "size", "flags", "order", "mode", "title", "color"})


def _kept(node: Mapping, kind: str) -> dict:
    """What the native node does not model (properties, bgcolor, socket labels, the positional
    widget values as saved...), kept so that the export gives ComfyUI back the same node."""
    kept = {k: copy.deepcopy(v) for k, v in node.items() if k not in _MODELLED}
    if "size" in node:  # the editor measures heights its own way; ComfyUI's is given back
        kept["size"] = copy.deepcopy(node["size"])
    if kind in FRONTEND_ONLY:
        kept.pop("widgets_values", None)  # rebuilt exactly from the node's widgets
    if node.get("mode") not in (None, 0, *_MODES):
        kept["mode"] = node["mode"]  # "on event" / "on trigger": run like normal nodes here
    return kept


def _native_widgets(node: Mapping, kind: str, registry: Registry, warnings: list) -> tuple[dict, dict, set]:
    """(widgets by name, controls, widget names) of one UI node."""
    if kind in FRONTEND_ONLY:
        widgets, controls = native_widgets(kind, node.get("widgets_values"))
        return widgets, controls, set()
    nd = registry.get(kind)
    if nd is not None:
        widgets, controls = widget_values(node, nd)
        return widgets, controls, {s.name for s in nd.inputs if s.widget}
    raw = node.get("widgets_values")
    hint = ("; legacy group nodes are not supported: convert the group node to nodes in ComfyUI"
            if kind.startswith(("workflow>", "workflow/")) else "; its widget values cannot be mapped")
    warnings.append(f"node {node.get('id')}: unknown node type {kind!r}{hint}")
    return (dict(raw) if isinstance(raw, Mapping) else {}), {}, set()


def _native_node(graph: _Graph, nid: str, node: Mapping, registry: Registry, warnings: list,
                 links: list, link_ids: set) -> dict:
    """One native node; its incoming links (through reroutes and primitives, as they are) go to ``links``."""
    kind = node["type"]
    widgets, controls, widget_names = _native_widgets(node, kind, registry, warnings)
    converted: list[str] = []
    for entry in node.get("inputs") or []:
        link = graph.links.get(int(entry["link"])) if isinstance(entry, Mapping) and isinstance(entry.get("link"), int) else None
        origin = graph.nodes.get(link[0]) if link else None
        if origin is None or origin.get("type") in NOTE_TYPES:
            continue
        name = REROUTE_INPUT if kind == REROUTE else _input_name(entry)
        lid = int(entry["link"])
        if lid in link_ids:  # a repeated id in a damaged file: give the link a fresh one
            lid = max(link_ids) + 1
        link_ids.add(lid)
        links.append({"id": lid, "from": [link[0], link[1]], "to": [nid, name],
                      "type": link[4] or entry.get("type") or "*"})
        if name in widget_names and name not in converted:
            converted.append(name)
            if name not in widgets and origin.get("type") == PRIMITIVE:
                widgets[name] = (graph.source(entry["link"]) or (None, None))[1]
    title = node.get("title") if kind in FRONTEND_ONLY else node_title(registry, kind, node.get("title"))
    out = {"id": nid, "type": kind, "title": title or TITLES.get(kind, kind),
           "pos": _pair(node.get("pos")), "size": _pair(node.get("size"), (300.0, 120.0)),
           "color": node.get("color"), "mode": _MODES.get(node.get("mode"), NORMAL),
           "widgets": widgets, "controls": controls, "converted": converted}
    if isinstance(node.get("flags"), Mapping) and node["flags"]:
        out["flags"] = copy.deepcopy(dict(node["flags"]))
    kept = _kept(node, kind)
    if kept:
        out["ui"] = kept
    return out


def ui_to_native(workflow: Mapping, registry: Registry, warnings: list | None = None) -> dict:
    """A native editor document keeping everything ComfyUI's frontend saved: positions, sizes,
    titles, colours, modes, collapsed flags, properties, groups, viewport, and the frontend-only
    Reroute / Note / MarkdownNote / PrimitiveNode nodes with the links through them
    (``comfy_ui_export.native_to_ui`` writes the same workflow back)."""
    warnings = warnings if warnings is not None else []
    graph = _Graph(flatten_subgraphs(workflow, warnings) if is_ui_workflow(workflow) else workflow)
    nodes: list[dict] = []
    links: list[dict] = []
    link_ids: set[int] = set()
    for nid, node in graph.nodes.items():
        if not isinstance(node.get("type"), str):
            warnings.append(f"node {nid}: no type; skipped")
            continue
        nodes.append(_native_node(graph, nid, node, registry, warnings, links, link_ids))
    groups = []
    for g in workflow.get("groups") or []:
        if isinstance(g, Mapping):
            group = {"title": g.get("title", ""), "bounds": [float(v) for v in (g.get("bounding") or [0, 0, 0, 0])],
                     "color": g.get("color")}
            kept = {k: copy.deepcopy(v) for k, v in g.items() if k not in ("title", "bounding", "color")}
            groups.append({**group, "ui": kept} if kept else group)
    extra = workflow.get("extra") if isinstance(workflow.get("extra"), Mapping) else {}
    ds = extra.get("ds") if isinstance(extra.get("ds"), Mapping) else {}
    view = {"scale": float(ds.get("scale", 1.0)), "offset": _pair(ds.get("offset"))}
    doc = new_document(nodes, links, groups, view)
    comfy = {k: copy.deepcopy(v) for k, v in workflow.items() if k not in ("nodes", "links", "groups", "definitions")}
    if isinstance(comfy.get("extra"), dict):
        comfy["extra"].pop("ds", None)
    doc["comfy"] = comfy
    return doc


def _pair(value: Any, default: tuple[float, float] = (0.0, 0.0)) -> list[float]:
    """[x, y] from a list or the {"0": x, "1": y} object some frontend versions saved."""
    if isinstance(value, Mapping):
        value = [value.get("0"), value.get("1")]
    if isinstance(value, (list, tuple)) and len(value) >= 2 and all(isinstance(v, (int, float)) for v in value[:2]):
        return [float(value[0]), float(value[1])]
    return list(default)
