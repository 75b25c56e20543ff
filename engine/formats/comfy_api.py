"""The canonical executable graph (ComfyUI's API prompt): recognising, normalising, finishing.

Every other format converts into this shape. ``finish_graph`` is the step the editor formats
share: muted nodes vanish (and the inputs they fed are removed, as ComfyUI's frontend does, so
validation then reports the missing input), bypassed nodes are replaced by the input they pass
through, and links to nodes that do not exist are dropped.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from engine.errors import LatentgraphError
from engine.nodedef import NodeDef, Registry

NORMAL, MUTED, BYPASS = "normal", "muted", "bypass"

__all__ = ["FormatError", "NORMAL", "MUTED", "BYPASS", "is_api_prompt", "unwrap_api", "normalize_prompt",
           "is_link", "finish_graph", "node_title"]


class FormatError(LatentgraphError, ValueError):
    """The data is not a workflow this application can read (says which shape was expected).

    The reason is always one line (the CLI prints it as such): control characters that a quoted
    piece of the file brings in are shown escaped."""

    def __init__(self, message: object = "", *args: object) -> None:
        text = str(message)
        if any(ch < " " for ch in text):
            text = "".join(ch if ch >= " " else repr(ch)[1:-1] for ch in text)
        super().__init__(text, *args)



def is_link(value: Any) -> bool:
    """A link is a two-element list ``[src_id, output_index]`` (ids may be int in sloppy files)."""
    return (isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], (str, int))
            and not isinstance(value[0], bool) and isinstance(value[1], int)
            and not isinstance(value[1], bool))


def is_api_prompt(obj: Any) -> bool:
    """True for ``{id: {"class_type": str, "inputs": {...}}}`` with at least one node."""
    if not isinstance(obj, Mapping) or not obj:
        return False
    return all(isinstance(v, Mapping) and isinstance(v.get("class_type"), str) for v in obj.values())


def unwrap_api(obj: Any) -> tuple[dict | None, dict | None]:
    """``(prompt, workflow)`` from a bare prompt or a POST /prompt body ``{"prompt": ..., "extra_data"}``."""
    if is_api_prompt(obj):
        return dict(obj), None
    if isinstance(obj, Mapping) and is_api_prompt(obj.get("prompt")):
        extra = obj.get("extra_data")
        pnginfo = extra.get("extra_pnginfo") if isinstance(extra, Mapping) else None
        workflow = pnginfo.get("workflow") if isinstance(pnginfo, Mapping) else None
        return dict(obj["prompt"]), workflow
    return None, None


def normalize_prompt(prompt: Mapping[str, Any]) -> dict[str, dict]:
    """String node ids, links as ``[str, int]``, ``inputs`` always a dict; unknown inputs kept.

    Raises FormatError when a node is not an object with a ``class_type``.
    """
    if isinstance(prompt, str):
        prompt = json.loads(prompt)
    if not isinstance(prompt, Mapping):
        raise FormatError("an API prompt must be a JSON object {node_id: {class_type, inputs}}")
    out: dict[str, dict] = {}
    for nid, node in prompt.items():
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            raise FormatError(f"node {nid!r}: expected an object with a string class_type")
        inputs = node.get("inputs") or {}
        if not isinstance(inputs, Mapping):
            raise FormatError(f"node {nid!r}: inputs must be an object")
        entry: dict[str, Any] = {
            "class_type": node["class_type"],
            "inputs": {str(k): ([str(v[0]), int(v[1])] if is_link(v) else v) for k, v in inputs.items()},
        }
        meta = node.get("_meta")
        if isinstance(meta, Mapping):
            entry["_meta"] = dict(meta)
        out[str(nid)] = entry
    return out


def node_title(registry: Registry, class_type: str, title: Any = None) -> str:
    """The node's title, else its display name, else its class_type (ComfyUI's ``_meta.title``)."""
    if isinstance(title, str) and title:
        return title
    nd = registry.get(class_type)
    return (nd.display_name if nd is not None else None) or class_type


def _input_order(nd: NodeDef | None, node: dict) -> list[tuple[str, str | None]]:
    """(name, type) of a node's inputs: sockets first (their index = UI slot), then widgets."""
    if nd is None:
        types = node.get("input_types") or {}
        return [(k, types.get(k)) for k in node["inputs"]]
    sockets = [(s.name, s.type) for s in nd.inputs if not s.widget]
    widgets = [(s.name, s.type) for s in nd.inputs if s.widget]
    return sockets + widgets


def _output_type(registry: Registry, node: dict, slot: int) -> str | None:
    nd = registry.get(node["class_type"])
    if nd is not None and 0 <= slot < len(nd.outputs):
        return nd.outputs[slot].type
    return (node.get("output_types") or {}).get(slot)


class _Resolver:
    """Follows links through bypassed nodes; returns None when the chain ends at nothing."""

    def __init__(self, nodes: dict[str, dict], registry: Registry) -> None:
        self.nodes, self.registry = nodes, registry

    def resolve(self, link: list, want: str | None, seen: frozenset = frozenset()) -> list | None:
        src, slot = str(link[0]), int(link[1])
        node = self.nodes.get(src)
        if node is None or node.get("mode") == MUTED:
            return None
        if node.get("mode") != BYPASS:
            return [src, slot]
        if src in seen:
            return None
        kind = _output_type(self.registry, node, slot) or want
        nd = self.registry.get(node["class_type"])
        order = _input_order(nd, node)
        sockets = [o for o in order if nd is None or not _is_widget(nd, o[0])]
        first = [sockets[slot]] if slot < len(sockets) else []
        for name, typ in first + order:  # ComfyUI tries the same slot index first, then in order
            if kind is None or typ is None or typ == kind or "*" in (typ, kind):
                value = node["inputs"].get(name)
                return self.resolve(value, kind, seen | {src}) if is_link(value) else None
        return None


def _is_widget(nd: NodeDef, name: str) -> bool:
    spec = nd.input(name)
    return bool(spec is not None and spec.widget)


def finish_graph(nodes: Mapping[str, dict], registry: Registry) -> dict[str, dict]:
    """Turn editor nodes ``{id: {class_type, inputs, _meta?, mode?}}`` into the canonical prompt.

    ``mode`` is normal | muted | bypass; optional ``input_types`` {name: TYPE} and ``output_types``
    {slot: TYPE} help with classes the registry does not know.
    """
    nodes = {str(k): v for k, v in nodes.items()}
    resolver = _Resolver(nodes, registry)
    out: dict[str, dict] = {}
    for nid, node in nodes.items():
        if node.get("mode") in (MUTED, BYPASS):
            continue
        nd = registry.get(node["class_type"])
        inputs: dict[str, Any] = {}
        for name, value in node["inputs"].items():
            if is_link(value):
                spec = nd.input(name) if nd is not None else None
                want = spec.type if spec is not None else (node.get("input_types") or {}).get(name)
                value = resolver.resolve(value, want)
                if value is None:
                    continue
            inputs[name] = value
        entry = {"class_type": node["class_type"], "inputs": inputs}
        if "_meta" in node:
            entry["_meta"] = dict(node["_meta"])
        out[nid] = entry
    return _drop_dangling(out)


def _drop_dangling(prompt: dict[str, dict]) -> dict[str, dict]:
    """Remove inputs linked to nodes that are not in the prompt (ComfyUI's frontend does the same)."""
    for node in prompt.values():
        for name in [k for k, v in node["inputs"].items() if is_link(v) and v[0] not in prompt]:
            del node["inputs"][name]
    return prompt


def ids_sorted(ids: Iterable[str]) -> list[str]:
    """Node ids in numeric order when they are numbers (stable, human-friendly output)."""
    return sorted(ids, key=lambda s: (0, int(s), "") if str(s).isdigit() else (1, 0, str(s)))
