"""The node declaration API: what a node is, as plain data (ARCHITECTURE.md §3).

`InputSpec` / `OutputSpec` (built with `In`, `Int`, `Float`, `String`, `Boolean`, `Combo`, `Out`),
`NodeDef` (one declared class) and `Registry` (name -> NodeDef). Validation, the formats,
/object_info and the executor consume these; nodes/registry.py adds the `@node` decorator that
fills a Registry. Nothing here may import torch or ldm (engine rule).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Sequence

from engine.context import running
from engine.flow import ExecutionBlocker

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
HIDDEN_FOR_OUTPUT_NODES = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}


@dataclass(frozen=True)
class FileOptions:
    """Combo options computed at request time from a folder (`files("checkpoints")`)."""

    folder: str

    def resolve(self, paths: Any) -> list[str]:
        """The current file names; an empty list when no Paths is available (schema-only use)."""
        if paths is None:
            return []
        try:
            return list(paths.list_files(self.folder))
        except Exception:  # a missing folder must not break /object_info
            return []


def files(folder: str) -> FileOptions:
    """Options of a Combo listing the files of a model folder, or `input_images` (files in input/)."""
    return FileOptions(folder)


@dataclass
class InputSpec:
    """One declared input: a socket (`In`) or a widget (`Int`, `Float`, `String`, `Boolean`, `Combo`)."""

    name: str
    type: str
    widget: bool = False
    optional: bool = False
    tooltip: str | None = None
    default: Any = None
    opts: dict[str, Any] = field(default_factory=dict)
    options: Sequence[str] | FileOptions | None = None

    def choices(self, paths: Any = None) -> list[str]:
        """Combo choices (file lists resolved against `paths`); [] for non-combos."""
        if isinstance(self.options, FileOptions):
            return self.options.resolve(paths)
        return list(self.options or [])

    @property
    def has_default(self) -> bool:
        return self.widget and self.default is not None

    def info(self, paths: Any = None) -> list:
        """The `[TYPE, {opts}]` / `[[choices], {opts}]` entry of /object_info."""
        opts = {k: v for k, v in self.opts.items() if v is not None}
        if self.widget and self.default is not None:
            opts = {"default": self.default, **opts}
        if self.tooltip:
            opts["tooltip"] = self.tooltip
        if self.type == "COMBO":
            return [self.choices(paths), opts]
        if not self.widget and not opts:
            return [self.type]
        return [self.type, opts]

    @classmethod
    def from_info(cls, name: str, entry: Any, optional: bool = False) -> InputSpec:
        """The spec of one `[TYPE | [choices], {opts}]` entry: /object_info's shape, which is also
        ComfyUI's INPUT_TYPES shape (so legacy plugin nodes are read through here too)."""
        entry = entry if isinstance(entry, (list, tuple)) else (entry,)
        kind = entry[0] if entry else "*"
        opts = dict(entry[1]) if len(entry) > 1 and isinstance(entry[1], dict) else {}
        tooltip, default = opts.pop("tooltip", None), opts.pop("default", None)
        if isinstance(kind, (list, tuple)):
            return cls(name, "COMBO", True, optional, tooltip, default, opts, [str(c) for c in kind])
        widget = kind in ("INT", "FLOAT", "STRING", "BOOLEAN") and not opts.get("forceInput")
        if widget and kind == "INT":
            opts.setdefault("step", 1)
        return cls(name, str(kind), widget, optional, tooltip, default, opts)


def In(name: str, type: str, optional: bool = False, tooltip: str | None = None, **opts: Any) -> InputSpec:
    """A socket fed by a link of `type` (extra opts such as `forceInput` go to /object_info)."""
    return InputSpec(name, type, widget=False, optional=optional, tooltip=tooltip, opts=dict(opts))


def Int(name: str, default: int = 0, min: int | None = None, max: int | None = None, step: int = 1,
        display: str | None = None, control_after_generate: bool = False, optional: bool = False,
        tooltip: str | None = None) -> InputSpec:
    """An INT widget; `control_after_generate` marks seeds (the frontend adds a control value)."""
    opts = {"min": min, "max": max, "step": step, "display": display}
    if control_after_generate:
        opts["control_after_generate"] = True
    return InputSpec(name, "INT", True, optional, tooltip, default, opts)


def Float(name: str, default: float = 0.0, min: float | None = None, max: float | None = None,
          step: float | None = None, round: float | bool | None = None, display: str | None = None,
          optional: bool = False, tooltip: str | None = None) -> InputSpec:
    """A FLOAT widget."""
    opts = {"min": min, "max": max, "step": step, "round": round, "display": display}
    return InputSpec(name, "FLOAT", True, optional, tooltip, default, opts)


def String(name: str, default: str = "", multiline: bool = False, dynamic_prompts: bool | None = None,
           optional: bool = False, tooltip: str | None = None) -> InputSpec:
    """A STRING widget; multiline strings are prompts (dynamicPrompts defaults to multiline)."""
    opts: dict[str, Any] = {"multiline": multiline}
    opts["dynamicPrompts"] = multiline if dynamic_prompts is None else dynamic_prompts
    return InputSpec(name, "STRING", True, optional, tooltip, default, opts)


def Boolean(name: str, default: bool = False, label_on: str | None = None, label_off: str | None = None,
            optional: bool = False, tooltip: str | None = None) -> InputSpec:
    """A BOOLEAN toggle widget."""
    opts = {"label_on": label_on, "label_off": label_off}
    return InputSpec(name, "BOOLEAN", True, optional, tooltip, default, opts)


def Combo(name: str, options: Sequence[str] | FileOptions, default: str | None = None,
          image_upload: bool = False, optional: bool = False, tooltip: str | None = None) -> InputSpec:
    """A choice widget over a fixed list or a folder listing (`files(...)`)."""
    opts: dict[str, Any] = {}
    if image_upload:
        opts["image_upload"] = True
    opts_list = options if isinstance(options, FileOptions) else list(options)
    return InputSpec(name, "COMBO", True, optional, tooltip, default, opts, opts_list)


@dataclass
class OutputSpec:
    """One declared output socket."""

    type: str
    name: str | None = None
    is_list: bool = False
    tooltip: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.type


def Out(type: str, name: str | None = None, is_list: bool = False, tooltip: str | None = None) -> OutputSpec:
    """An output socket; `is_list=True` means the value is a list whose items run downstream one by one."""
    return OutputSpec(type, name, is_list, tooltip)


@dataclass
class NodeOutput:
    """What `run` may return instead of a plain tuple: outputs plus a UI dict (images, text...)."""

    outputs: tuple = ()
    ui: dict | None = None
    expand: dict | None = None  # a graph to splice in; `outputs` may then hold links into it


@dataclass
class NodeDef:
    """A registered node class and its declaration."""

    class_type: str
    cls: type
    category: str
    display_name: str
    description: str
    output_node: bool
    never_cache: bool
    inputs: list[InputSpec]
    outputs: list[OutputSpec]
    python_module: str = "nodes"
    hidden: dict | None = None  # legacy ComfyUI nodes declare their own hidden inputs
    validator: Validator | None = None  # ComfyUI's VALIDATE_INPUTS / validate_inputs
    extra_inputs: bool = False  # undeclared linked inputs are passed too (a plugin's **kwargs)
    id_in_signature: bool = False  # the node id is part of its cache signature (UNIQUE_ID users)

    @property
    def input_is_list(self) -> bool:
        """ComfyUI's INPUT_IS_LIST: the node receives whole lists instead of running per item."""
        return bool(getattr(self.cls, "INPUT_IS_LIST", False))

    def input(self, name: str) -> InputSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None

    def fingerprint(self, ctx: Any, inputs: dict) -> Any:
        """Outside state (file mtime/hash) that is part of the cache signature; None when undeclared."""
        fn = getattr(self.cls, "fingerprint", None)
        return None if fn is None else fn(ctx, **inputs)

    def call(self, ctx: Any, inputs: dict) -> tuple[tuple, dict | None]:
        """Runs the node once and normalises the result to (outputs tuple, ui dict or None).

        A result with a wrong number of values is the node's bug: it is reported here, at the
        node that made it, instead of as an IndexError in whichever node reads it.
        """
        with running(ctx):
            values, ui = self._normalise(self.cls().run(ctx, **inputs))
        if len(values) != len(self.outputs) and not (ui is not None and not values):
            raise TypeError(f"{self.class_type}.run returned {len(values)} values for "
                            f"{len(self.outputs)} declared outputs")
        return values, ui

    def _normalise(self, result: Any) -> tuple[tuple, dict | None]:
        if isinstance(result, NodeOutput):
            return tuple(result.outputs or ()), result.ui
        if result is None:
            return (), None
        if isinstance(result, dict) and ("ui" in result or "result" in result):  # ComfyUI {"ui", "result"}
            return tuple(result.get("result") or ()), result["ui"]
        if not isinstance(result, tuple):
            raise TypeError(f"{self.class_type}.run must return a tuple or NodeOutput, got {type(result).__name__}")
        return result, None

    def object_info(self, paths: Any = None) -> dict:
        """This node's /object_info entry, in ComfyUI's exact shape."""
        required = {s.name: s.info(paths) for s in self.inputs if not s.optional}
        optional = {s.name: s.info(paths) for s in self.inputs if s.optional}
        inp: dict[str, Any] = {"required": required}
        if optional:
            inp["optional"] = optional
        if self.hidden:
            inp["hidden"] = dict(self.hidden)
        elif self.output_node:
            inp["hidden"] = dict(HIDDEN_FOR_OUTPUT_NODES)
        order = {"required": list(required)}
        if optional:
            order["optional"] = list(optional)
        return {
            "input": inp, "input_order": order,
            "output": [o.type for o in self.outputs],
            "output_is_list": [o.is_list for o in self.outputs],
            "output_name": [o.label for o in self.outputs],
            "name": self.class_type, "display_name": self.display_name,
            "description": self.description, "python_module": self.python_module,
            "category": self.category, "output_node": self.output_node,
            "output_tooltips": [o.tooltip for o in self.outputs],
        }


    @property
    def is_async(self) -> bool:
        """The node's function is a coroutine function (runs as a task; others overlap it)."""
        return bool(getattr(self.cls, "IS_ASYNC", False)) or inspect.iscoroutinefunction(self.cls.run)

    @property
    def has_lazy_check(self) -> bool:
        return callable(getattr(self.cls, "check_lazy_status", None))

    def invoke(self, ctx: Any, inputs: dict) -> Any:
        """One raw call of `run` (a coroutine for async nodes); see `split_return`."""
        return self.cls().run(ctx, **inputs)

    def check_lazy(self, ctx: Any, inputs: dict) -> Any:
        """The names of lazy inputs the node still needs, given what it has (may be a coroutine)."""
        return self.cls().check_lazy_status(ctx, **inputs)

    def split_return(self, result: Any) -> tuple[tuple | None, dict | None, dict | None]:
        """(outputs or None for UI-only, ui, expansion graph) of one raw result of `run`."""
        if isinstance(result, NodeOutput):
            return tuple(result.outputs or ()), result.ui, result.expand
        if isinstance(result, dict) and ("ui" in result or "result" in result or "expand" in result):
            out = result.get("result")
            out = None if out is None and "expand" not in result else out
            return (None if out is None else _as_outputs(out, len(self.outputs)), result.get("ui"),
                    result.get("expand"))
        if result is None:
            return (), None, None
        if not isinstance(result, tuple) and not _is_blocker(result):
            raise TypeError(f"{self.class_type}.run must return a tuple or NodeOutput, got {type(result).__name__}")
        return _as_outputs(result, len(self.outputs)), None, None


@dataclass(frozen=True)
class Validator:
    """A node's own input check (ComfyUI's VALIDATE_INPUTS): which inputs it receives (their
    declared type/range checks are then skipped, as ComfyUI does), and whether it wants the
    linked inputs' types (`input_types`; the link type check is then skipped too)."""

    fn: Any
    names: frozenset = frozenset()
    all_inputs: bool = False
    input_types: bool = False

    def covers(self, name: str) -> bool:
        return self.all_inputs or name in self.names


def _is_blocker(value: Any) -> bool:
    return isinstance(value, ExecutionBlocker)


def _as_outputs(result: Any, n: int) -> tuple:
    """A node may return one ExecutionBlocker for all its outputs."""
    return (result,) * n if _is_blocker(result) else tuple(result)


class Registry:
    """Name → NodeDef. A fresh instance isolates tests; `nodes.registry.REGISTRY` is the application's one."""

    def __init__(self) -> None:
        self._defs: dict[str, NodeDef] = {}
        self.errors: list[dict] = []

    def register(self, nd: NodeDef) -> NodeDef:
        """Adds a node; a duplicate name from another module is refused and recorded in `errors`."""
        old = self._defs.get(nd.class_type)
        if old is not None and not _same_origin(old.cls, nd.cls):
            self.errors.append({"module": nd.cls.__module__, "class_type": nd.class_type,
                                "error": f"duplicate node class '{nd.class_type}' "
                                         f"(already defined in {old.cls.__module__})"})
            return old
        self._defs[nd.class_type] = nd
        return nd

    def get(self, class_type: Any) -> NodeDef | None:
        return self._defs.get(class_type) if isinstance(class_type, str) else None

    def all(self) -> list[NodeDef]:
        return list(self._defs.values())

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._defs

    def __len__(self) -> int:
        return len(self._defs)

    def __bool__(self) -> bool:  # an empty registry is still a registry, not "no registry"
        return True

    def object_info(self, paths: Any = None) -> dict[str, dict]:
        """The whole /object_info body."""
        return {name: nd.object_info(paths) for name, nd in self._defs.items()}


def _same_origin(a: type, b: type) -> bool:
    """A module re-imported (tests, reloads) may re-register its own classes."""
    return a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__
