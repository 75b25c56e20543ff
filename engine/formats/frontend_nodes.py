"""ComfyUI's frontend-only nodes (Reroute, Note, MarkdownNote, PrimitiveNode) in the native document.

They are real nodes in the editor and in the native document, so a ComfyUI workflow keeps them
through import → edit → export. The executable prompt never contains them, exactly as ComfyUI's
frontend does when it queues: ``resolve_frontend_nodes`` drops notes, follows reroute chains to
their source and folds a primitive's value into every input it feeds.

Native shape (widget values keyed by name, like every node)::

    {"type": "Reroute", "widgets": {}}                  input "input" (any type), output 0
    {"type": "Note" | "MarkdownNote", "widgets": {"text": "..."}}
    {"type": "PrimitiveNode", "widgets": {"value": 42[, "control_filter_list": ""]},
     "controls": {"value": "increment"}}                output 0 feeds converted widget inputs

In ComfyUI's UI format a primitive's ``widgets_values`` is ``[value, control?, filter?]`` (a
control after numbers and combos, a filter text after combos); a note's is ``[text]``; a reroute
has none.
"""
from __future__ import annotations

from typing import Any, Mapping

from engine.formats.comfy_api import is_link

NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
REROUTE, PRIMITIVE = "Reroute", "PrimitiveNode"
FRONTEND_ONLY = NOTE_TYPES | {REROUTE, PRIMITIVE}
REROUTE_INPUT = "input"
PRIMITIVE_VALUE, PRIMITIVE_FILTER = "value", "control_filter_list"
TITLES = {REROUTE: "Reroute", "Note": "Note", "MarkdownNote": "Markdown Note", PRIMITIVE: "Primitive"}
# What ComfyUI's frontend writes when it creates each node (used for nodes made in our editor).
DEFAULT_PROPERTIES = {REROUTE: {"showOutputText": False, "horizontal": False}, "Note": {"text": ""},
                      "MarkdownNote": {}, PRIMITIVE: {"Run widget replace on values": False}}
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})

__all__ = ["CONTROL_VALUES", "NOTE_TYPES", "REROUTE", "PRIMITIVE", "FRONTEND_ONLY", "REROUTE_INPUT", "PRIMITIVE_VALUE",
           "TITLES", "native_widgets", "ui_widgets_values", "ui_sockets", "resolve_frontend_nodes"]


def native_widgets(kind: str, values: Any) -> tuple[dict, dict]:
    """``(widgets, controls)`` of a frontend-only node from its UI ``widgets_values``."""
    values = list(values) if isinstance(values, (list, tuple)) else []
    if kind in NOTE_TYPES:
        return {"text": values[0] if values else ""}, {}
    if kind != PRIMITIVE or not values:
        return {}, {}
    widgets: dict[str, Any] = {PRIMITIVE_VALUE: values[0]}
    controls: dict[str, Any] = {}
    rest = values[1:]
    if rest and (isinstance(rest[0], bool) or rest[0] in CONTROL_VALUES):
        first = rest.pop(0)
        controls[PRIMITIVE_VALUE] = ("randomize" if first else "fixed") if isinstance(first, bool) else first
    if rest:
        widgets[PRIMITIVE_FILTER] = rest[0]
    return widgets, controls


def ui_widgets_values(node: Mapping) -> list:
    """The UI ``widgets_values`` of a native frontend-only node (the inverse of native_widgets)."""
    kind, widgets = node.get("type"), node.get("widgets") or {}
    if kind in NOTE_TYPES:
        return [widgets.get("text", "")]
    if kind != PRIMITIVE or PRIMITIVE_VALUE not in widgets:
        return []
    values = [widgets[PRIMITIVE_VALUE]]
    control = (node.get("controls") or {}).get(PRIMITIVE_VALUE)
    if control is not None:
        values.append(control)
    if PRIMITIVE_FILTER in widgets:
        values.append(widgets[PRIMITIVE_FILTER])
    return values


def ui_sockets(node: Mapping, links_in: Mapping[str, tuple[int, str]],
               links_out: Mapping[int, list[int]], out_type: str) -> tuple[list, list]:
    """UI ``inputs`` / ``outputs`` of a frontend-only node; kept entries (``ui``) give names/labels.

    ``out_type`` is the type of what the output carries (a reroute's source, a primitive's target).
    """
    kind, kept = node.get("type"), node.get("ui") or {}
    kept_in = [dict(e) for e in kept.get("inputs") or [] if isinstance(e, Mapping)]
    kept_out = [dict(e) for e in kept.get("outputs") or [] if isinstance(e, Mapping)]
    inputs: list = []
    if kind == REROUTE:
        entry = kept_in[0] if kept_in else {"name": "", "type": "*"}
        entry["link"] = links_in.get(REROUTE_INPUT, (None, ""))[0]
        inputs.append(entry)
    if kind in NOTE_TYPES:
        return inputs, []
    out = kept_out[0] if kept_out else {"name": "connect to widget input" if kind == PRIMITIVE else "", "type": "*"}
    links = list(links_out.get(0) or [])
    if links and out_type != "*":
        out["type"] = out_type
    out["links"] = links or ([] if out.get("links") else out.get("links", []))
    if links and "slot_index" not in out:
        out["slot_index"] = 0
    return inputs, [out]


def resolve_frontend_nodes(nodes: dict[str, dict]) -> dict[str, dict]:
    """Remove frontend-only nodes from ``{id: {class_type, inputs}}`` (the step before finish_graph).

    A link from a reroute becomes a link from whatever feeds the reroute (chains followed, an
    unfed reroute drops the input); a link from a primitive becomes its value; notes vanish.
    """
    kinds = {nid: n.get("class_type") for nid, n in nodes.items()}

    def source(value: Any, depth: int = 0) -> tuple[bool, Any]:
        if not is_link(value) or depth > 256:
            return (depth <= 256), value
        src = nodes.get(str(value[0]))
        kind = kinds.get(str(value[0]))
        if kind == REROUTE and src is not None:
            upstream = src["inputs"].get(REROUTE_INPUT)
            return source(upstream, depth + 1) if upstream is not None else (False, None)
        if kind == PRIMITIVE and src is not None:
            widgets = src["inputs"]
            return (PRIMITIVE_VALUE in widgets), widgets.get(PRIMITIVE_VALUE)
        if kind in NOTE_TYPES:
            return False, None
        return True, value

    out: dict[str, dict] = {}
    for nid, node in nodes.items():
        if kinds[nid] in FRONTEND_ONLY:
            continue
        inputs = {}
        for name, value in node["inputs"].items():
            ok, resolved = source(value)
            if ok:
                inputs[name] = resolved
        out[nid] = dict(node, inputs=inputs)
    return out
