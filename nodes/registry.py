"""The typed node declaration API (ARCHITECTURE.md §3).

A node is declared once, as a class decorated with `@node(...)`, with `INPUTS` / `OUTPUTS` lists
built from `In`, `Int`, `Float`, `String`, `Boolean`, `Combo` and `Out`. Everything else —
validation, `/object_info`, the editor palette, the CLI listing — is derived from that declaration,
so nothing here may depend on torch or ldm.
"""
from __future__ import annotations

import contextvars
import importlib
import importlib.util
import pkgutil
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

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


class Registry:
    """Name → NodeDef. A fresh instance isolates tests; `REGISTRY` is the application's one."""

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


REGISTRY = Registry()
# Target of `@node` without `registry=`; load_all points it at the registry it fills.
_TARGET: contextvars.ContextVar[Registry | None] = contextvars.ContextVar("lg_registry_target", default=None)
_MODULE_LABEL: contextvars.ContextVar[str | None] = contextvars.ContextVar("lg_module_label", default=None)


def node(category: str, display_name: str | None = None, output_node: bool = False,
         never_cache: bool = False, name: str | None = None,
         registry: Registry | None = None) -> Callable[[type], type]:
    """Class decorator declaring a node; the class name is its class_type unless `name=` is given."""

    def wrap(cls: type) -> type:
        target = registry if registry is not None else (_TARGET.get() or REGISTRY)
        label = _MODULE_LABEL.get() or ("nodes" if cls.__module__.startswith("nodes.") else cls.__module__)
        nd = NodeDef(
            class_type=name or cls.__name__, cls=cls, category=category,
            display_name=display_name or name or cls.__name__,
            description=_clean_doc(cls.__doc__), output_node=output_node, never_cache=never_cache,
            inputs=list(getattr(cls, "INPUTS", [])), outputs=list(getattr(cls, "OUTPUTS", [])),
            python_module=label)
        _check_declaration(nd)
        target.register(nd)
        return cls

    return wrap


def _clean_doc(doc: str | None) -> str:
    return " ".join((doc or "").split())


def _check_declaration(nd: NodeDef) -> None:
    """Catches declaration mistakes at import time, where they are cheap to find."""
    seen: set[str] = set()
    for spec in nd.inputs:
        if not isinstance(spec, InputSpec):
            raise TypeError(f"{nd.class_type}: INPUTS must hold In/Int/Float/... specs, got {spec!r}")
        if spec.name in seen:
            raise ValueError(f"{nd.class_type}: input '{spec.name}' declared twice")
        seen.add(spec.name)
    for out in nd.outputs:
        if not isinstance(out, OutputSpec):
            raise TypeError(f"{nd.class_type}: OUTPUTS must hold Out specs, got {out!r}")
    if not callable(getattr(nd.cls, "run", None)):
        raise TypeError(f"{nd.class_type}: a node class needs a run(self, ctx, **inputs) method")


def _error_entry(module: str, exc: BaseException) -> dict:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"module": module, "error": f"{type(exc).__name__}: {exc}", "traceback": tb}


def _load_builtin(errors: list[dict]) -> None:
    import nodes as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name == "registry" or info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"nodes.{info.name}")
        except Exception as exc:  # one broken module must not hide the others
            errors.append(_error_entry(f"nodes.{info.name}", exc))


def _plugin_entries(custom_dir: Path) -> Iterable[tuple[str, Path, bool]]:
    for entry in sorted(custom_dir.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir() and (entry / "__init__.py").is_file():
            yield entry.name, entry / "__init__.py", True
        elif entry.is_file() and entry.suffix == ".py":
            yield entry.stem, entry, False


def _load_plugin(name: str, path: Path, is_pkg: bool, registry: Registry) -> None:
    mod_name = f"custom_nodes.{name}"
    spec = importlib.util.spec_from_file_location(
        mod_name, path, submodule_search_locations=[str(path.parent)] if is_pkg else None)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    tok_t, tok_m = _TARGET.set(registry), _MODULE_LABEL.set(mod_name)
    try:
        spec.loader.exec_module(module)
        _register_legacy(module, registry, mod_name)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    finally:
        _TARGET.reset(tok_t)
        _MODULE_LABEL.reset(tok_m)


def _legacy_input(name: str, entry: Any, optional: bool) -> InputSpec:
    """One INPUT_TYPES entry `(TYPE | [choices], {opts})` as an InputSpec."""
    entry = entry if isinstance(entry, (list, tuple)) else (entry,)
    kind = entry[0] if entry else "*"
    opts = dict(entry[1]) if len(entry) > 1 and isinstance(entry[1], dict) else {}
    tooltip, default = opts.pop("tooltip", None), opts.pop("default", None)
    if isinstance(kind, (list, tuple)):
        return InputSpec(name, "COMBO", True, optional, tooltip, default, opts, [str(c) for c in kind])
    widget = kind in ("INT", "FLOAT", "STRING", "BOOLEAN") and not opts.get("forceInput")
    if widget and kind == "INT":
        opts.setdefault("step", 1)
    return InputSpec(name, str(kind), widget, optional, tooltip, default, opts)


def _legacy_adapter(cls: type, hidden: dict) -> type:
    """A `run(ctx, **inputs)` class calling a ComfyUI-style node's FUNCTION with its hidden inputs."""
    function = getattr(cls, "FUNCTION")
    as_list = bool(getattr(cls, "INPUT_IS_LIST", False))

    def run(self: Any, ctx: Any, **inputs: Any) -> Any:
        sources = {"PROMPT": ctx.prompt, "EXTRA_PNGINFO": ctx.extra_pnginfo, "UNIQUE_ID": ctx.node_id}
        for hname, htype in hidden.items():
            value = sources.get(htype)
            inputs[hname] = [value] if as_list else value
        return getattr(cls(), function)(**inputs)

    attrs: dict[str, Any] = {"run": run, "INPUT_IS_LIST": as_list, "LEGACY_CLASS": cls,
                             "__module__": cls.__module__, "__qualname__": cls.__qualname__}
    if hasattr(cls, "IS_CHANGED"):
        attrs["fingerprint"] = classmethod(lambda _c, ctx, **inputs: cls.IS_CHANGED(**inputs))
    return type(cls.__name__, (), attrs)


def _legacy_nodedef(class_type: str, cls: type, display: str | None, label: str) -> NodeDef:
    types_ = cls.INPUT_TYPES()
    inputs = [_legacy_input(n, e, opt) for sect, opt in (("required", False), ("optional", True))
              for n, e in (types_.get(sect) or {}).items()]
    hidden = {n: (e[0] if isinstance(e, (list, tuple)) else e) for n, e in (types_.get("hidden") or {}).items()}
    rtypes = list(getattr(cls, "RETURN_TYPES", ()))
    names = list(getattr(cls, "RETURN_NAMES", None) or [None] * len(rtypes))
    is_list = list(getattr(cls, "OUTPUT_IS_LIST", None) or [False] * len(rtypes))
    tips = list(getattr(cls, "OUTPUT_TOOLTIPS", None) or [None] * len(rtypes))
    outputs = [OutputSpec(t if isinstance(t, str) else "COMBO", names[i], bool(is_list[i]), tips[i])
               for i, t in enumerate(rtypes)]
    return NodeDef(class_type, _legacy_adapter(cls, hidden), str(getattr(cls, "CATEGORY", "custom")),
                   display or class_type, _clean_doc(getattr(cls, "DESCRIPTION", None) or cls.__doc__),
                   bool(getattr(cls, "OUTPUT_NODE", False)), False, inputs, outputs, label, hidden or None)


def _register_legacy(module: Any, registry: Registry, label: str) -> None:
    """Registers a plugin's ComfyUI-style NODE_CLASS_MAPPINGS (INPUT_TYPES / RETURN_TYPES / FUNCTION)."""
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
    if not isinstance(mappings, dict):
        return
    displays = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {}
    for class_type, cls in mappings.items():
        try:
            registry.register(_legacy_nodedef(str(class_type), cls, displays.get(class_type), label))
        except Exception as exc:  # one bad class must not drop the plugin's other nodes
            registry.errors.append({**_error_entry(label, exc), "class_type": str(class_type)})


def load_all(custom_dir: str | Path | None = None, registry: Registry | None = None,
             builtin: bool = True, probe: Callable[[str, Path, bool], dict | None] | None = None) -> list[dict]:
    """Imports every module of nodes/ and each plugin of `custom_dir`, each isolated.

    Returns the load errors ({module, error, traceback}); a broken plugin or a duplicate class
    name becomes an entry, never an exception, so one bad plugin cannot stop the application.
    `probe` (nodes.plugin_probe.PluginProbe) vets each plugin in a child process first.
    """
    registry = REGISTRY if registry is None else registry
    errors: list[dict] = []
    before = len(registry.errors)
    if builtin:
        _load_builtin(errors)
    if custom_dir is not None and Path(custom_dir).is_dir():
        for name, path, is_pkg in _plugin_entries(Path(custom_dir)):
            # Import probe (nodes/plugin_probe.py): a plugin whose import hangs, exits or crashes
            # a child process is reported and never imported here.
            refused = probe(name, path, is_pkg) if probe is not None else None
            if refused is not None:
                errors.append(refused)
                continue
            try:
                _load_plugin(name, path, is_pkg, registry)
            except BaseException as exc:  # SystemExit from a plugin is still just a load error
                if isinstance(exc, KeyboardInterrupt):
                    raise
                errors.append(_error_entry(f"custom_nodes.{name}", exc))
    errors.extend(registry.errors[before:])
    return errors
