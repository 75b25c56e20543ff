"""`--set ID_OR_TITLE.input=value` overrides on a canonical prompt (the CLI's `run`/`validate`, and
any later batch or sweep runner), and keeping a native editor document in step with them.

Torch-free: the prompt is the canonical API graph; the registry, when given, is what tells a typo
from a real input name.
"""
from __future__ import annotations

import json
from typing import Any

from engine.formats.comfy_api import FormatError
from engine.formats.reading import JsonSyntaxError, parse_json
from engine.nodedef import Registry


def sync_native_widgets(doc: dict | None, prompt: dict) -> dict | None:
    """After --set, a native document's widget values follow the prompt, so the PNG's `workflow`
    chunk opens in the editor as exactly the graph that ran."""
    if not isinstance(doc, dict) or doc.get("format") != "latentgraph":
        return doc
    doc = json.loads(json.dumps(doc))
    for node in doc.get("nodes", []):
        inputs = (prompt.get(str(node.get("id"))) or {}).get("inputs", {})
        widgets = node.get("widgets") or {}
        for name in list(widgets):
            value = inputs.get(name)
            if name in inputs and not (isinstance(value, list) and len(value) == 2):
                widgets[name] = value
    return doc


def _short(text: str, limit: int = 80) -> str:
    """An override as quoted in a message: long values are cut (a message stays one short line)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SetError(ValueError):
    """A bad `--set` (syntax, unknown node or input): reported as such, not as a loading error."""


def _node_names(prompt: dict) -> str:
    """`3 KSampler, 6 "Positive prompt" (CLIPTextEncode), ...` for error messages."""
    names = []
    for nid, n in prompt.items():
        if isinstance(n, dict):
            title = (n.get("_meta") or {}).get("title")
            ctype = n.get("class_type", "?")
            names.append(f'{nid} "{title}" ({ctype})' if title and title != ctype else f"{nid} {ctype}")
    return ", ".join(names)


def _find_node(prompt: dict, key: str) -> str:
    if key in prompt:
        return key
    for field in ("title", "class_type"):
        hits = [nid for nid, n in prompt.items() if isinstance(n, dict) and
                (n.get("_meta", {}).get("title") if field == "title" else n.get("class_type")) == key]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise SetError(f"'{key}' matches several nodes ({', '.join(hits)}); use a node id")
    raise SetError(f"no node with id, title or type '{key}' (nodes: {_node_names(prompt)})")


def apply_sets(prompt: dict, sets: list[str], registry: Registry | None = None) -> dict:
    """Applies `--set ID_OR_TITLE.input=value` overrides (value as JSON if it parses). With a
    registry, an input the node's type does not declare is an error (a typo would be ignored)."""
    for item in sets:
        left, eq, raw = item.partition("=")
        target, dot, name = left.rpartition(".")
        if not eq or not dot or not target or not name:
            raise SetError(f"--set {_short(item)!r}: expected ID_OR_TITLE.input=value")
        try:
            nid = _find_node(prompt, target)
        except SetError as exc:
            raise SetError(f"--set {_short(item)!r}: {exc}") from None
        ctype = prompt[nid].get("class_type")
        nd = registry.get(ctype) if registry is not None else None
        if nd is not None and nd.input(name) is None:
            known = ", ".join(spec.name for spec in nd.inputs) or "none"
            raise SetError(f"--set {_short(item)!r}: node {nid} ({ctype}) has no input '{name}' (inputs: {known})")
        try:
            value = parse_json(raw)
        except JsonSyntaxError:
            value = raw  # not JSON: the text itself (prompts, file names)
        except FormatError as exc:  # JSON we refuse: too deep, a huge integer, NaN
            raise SetError(f"--set {_short(item)!r}: {exc}") from None
        prompt[nid].setdefault("inputs", {})[name] = value
    return prompt
