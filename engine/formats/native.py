"""The native editor document (ARCHITECTURE.md §3) ↔ the canonical API prompt, with migrations.

The document keeps what the editor needs (positions, sizes, titles, colours, groups, viewport)
and widget values keyed by input name. Every saved document carries ``version``; ``migrate``
walks the ``MIGRATIONS`` table one step at a time so old files keep opening.

Version 0 (the editor's first shape, before widget values were keyed by name)::

    {"format": "latentgraph", "version": 0,
     "nodes": [{"id": 3, "type": "KSampler", "title": "KSampler", "pos": [x, y], "size": [w, h],
                "mode": 0 | 2 | 4,                       # 0 normal, 2 muted, 4 bypass
                "widgets_values": [42, 20, 7.0, ...]}],  # widget inputs in declaration order,
                                                         # no control_after_generate values
     "links": [[link_id, from_id, from_slot, to_id, to_input_name, TYPE]],
     "groups": [{"title": str, "bounding": [x, y, w, h], "color": str}]}
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Mapping

from engine.formats.comfy_api import (BYPASS, MUTED, NORMAL, FormatError, finish_graph,
                                      ids_sorted, is_link, node_title, normalize_prompt)
from engine.formats.frontend_nodes import resolve_frontend_nodes
from engine.formats.layout import auto_layout
from engine.nodedef import Registry

FORMAT = "latentgraph"
CURRENT_VERSION = 1
MODES = (NORMAL, MUTED, BYPASS)

__all__ = ["FORMAT", "CURRENT_VERSION", "MIGRATIONS", "is_native", "migrate", "to_prompt", "from_prompt",
           "new_document"]


def is_native(obj: Any) -> bool:
    """True for a native editor document (``"format": "latentgraph"``)."""
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


def new_document(nodes: list | None = None, links: list | None = None, groups: list | None = None,
                 view: dict | None = None) -> dict:
    """A version-1 document with the given parts (empty by default)."""
    return {"format": FORMAT, "version": CURRENT_VERSION, "nodes": nodes or [], "links": links or [],
            "groups": groups or [], "view": view or {"scale": 1.0, "offset": [0, 0]}}


# -- migrations ------------------------------------------------------------------------------
_V0_MODES = {0: NORMAL, 1: NORMAL, 2: MUTED, 3: NORMAL, 4: BYPASS}


def _v0_to_v1(doc: dict, registry: Registry) -> dict:
    """Positional widgets_values → widgets by name (through the schema); int modes → names."""
    links = []
    linked: dict[str, set[str]] = {}
    for lid, src, slot, dst, name, typ in doc.get("links", []):
        links.append({"id": lid, "from": [str(src), int(slot)], "to": [str(dst), str(name)], "type": typ})
        linked.setdefault(str(dst), set()).add(str(name))
    nodes = []
    for n in doc.get("nodes", []):
        nid, values = str(n["id"]), list(n.get("widgets_values") or [])
        nd = registry.get(n["type"])
        if nd is None and values:
            raise FormatError(f"version-0 node {nid} ({n['type']}): unknown class, cannot name its widget values")
        specs = [s for s in nd.inputs if s.widget] if nd is not None else []
        widgets = {s.name: v for s, v in zip(specs, values)}
        nodes.append({
            "id": nid, "type": n["type"], "title": n.get("title") or node_title(registry, n["type"]),
            "pos": list(n.get("pos") or [0, 0]), "size": list(n.get("size") or [300, 120]),
            "color": n.get("color"), "mode": _V0_MODES.get(int(n.get("mode", 0)), NORMAL),
            "widgets": widgets, "controls": {},
            "converted": [s.name for s in specs if s.name in linked.get(nid, set())]})
    groups = [{"title": g.get("title", ""), "bounds": list(g.get("bounding") or [0, 0, 0, 0]),
               "color": g.get("color")} for g in doc.get("groups", [])]
    return new_document(nodes, links, groups)


MIGRATIONS: dict[int, Callable[[dict, Registry], dict]] = {0: _v0_to_v1}


def migrate(doc: Mapping, registry: Registry) -> dict:
    """A copy of ``doc`` brought to ``CURRENT_VERSION`` one migration step at a time.

    Raises FormatError for documents newer than this code or with no migration path.
    """
    if not is_native(doc):
        raise FormatError('not a Latentgraph document (missing "format": "latentgraph")')
    out = copy.deepcopy(dict(doc))
    version = out.get("version", 0)
    if not isinstance(version, int) or version > CURRENT_VERSION:
        raise FormatError(f"document version {version!r} is newer than this Latentgraph "
                          f"(supports up to {CURRENT_VERSION})")
    while version < CURRENT_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise FormatError(f"no migration from document version {version}")
        out = step(out, registry)
        version = out["version"]
    return out


# -- document → prompt -----------------------------------------------------------------------
def to_prompt(doc: Mapping, registry: Registry) -> dict[str, dict]:
    """The canonical API prompt of a native document (muted dropped, bypassed resolved, and the
    frontend-only Reroute/Primitive/Note nodes resolved as ComfyUI's frontend does)."""
    doc = migrate(doc, registry)
    if not isinstance(doc.get("nodes"), list):
        raise FormatError("a Latentgraph document needs a nodes list")
    nodes: dict[str, dict] = {}
    for n in doc["nodes"]:
        if not isinstance(n, Mapping) or "id" not in n or not isinstance(n.get("type"), str):
            raise FormatError(f"every node needs an id and a type, got {str(n)[:80]}")
        mode = n.get("mode") or NORMAL
        if mode not in MODES:
            raise FormatError(f"node {n.get('id')}: unknown mode {mode!r}")
        nodes[str(n["id"])] = {
            "class_type": n["type"], "inputs": dict(n.get("widgets") or {}), "mode": mode,
            "_meta": {"title": node_title(registry, n["type"], n.get("title"))},
            "input_types": {}, "output_types": {}}
    for link in doc.get("links", []):
        (src, slot), (dst, name) = link["from"], link["to"]
        if str(dst) not in nodes:
            continue
        target = nodes[str(dst)]
        target["inputs"][str(name)] = [str(src), int(slot)]
        if link.get("type"):
            target["input_types"][str(name)] = link["type"]
            if str(src) in nodes:
                nodes[str(src)]["output_types"][int(slot)] = link["type"]
    return finish_graph(resolve_frontend_nodes(nodes), registry)


# -- prompt → document -----------------------------------------------------------------------
def _link_type(registry: Registry, prompt: Mapping[str, dict], src: str, slot: int) -> str:
    node = prompt.get(src)
    nd = registry.get(node["class_type"]) if node is not None else None
    if nd is not None and 0 <= slot < len(nd.outputs):
        return nd.outputs[slot].type
    return "*"


def _doc_node(nid: str, node: dict, registry: Registry, place: dict | None) -> dict:
    nd = registry.get(node["class_type"])
    widgets = {k: copy.deepcopy(v) for k, v in node["inputs"].items() if not is_link(v)}
    converted, controls = [], {}
    for spec in (nd.inputs if nd is not None else []):
        if spec.widget and is_link(node["inputs"].get(spec.name)):
            converted.append(spec.name)
        if spec.widget and spec.opts.get("control_after_generate"):
            controls[spec.name] = "fixed"  # an API prompt holds the value that was actually used
    title = (node.get("_meta") or {}).get("title")
    return {"id": nid, "type": node["class_type"], "title": node_title(registry, node["class_type"], title),
            "pos": (place or {}).get("pos", [0.0, 0.0]), "size": (place or {}).get("size", [300.0, 120.0]),
            "color": None, "mode": NORMAL, "widgets": widgets, "controls": controls, "converted": converted}


def _visible_rows(prompt: Mapping[str, dict], registry: Registry) -> dict[str, int]:
    """Rows a node takes in the editor: socket rows (inputs beside outputs), one per widget, more
    for multiline prompts, and room for the image area of previews, loaders and samplers."""
    rows: dict[str, int] = {}
    for nid, node in prompt.items():
        nd = registry.get(node.get("class_type"))
        if nd is None:
            rows[nid] = len(node.get("inputs", {}))
            continue
        sockets = sum(1 for spec in nd.inputs if not spec.widget)
        widgets = [spec for spec in nd.inputs if spec.widget]
        n = max(sockets, len(nd.outputs)) + len(widgets)
        n += sum(3 for spec in widgets if spec.opts.get("multiline"))
        if nd.output_node or any(spec.opts.get("image_upload") for spec in widgets) \
                or nd.class_type.startswith("KSampler"):
            n += 8
        rows[nid] = n
    return rows


def from_prompt(prompt: Mapping, registry: Registry, layout: bool = True) -> dict:
    """A native document for an API prompt; ``layout`` places the nodes automatically."""
    prompt = normalize_prompt(prompt)
    places = auto_layout(prompt, _visible_rows(prompt, registry)) if layout else {}
    nodes = [_doc_node(nid, prompt[nid], registry, places.get(nid)) for nid in ids_sorted(prompt)]
    links = []
    for nid in ids_sorted(prompt):
        for name, value in prompt[nid]["inputs"].items():
            if is_link(value):
                links.append({"id": len(links) + 1, "from": [value[0], value[1]], "to": [nid, name],
                              "type": _link_type(registry, prompt, value[0], value[1])})
    return new_document(nodes, links)
