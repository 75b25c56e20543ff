"""ComfyUI V3 plugin nodes (`comfy_api.latest.io.ComfyNode`) as NodeDefs, and the V3 entry point.

A V3 class declares a Schema; its classmethod `execute(**inputs)` returns an `io.NodeOutput`
(values, `ui`, `expand`, `block_execution`). The adapter reads the schema through its V1 view
(`INPUT_TYPES`) so validation, /object_info and lists work as for V1 nodes, sets `cls.hidden`
for each call, and converts the NodeOutput to the engine's. A module with `comfy_entrypoint()`
is a V3 pack: its extension's `get_node_list()` names the classes.
"""
from __future__ import annotations

import inspect
from typing import Any

from engine.asyncrun import run_coroutine
from engine.flow import ExecutionBlocker
from engine.nodedef import NodeDef, NodeOutput
from nodes.plugin_v1 import SPECIAL_HIDDEN, hidden_value, legacy_nodedef, validator_of


def is_v3(cls: Any) -> bool:
    return isinstance(cls, type) and callable(getattr(cls, "define_schema", None)) \
        and callable(getattr(cls, "execute", None)) and callable(getattr(cls, "GET_SCHEMA", None))


def _own(cls: type, name: str) -> bool:
    """Whether the V3 class overrides `name` (the ComfyNode base only has defaults)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass.__name__ != "ComfyNode"
    return False


def _convert(result: Any, n_outputs: int) -> Any:
    if type(result).__name__ != "NodeOutput" or not hasattr(result, "block_execution"):
        return result  # a dict or tuple: the V1 conventions apply
    ui = result.ui.as_dict() if hasattr(result.ui, "as_dict") else result.ui
    values = tuple(result.args)
    if result.block_execution is not None:
        values = (ExecutionBlocker(result.block_execution),) * n_outputs
    return NodeOutput(values, ui, result.expand)


def _with_hidden(cls: type, ctx: Any, kinds: list[str]) -> type:
    holder = type(cls.hidden)(**{k.lower(): hidden_value(k, ctx) for k in kinds})
    return type(cls.__name__, (cls,), {"hidden": holder, "__module__": cls.__module__})


def _adapter(cls: type, kinds: list[str], n_outputs: int) -> type:
    def run(self: Any, ctx: Any, **inputs: Any) -> Any:
        result = _with_hidden(cls, ctx, kinds).execute(**inputs)
        if inspect.isawaitable(result):
            async def converted() -> Any:
                return _convert(await result, n_outputs)
            return converted()
        return _convert(result, n_outputs)

    attrs: dict[str, Any] = {"run": run, "INPUT_IS_LIST": bool(cls.GET_SCHEMA().is_input_list),
                             "IS_ASYNC": inspect.iscoroutinefunction(cls.execute), "V3_CLASS": cls,
                             "__module__": cls.__module__, "__qualname__": cls.__qualname__}
    if _own(cls, "check_lazy_status"):
        attrs["check_lazy_status"] = lambda self, ctx, **inputs: \
            _with_hidden(cls, ctx, kinds).check_lazy_status(**inputs)
    if _own(cls, "fingerprint_inputs"):
        def fingerprint(_c: Any, ctx: Any, **inputs: Any) -> Any:
            value = _with_hidden(cls, ctx, kinds).fingerprint_inputs(**inputs)
            return run_coroutine(value) if inspect.isawaitable(value) else value
        attrs["fingerprint"] = classmethod(fingerprint)
        attrs["FINGERPRINT_SEES_LINKS"] = True
    return type(cls.__name__, (), attrs)


def v3_nodedef(cls: type, label: str, display: str | None = None) -> NodeDef:
    """The NodeDef of one io.ComfyNode class: its V1 view, with the V3 calling conventions."""
    schema = cls.GET_SCHEMA()
    holder = type(schema.node_id, (), {
        "INPUT_TYPES": classmethod(lambda _c: cls.INPUT_TYPES()),
        "RETURN_TYPES": tuple(o.io_type for o in schema.outputs),
        "RETURN_NAMES": tuple(o.display_name or o.id or o.io_type for o in schema.outputs),
        "OUTPUT_IS_LIST": tuple(bool(o.is_output_list) for o in schema.outputs),
        "OUTPUT_TOOLTIPS": tuple(o.tooltip for o in schema.outputs),
        "OUTPUT_NODE": bool(schema.is_output_node), "CATEGORY": schema.category,
        "DESCRIPTION": schema.description, "FUNCTION": "execute", "execute": None,
        "INPUT_IS_LIST": bool(schema.is_input_list), "NOT_IDEMPOTENT": bool(schema.not_idempotent)})
    nd = legacy_nodedef(schema.node_id, holder, display or schema.display_name, label)
    kinds = [h.value for h in schema.hidden if h.value in SPECIAL_HIDDEN]
    nd.cls = _adapter(cls, kinds, len(schema.outputs))
    nd.validator = validator_of(cls.validate_inputs, {}, bool(schema.is_input_list)) \
        if _own(cls, "validate_inputs") else None
    nd.id_in_signature = "UNIQUE_ID" in kinds or bool(schema.not_idempotent)
    return nd


def class_nodedef(class_type: str, cls: type, display: str | None, label: str) -> NodeDef:
    """A NODE_CLASS_MAPPINGS entry: V3 class or V1 class."""
    if is_v3(cls):
        return v3_nodedef(cls, label, display)
    return legacy_nodedef(class_type, cls, display, label)


def entrypoint_nodedefs(module: Any, label: str) -> list[NodeDef]:
    """The nodes of a V3 pack (`comfy_entrypoint()` -> ComfyExtension); [] for other modules."""
    entry = getattr(module, "comfy_entrypoint", None)
    if not callable(entry):
        return []
    extension = entry()
    extension = run_coroutine(extension) if inspect.isawaitable(extension) else extension
    run_coroutine(extension.on_load())
    return [v3_nodedef(cls, label) for cls in run_coroutine(extension.get_node_list())]
