"""Per-node input checks of validation (engine.graph), with ComfyUI's error types and messages.

Each problem becomes a ComfyUI-shaped error dict plus a readable line for the CLI; nothing here
raises on malformed input.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

from engine.asyncrun import run_coroutine
from engine.nodedef import InputSpec, NodeDef, Registry

PRIMITIVES = ("INT", "FLOAT", "STRING", "BOOLEAN")


@dataclass
class NodeCheck:
    """The result of checking one node's inputs."""

    inputs: dict = field(default_factory=dict)      # canonical inputs (coerced literals, [src, idx] links)
    links: dict = field(default_factory=dict)       # input name -> (src id, output index)
    errors: list = field(default_factory=list)      # ComfyUI error dicts
    lines: list = field(default_factory=list)       # readable CLI lines, parallel to errors
    warnings: list = field(default_factory=list)


def short(value: Any, limit: int = 80) -> str:
    """repr() clipped so a 10 kB prompt does not flood an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_safe(value: Any) -> Any:
    """The received value as something json.dumps accepts (the 400 body is JSON)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value[:50]]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in list(value.items())[:50]}
    return short(value)


class _Reporter:
    def __init__(self, check: NodeCheck, node_id: str, class_type: str, paths: Any) -> None:
        self.check, self.node_id, self.class_type, self.paths = check, node_id, class_type, paths

    def error(self, etype: str, message: str, details: str, spec: Any, value: Any, line: str,
              **extra: Any) -> None:
        info = {"input_name": spec.name, "input_config": spec.info(self.paths) if spec else None,
                "received_value": json_safe(value), **extra}
        self.check.errors.append({"type": etype, "message": message, "details": details, "extra_info": info})
        self.check.lines.append(f"node {self.node_id} ({self.class_type}) input '{spec.name}': {line}")


def coerce(type_name: str, value: Any) -> tuple[Any, str | None]:
    """Converts a literal the way ComfyUI does (numeric strings accepted); returns (value, error)."""
    try:
        if type_name == "INT":
            if isinstance(value, float) and not math.isfinite(value):
                return value, "not a finite number"
            if isinstance(value, (bool, int, float, str)):
                return int(value), None
        elif type_name == "FLOAT":
            if isinstance(value, (bool, int, float, str)):
                out = float(value)
                return (out, None) if math.isfinite(out) else (value, "not a finite number")
        elif type_name == "STRING":
            if isinstance(value, (str, int, float, bool)):
                return str(value), None
        elif type_name == "BOOLEAN":
            if isinstance(value, bool):
                return value, None
            if isinstance(value, int) and value in (0, 1):
                return bool(value), None
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return value.strip().lower() == "true", None
        else:
            return value, None
    except (ValueError, OverflowError) as exc:
        return value, str(exc)
    return value, f"a {type(value).__name__} cannot be a {type_name}"


def types_match(out_type: Any, spec: Any, paths: Any) -> bool:
    """Whether an output of `out_type` may feed `spec` ("*" matches anything; "A,B" unions)."""
    want = spec.type
    if out_type == "*" or want == "*" or not (out_type != want):  # `!=`: plugin types may override it
        return True
    if want == "COMBO":
        if out_type == "COMBO":
            return True
        if isinstance(out_type, (list, tuple)):
            choices = set(spec.choices(paths))
            return bool(out_type) and set(out_type) <= choices
        return False
    if not isinstance(out_type, str):
        return False
    return bool(set(out_type.split(",")) & set(want.split(",")))


def check_node(node_id: str, class_type: str, raw_inputs: Any, nd: NodeDef, prompt: dict,
               registry: Registry, paths: Any) -> NodeCheck:
    """Checks every declared input of one node; unknown extra inputs are ignored (a plugin
    node's undeclared links and hidden-declared inputs are kept: ComfyUI passes them on).

    A node's own validator (ComfyUI's VALIDATE_INPUTS) replaces the type/range checks of the
    inputs it receives, and with `input_types` the link type checks too; then it is called."""
    check = NodeCheck()
    rep = _Reporter(check, node_id, class_type, paths)
    if not isinstance(raw_inputs, dict):
        raw_inputs = {}
    own = nd.validator
    received: dict[str, Any] = {}
    for spec in nd.inputs:
        if spec.name not in raw_inputs:
            _missing(rep, spec)
            continue
        value = raw_inputs[spec.name]
        if isinstance(value, list):
            _check_link(rep, spec, value, prompt, registry, own is not None and own.input_types, received)
        else:
            _check_literal(rep, spec, value, own is not None and own.covers(spec.name), nd.extra_inputs)
    if nd.extra_inputs:
        _keep_extra(rep, nd, raw_inputs, prompt)
    if own is not None:
        _run_validator(rep, nd, own, received, prompt)
    return check


def _keep_extra(rep: _Reporter, nd: NodeDef, raw_inputs: dict, prompt: dict) -> None:
    """Undeclared links and inputs declared under "hidden" (not the special ones) go through."""
    declared = {s.name for s in nd.inputs}
    for name, value in raw_inputs.items():
        if name in declared:
            continue
        is_link = (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
                   and isinstance(value[1], int) and str(value[0]) in prompt)
        if is_link:
            rep.check.links[name] = (str(value[0]), value[1])
            rep.check.inputs[name] = [str(value[0]), value[1]]
        elif name in (nd.hidden or {}):
            rep.check.inputs[name] = value


def _run_validator(rep: _Reporter, nd: NodeDef, own: Any, received: dict, prompt: dict) -> None:
    values = {name: (None if name in rep.check.links else value)
              for name, value in rep.check.inputs.items() if own.covers(name)}
    if own.input_types:
        values["input_types"] = dict(received)
    try:
        result = own.fn(values, rep.node_id, prompt)
        if inspect.isawaitable(result):
            result = run_coroutine(result)
    except Exception as exc:  # a validator that raises rejects the node, it does not crash validation
        result = f"{type(exc).__name__}: {exc}"
    if result is True or type(result).__name__ == "ExecutionBlocker":
        return
    for name in values or {"": None}:
        details = name + ("" if result is False else f" - {result}")
        rep.check.errors.append({"type": "custom_validation_failed", "message": "Custom validation failed for node",
                                 "details": details, "extra_info": {"input_name": name}})
        rep.check.lines.append(f"node {rep.node_id} ({rep.class_type}): custom validation failed: {details}")


def _missing(rep: _Reporter, spec: Any) -> None:
    if spec.optional:
        return
    if spec.has_default:
        rep.check.inputs[spec.name] = spec.default
        rep.check.warnings.append(f"node {rep.node_id} ({rep.class_type}): input '{spec.name}' was missing; "
                                  f"using its default {short(spec.default)}")
        return
    rep.error("required_input_missing", "Required input is missing", spec.name, spec, None,
              "required input is missing")


def _check_link(rep: _Reporter, spec: InputSpec, value: list, prompt: dict, registry: Registry,
                skip_types: bool = False, received: dict | None = None) -> None:
    shape_ok = (len(value) == 2 and isinstance(value[0], (str, int)) and not isinstance(value[0], bool)
                and isinstance(value[1], int) and not isinstance(value[1], bool))
    if not shape_ok:
        rep.error("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                  spec.name, spec, value, f"bad link {short(value)}: must be [node_id, output_index]")
        return
    src, idx = str(value[0]), value[1]
    src_node = prompt.get(src)
    if src_node is None:
        rep.error("bad_linked_input", "Required input is linked to a missing node",
                  f"{spec.name}: node {src} does not exist", spec, value, f"linked to missing node {src}")
        return
    rep.check.links[spec.name] = (src, idx)
    rep.check.inputs[spec.name] = [src, idx]
    src_def = registry.get(src_node.get("class_type")) if isinstance(src_node, dict) else None
    if src_def is None:
        return  # the source node carries its own error
    if not 0 <= idx < len(src_def.outputs):
        rep.error("bad_linked_input", "Bad linked input, output index out of range",
                  f"{spec.name}: node {src} ({src_def.class_type}) has {len(src_def.outputs)} outputs",
                  spec, value, f"output {idx} of node {src} ({src_def.class_type}) does not exist")
        return
    out_type = src_def.outputs[idx].type
    if received is not None:
        received[spec.name] = out_type
    if not skip_types and not types_match(out_type, spec, rep.paths):
        want = spec.type
        rep.error("return_type_mismatch", "Return type mismatch between linked nodes",
                  f"{spec.name}, received_type({out_type}) mismatch input_type({want})", spec, value,
                  f"linked output is {out_type}, expected {want}", received_type=out_type, linked_node=value)


def _check_literal(rep: _Reporter, spec: Any, value: Any, own_check: bool = False, lenient: bool = False) -> None:
    if spec.type == "*" or ((own_check or lenient) and spec.type not in PRIMITIVES and spec.type != "COMBO"):
        # any-typed, left to the node's own validator, or a plugin's socket type: ComfyUI passes
        # a constant to a ComfyUI plugin's non-primitive input unchecked
        rep.check.inputs[spec.name] = value
        return
    if not spec.widget and spec.type not in PRIMITIVES:
        rep.error("invalid_input_type", f"Input '{spec.name}' must be linked to a {spec.type} output",
                  f"{spec.name}, {short(value)}", spec, value, f"needs a link of type {spec.type}, got a value")
        return
    if spec.type == "COMBO":
        _check_combo(rep, spec, value)
        return
    conv, err = coerce(spec.type, value)
    if err is not None:
        rep.error("invalid_input_type", f"Failed to convert an input value to a {spec.type} value",
                  f"{spec.name}, {short(value)}, {err}", spec, value,
                  f"value {short(value)} is not a valid {spec.type}")
        return
    bound = None if own_check else range_violation(spec, conv)
    if bound == "min":
        lo = spec.opts["min"]
        rep.error("value_smaller_than_min", f"Value {conv} smaller than min of {lo}",
                  f"{spec.name}", spec, value, f"value {conv} is smaller than min {lo}")
        return
    if bound == "max":
        hi = spec.opts["max"]
        rep.error("value_bigger_than_max", f"Value {conv} bigger than max of {hi}",
                  f"{spec.name}", spec, value, f"value {conv} is bigger than max {hi}")
        return
    rep.check.inputs[spec.name] = conv


def range_violation(spec: Any, value: Any, slack: float = 0.0) -> str | None:
    """"min" / "max" when a number lies outside the spec's declared range (by more than `slack`
    times its magnitude, at least 1), else None; bools and non-numbers are not checked."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    lo, hi = spec.opts.get("min"), spec.opts.get("max")
    margin = slack * max(1.0, abs(value)) if slack else 0  # no float() of a huge int constant
    if lo is not None and value < lo - margin:
        return "min"
    if hi is not None and value > hi + margin:
        return "max"
    return None


def check_linked_ranges(specs: Any, inputs: dict) -> None:
    """INT/FLOAT values that arrived through a link, against the declared min/max, as the node is
    about to run: validation sees constants only (links are typed, not valued, as in ComfyUI), so
    an upstream node could hand `width = 10**9` to a node that would then try to allocate it.
    Floats get 1e-6 relative slack for rounding in upstream arithmetic."""
    for spec in specs:
        if spec.type not in ("INT", "FLOAT") or spec.name not in inputs:
            continue
        value = inputs[spec.name]
        bound = range_violation(spec, value, 1e-6 if spec.type == "FLOAT" else 0.0)
        if bound == "min":
            raise ValueError(f"input '{spec.name}': value {value} is smaller than min {spec.opts['min']}")
        if bound == "max":
            raise ValueError(f"input '{spec.name}': value {value} is bigger than max {spec.opts['max']}")


def _check_combo(rep: _Reporter, spec: Any, value: Any) -> None:
    is_file_list = hasattr(spec.options, "resolve")  # files("...") options, duck-typed
    if is_file_list and rep.paths is None:
        rep.check.inputs[spec.name] = value  # no folders to check against (schema-only validation)
        return
    choices = spec.choices(rep.paths)
    if isinstance(value, (str, int, float, bool)) and value in choices:
        rep.check.inputs[spec.name] = value
        return
    if isinstance(value, (int, float)) and str(value) in choices:
        rep.check.inputs[spec.name] = str(value)
        return
    shown = choices if len(choices) <= 20 else choices[:20] + ["..."]
    rep.error("value_not_in_list", "Value not in list", f"{spec.name}: {short(value)} not in {shown}",
              spec, value, f"value {short(value)} is not one of {shown}")
