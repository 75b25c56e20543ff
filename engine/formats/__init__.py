"""Workflow formats: one entry point, ``load_any``, for every file a user may bring.

Kinds: ``native`` (Latentgraph editor document), ``api`` (ComfyUI API prompt, the canonical
executable graph), ``ui`` (ComfyUI frontend workflow), ``png`` (an image carrying ``prompt`` /
``workflow`` chunks) and ``a1111`` (an image or text with A1111 ``parameters``).
For running, a PNG's ``prompt`` chunk is the executable truth; its ``workflow`` chunk is returned
beside it for the editor.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from engine.formats import a1111, comfy_ui, native
from engine.formats.comfy_api import FormatError, normalize_prompt, unwrap_api
from engine.formats.png import PNG_SIGNATURE, read_png_text, write_png
from engine.nodedef import Registry

__all__ = ["Loaded", "load_any", "parse_document", "FormatError", "read_png_text", "write_png"]


@dataclass
class Loaded:
    """What was loaded: the canonical prompt, the editor workflow (native or UI document, or
    None) and which kind of input it was; ``warnings`` lists anything converted approximately."""

    prompt: dict[str, dict]
    workflow: dict | None
    kind: str
    warnings: list[str] = field(default_factory=list)


def parse_document(obj: Mapping, registry: Registry) -> Loaded:
    """Detect and convert an already-parsed JSON object (native, UI or API)."""
    if native.is_native(obj):
        doc = native.migrate(obj, registry)
        return Loaded(native.to_prompt(doc, registry), doc, "native")
    if comfy_ui.is_ui_workflow(obj):
        warnings: list[str] = []
        prompt = comfy_ui.ui_to_prompt(obj, registry, warnings)
        return Loaded(prompt, dict(obj), "ui", warnings)
    prompt, workflow = unwrap_api(obj)
    if prompt is not None:
        return Loaded(normalize_prompt(prompt), workflow, "api")
    raise FormatError("unrecognised workflow: expected a Latentgraph document, a ComfyUI UI workflow "
                      "(nodes + links) or a ComfyUI API prompt ({id: {class_type, inputs}})")


def _load_png(data: bytes, registry: Registry) -> Loaded:
    text = read_png_text(data)
    workflow = _json_or_none(text.get("workflow"))
    if "prompt" in text:
        prompt = _json_or_none(text["prompt"])
        if prompt is None:
            raise FormatError("the PNG's prompt chunk is not valid JSON")
        warnings: list[str] = []
        if native.is_native(workflow):
            try:
                workflow = native.migrate(workflow, registry)
            except FormatError as exc:  # the prompt chunk still runs; the editor copy is kept as is
                warnings.append(f"workflow chunk: {exc}")
        return Loaded(normalize_prompt(prompt), workflow, "png", warnings)
    if isinstance(workflow, Mapping):
        inner = parse_document(workflow, registry)
        return Loaded(inner.prompt, inner.workflow, "png", inner.warnings)
    if "parameters" in text:
        params = a1111.parse_parameters(text["parameters"])
        return Loaded(a1111.to_prompt(params), None, "a1111", params.warnings)
    raise FormatError("the PNG carries no prompt, workflow or parameters text chunk")


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _load_text(text: str, registry: Registry) -> Loaded:
    try:
        obj = json.loads(text)
    except ValueError:
        if "Steps:" in text:  # a pasted A1111 parameters block
            params = a1111.parse_parameters(text)
            return Loaded(a1111.to_prompt(params), None, "a1111", params.warnings)
        raise FormatError("not JSON, not a PNG and not A1111 parameters") from None
    if not isinstance(obj, Mapping):
        raise FormatError("a workflow must be a JSON object")
    return parse_document(obj, registry)


def load_any(source: str | Path | bytes | Mapping, registry: Registry) -> Loaded:
    """Load a workflow from a path (.json/.png/.txt), bytes, a JSON string or a parsed dict.

    Raises FormatError (a ValueError) when the input is none of the known kinds.
    """
    if isinstance(source, Mapping):
        return parse_document(source, registry)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if data.startswith(PNG_SIGNATURE):
            return _load_png(data, registry)
        return _load_text(data.decode("utf-8-sig"), registry)
    if isinstance(source, str) and source.lstrip().startswith(("{", "[")):
        return _load_text(source, registry)
    path = Path(source)
    if not path.is_file():
        if isinstance(source, str) and "Steps:" in source:
            return _load_text(source, registry)
        raise FormatError(f"no such file: {path}")
    data = path.read_bytes()
    if data.startswith(PNG_SIGNATURE):
        return _load_png(data, registry)
    return _load_text(data.decode("utf-8-sig"), registry)
