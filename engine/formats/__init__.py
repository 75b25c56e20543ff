"""Workflow formats: one table, ``FORMATS``, and one dispatcher for every file a user may bring.

Document kinds (JSON objects), in detection order: ``native`` (Latentgraph editor document),
``ui`` (ComfyUI frontend workflow) and ``api`` (ComfyUI API prompt, the canonical executable
graph, bare or as a POST /prompt body). Containers around them: ``png`` (an image carrying
``prompt`` / ``workflow`` chunks) and ``a1111`` (an image or text with A1111 ``parameters``).
For running, a PNG's ``prompt`` chunk is the executable truth; its ``workflow`` chunk is returned
beside it for the editor.

``load_any`` (for running: the CLI, tests) and ``to_native`` (for editing: the editor's import)
both go through ``read_source`` and ``detect``; any file that cannot be read, however hostile
(deep nesting, huge numbers, bad UTF-8, broken PNG chunks, a document of the wrong shape), ends
in a ``FormatError`` with a one-line reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from engine.formats import a1111, comfy_ui, native
from engine.formats.comfy_api import FormatError, normalize_prompt, unwrap_api
from engine.formats.png import PNG_SIGNATURE, read_png_text, write_png
from engine.formats.reading import JsonSyntaxError, check_object_depth, decode_text, parse_json
from engine.nodedef import Registry

__all__ = ["Loaded", "Format", "FORMATS", "detect", "read_source", "load_any", "parse_document", "to_native",
           "FormatError", "read_png_text", "write_png"]


@dataclass
class Loaded:
    """What was loaded: the canonical prompt, the editor workflow (native or UI document, or
    None) and which kind of input it was; ``warnings`` lists anything converted approximately."""

    prompt: dict[str, dict]
    workflow: dict | None
    kind: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Format:
    """One workflow document format: how to recognise it and how to convert it both ways.

    ``to_prompt(obj, registry, warnings) -> (canonical prompt, workflow kept for the editor)``;
    ``to_native(obj, registry) -> native editor document``.
    """

    kind: str
    label: str  # for messages: "ComfyUI UI workflow"
    detect: Callable[[Any], bool]
    to_prompt: Callable[[Mapping, Registry, list[str]], tuple[dict, dict | None]]
    to_native: Callable[[Mapping, Registry], dict]


def _native_to_prompt(obj: Mapping, registry: Registry, _warnings: list[str]) -> tuple[dict, dict | None]:
    doc = native.migrate(obj, registry)
    return native.to_prompt(doc, registry), doc


def _ui_to_prompt(obj: Mapping, registry: Registry, warnings: list[str]) -> tuple[dict, dict | None]:
    return comfy_ui.ui_to_prompt(obj, registry, warnings), dict(obj)


def _api_to_prompt(obj: Mapping, _registry: Registry, _warnings: list[str]) -> tuple[dict, dict | None]:
    prompt, workflow = unwrap_api(obj)
    return normalize_prompt(prompt or {}), workflow


def _api_to_native(obj: Mapping, registry: Registry) -> dict:
    prompt, workflow = unwrap_api(obj)
    return _editor_document(normalize_prompt(prompt or {}), workflow, registry)


FORMATS: list[Format] = [
    Format("native", "Latentgraph document", native.is_native, _native_to_prompt, native.migrate),
    Format("ui", "ComfyUI UI workflow", comfy_ui.is_ui_workflow, _ui_to_prompt, comfy_ui.ui_to_native),
    Format("api", "ComfyUI API prompt", lambda obj: unwrap_api(obj)[0] is not None, _api_to_prompt,
           _api_to_native),
]


def detect(obj: Any) -> Format:
    """The format of a parsed JSON value; FormatError when it is none of them."""
    if not isinstance(obj, Mapping):
        raise FormatError(f"a workflow must be a JSON object, not {_json_type(obj)}")
    for fmt in FORMATS:
        if fmt.detect(obj):
            return fmt
    raise FormatError("unrecognised workflow: expected a Latentgraph document, a ComfyUI UI workflow "
                      "(nodes + links) or a ComfyUI API prompt ({id: {class_type, inputs}})")


def _json_type(obj: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(obj), "a number" if isinstance(obj, (int, float)) else type(obj).__name__)


def _convert(label: str, step: Callable[..., Any], *args: Any) -> Any:
    """Runs one conversion; the converters assume the documented shape, so a document that breaks
    it (a list where an object belongs, a link with three ends...) is the file's fault and becomes a
    FormatError naming the format, never a traceback."""
    try:
        return step(*args)
    except FormatError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        raise FormatError(f"malformed {label}: {type(exc).__name__}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def parse_document(obj: Mapping, registry: Registry) -> Loaded:
    """Detect and convert an already-parsed JSON object (native, UI or API)."""
    check_object_depth(obj)
    fmt = detect(obj)
    warnings: list[str] = []
    prompt, workflow = _convert(fmt.label, fmt.to_prompt, obj, registry, warnings)
    return Loaded(prompt, workflow, fmt.kind, warnings)


def _editor_document(prompt: dict, workflow: Any, registry: Registry) -> dict:
    """The editor's copy of what was loaded: the kept workflow when it is an editor document (it
    has the layout), else the prompt laid out automatically."""
    fmt = next((f for f in FORMATS if f.kind != "api" and f.detect(workflow)), None)
    if fmt is not None:
        return _convert(fmt.label, fmt.to_native, workflow, registry)
    if not prompt:
        raise FormatError("no workflow found in this file")
    return native.from_prompt(prompt, registry)


def _load_png(data: bytes, registry: Registry) -> Loaded:
    text = read_png_text(data)
    workflow = _json_or_none(text.get("workflow"))
    if "prompt" in text:
        prompt = parse_json(text["prompt"])
        if not isinstance(prompt, Mapping):
            raise FormatError("the PNG's prompt chunk is not a JSON object")
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
    """A chunk that is only kept beside the prompt: unreadable means absent, not an error."""
    if text is None:
        return None
    try:
        return parse_json(text)
    except FormatError:
        return None


def _load_text(text: str, registry: Registry) -> Loaded:
    if text.lstrip().startswith(("{", "[")):
        return parse_document(parse_json(text), registry)
    if "Steps:" in text:  # a pasted A1111 parameters block
        params = a1111.parse_parameters(text)
        return Loaded(a1111.to_prompt(params), None, "a1111", params.warnings)
    try:
        obj = parse_json(text)
    except JsonSyntaxError:
        raise FormatError("not JSON, not a PNG and not A1111 parameters") from None
    return parse_document(obj, registry)  # JSON of the wrong type: detect says which


def read_source(source: str | Path | bytes | Mapping) -> str | bytes | Mapping:
    """What a source holds: a Mapping as is, PNG bytes, or the text of JSON / A1111 parameters."""
    if isinstance(source, Mapping):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return data if data.startswith(PNG_SIGNATURE) else decode_text(data)
    if isinstance(source, str) and (source.lstrip().startswith(("{", "[")) or "Steps:" in source):
        return source
    path = Path(source)
    try:
        data = path.read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise FormatError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return data if data.startswith(PNG_SIGNATURE) else decode_text(data)


def load_any(source: str | Path | bytes | Mapping, registry: Registry) -> Loaded:
    """Load a workflow from a path (.json/.png/.txt), bytes, a JSON string or a parsed dict.

    Raises FormatError (a ValueError) with a one-line reason when the input cannot be read.
    """
    return _load_content(read_source(source), registry)


def _load_content(content: str | bytes | Mapping, registry: Registry) -> Loaded:
    if isinstance(content, Mapping):
        return parse_document(content, registry)
    if isinstance(content, bytes):
        return _convert("PNG workflow", _load_png, content, registry)
    return _load_text(content, registry)


def to_native(source: str | Path | bytes | Mapping, registry: Registry) -> tuple[dict, str]:
    """(native editor document, kind) of any supported source: what the editor's import opens.

    A document converts directly (a native one is only migrated); a PNG's or a POST body's
    ``workflow`` is preferred because it keeps the layout; otherwise the canonical prompt is laid
    out automatically.
    """
    content = read_source(source)
    if isinstance(content, Mapping):
        check_object_depth(content)
        fmt = detect(content)
        return _convert(fmt.label, fmt.to_native, content, registry), fmt.kind
    loaded = _load_content(content, registry)
    return _editor_document(loaded.prompt, loaded.workflow, registry), loaded.kind
