"""ComfyUI V1 plugin nodes (INPUT_TYPES / RETURN_TYPES / FUNCTION classes) as NodeDefs.

The adapter class gives the engine its protocol (`run(ctx, **inputs)`, `check_lazy_status`,
`fingerprint`, a `Validator`) and calls the plugin's own methods with ComfyUI's conventions:
hidden inputs (PROMPT, DYNPROMPT, EXTRA_PNGINFO, UNIQUE_ID...) filled from ctx, IS_CHANGED fed
constants only (linked inputs None), `async def` functions left to the engine to await.
"""
from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any

from engine.asyncrun import run_coroutine
from engine.nodedef import InputSpec, NodeDef, OutputSpec, Validator
from nodes.registry import clean_doc

MAX_INSTANCES = 256  # node objects kept per class (one per node id, least recently used dropped)

# Hidden input kinds the executor fills; other hidden names are ordinary (link/literal) inputs.
SPECIAL_HIDDEN = ("PROMPT", "DYNPROMPT", "EXTRA_PNGINFO", "UNIQUE_ID", "AUTH_TOKEN_COMFY_ORG",
                  "API_KEY_COMFY_ORG")


def hidden_value(kind: str, ctx: Any) -> Any:
    """The value of one special hidden input for the node running under `ctx`."""
    extra = getattr(ctx, "extra_data", None) or {}
    if kind == "PROMPT":
        return ctx.prompt
    if kind == "DYNPROMPT":
        return getattr(ctx, "dynprompt", None)
    if kind == "EXTRA_PNGINFO":
        return extra.get("extra_pnginfo")
    if kind == "UNIQUE_ID":
        return ctx.node_id
    return extra.get(kind.lower())


def _fill_hidden(ctx: Any, inputs: dict, special: dict, as_list: bool) -> dict:
    for name, kind in special.items():
        value = hidden_value(kind, ctx)
        inputs[name] = [value] if as_list else value
    return inputs


def _adapter(cls: type, special: dict) -> type:
    """The engine-facing class wrapping `cls` (its FUNCTION, check_lazy_status, IS_CHANGED)."""
    function = getattr(cls, "FUNCTION")
    as_list = bool(getattr(cls, "INPUT_IS_LIST", False))
    instances: OrderedDict = OrderedDict()

    def instance(ctx: Any) -> Any:
        # ComfyUI keeps one object per node id (check_lazy_status and FUNCTION share it, and it
        # lives on between prompts): some packs keep state on `self`.
        key = getattr(ctx, "node_id", None)
        if key not in instances:
            instances[key] = cls()
            while len(instances) > MAX_INSTANCES:
                instances.popitem(last=False)
        instances.move_to_end(key)
        return instances[key]

    def run(self: Any, ctx: Any, **inputs: Any) -> Any:
        return getattr(instance(ctx), function)(**_fill_hidden(ctx, inputs, special, as_list))

    attrs: dict[str, Any] = {"run": run, "INPUT_IS_LIST": as_list, "LEGACY_CLASS": cls,
                             "IS_ASYNC": inspect.iscoroutinefunction(getattr(cls, function)),
                             "__module__": cls.__module__, "__qualname__": cls.__qualname__}
    if callable(getattr(cls, "check_lazy_status", None)):
        def check_lazy_status(self: Any, ctx: Any, **inputs: Any) -> Any:
            return instance(ctx).check_lazy_status(**_fill_hidden(ctx, inputs, special, as_list))
        attrs["check_lazy_status"] = check_lazy_status
    if hasattr(cls, "IS_CHANGED"):
        def fingerprint(_c: Any, ctx: Any, **inputs: Any) -> Any:
            value = cls.IS_CHANGED(**_fill_hidden(ctx, inputs, special, False))
            return run_coroutine(value) if inspect.isawaitable(value) else value  # an async IS_CHANGED
        attrs["fingerprint"] = classmethod(fingerprint)
        attrs["FINGERPRINT_SEES_LINKS"] = True
    return type(cls.__name__, (), attrs)


def validator_of(fn: Any, special: dict, as_list: bool = False) -> Validator | None:
    """A Validator calling ComfyUI's VALIDATE_INPUTS with the inputs its signature names (plus
    the special hidden ones it names: at validation time PROMPT is the submitted prompt)."""
    if fn is None:
        return None
    spec = inspect.getfullargspec(fn)
    names = frozenset(a for a in spec.args if a not in ("cls", "self"))
    wanted = {n: k for n, k in special.items() if n in names or spec.varkw is not None}

    def call(values: dict, node_id: str, prompt: dict) -> Any:
        ctx = _ValidationCtx(node_id, prompt)
        return fn(**_fill_hidden(ctx, dict(values), wanted, as_list))
    return Validator(call, names - {"input_types"}, spec.varkw is not None, "input_types" in names)


class _ValidationCtx:
    """What hidden inputs can know before the run: the node id and the prompt."""

    def __init__(self, node_id: str, prompt: dict) -> None:
        self.node_id, self.prompt, self.extra_data, self.dynprompt = node_id, prompt, {}, None


def legacy_nodedef(class_type: str, cls: type, display: str | None, label: str) -> NodeDef:
    """The NodeDef of one V1 class of a plugin's NODE_CLASS_MAPPINGS."""
    types_ = cls.INPUT_TYPES()
    inputs = [InputSpec.from_info(n, e, opt) for sect, opt in (("required", False), ("optional", True))
              for n, e in (types_.get(sect) or {}).items()]
    hidden = {n: (e[0] if isinstance(e, (list, tuple)) else e) for n, e in (types_.get("hidden") or {}).items()}
    special = {n: k for n, k in hidden.items() if k in SPECIAL_HIDDEN}
    rtypes = list(getattr(cls, "RETURN_TYPES", ()))
    names = list(getattr(cls, "RETURN_NAMES", None) or [None] * len(rtypes))
    is_list = list(getattr(cls, "OUTPUT_IS_LIST", None) or [False] * len(rtypes))
    tips = list(getattr(cls, "OUTPUT_TOOLTIPS", None) or [None] * len(rtypes))
    outputs = [OutputSpec(t if isinstance(t, str) else "COMBO", names[i], bool(is_list[i]), tips[i])
               for i, t in enumerate(rtypes)]
    nd = NodeDef(class_type, _adapter(cls, special), str(getattr(cls, "CATEGORY", "custom")),
                 display or class_type, clean_doc(getattr(cls, "DESCRIPTION", None) or cls.__doc__),
                 getattr(cls, "OUTPUT_NODE", False) is True, False, inputs, outputs, label, hidden or None)
    nd.validator = validator_of(getattr(cls, "VALIDATE_INPUTS", None), special,
                                bool(getattr(cls, "INPUT_IS_LIST", False)))
    nd.extra_inputs = True  # ComfyUI passes undeclared linked inputs to **kwargs
    nd.id_in_signature = "UNIQUE_ID" in special.values() or bool(getattr(cls, "NOT_IDEMPOTENT", False))
    return nd
