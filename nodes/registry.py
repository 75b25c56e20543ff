"""`@node`: declaring a node class into a registry (ARCHITECTURE.md §3).

The declaration types live in engine/nodedef.py (the engine consumes them); this module adds the
decorator that turns a class with `INPUTS` / `OUTPUTS` lists into a `NodeDef`, and the application's
built-in `REGISTRY`. Node authors import everything from here:

    from nodes.registry import node, In, Int, Float, String, Boolean, Combo, Out, NodeOutput, files

Plugin loading (`load_all`, ComfyUI-style NODE_CLASS_MAPPINGS) lives in nodes/plugins.py.
Nothing here may depend on torch or ldm.
"""
from __future__ import annotations

import contextvars
import inspect
from typing import Any, Callable

from engine.nodedef import (Boolean, Combo, FileOptions, Float, In, InputSpec, Int, NodeDef, NodeOutput,
                            Out, OutputSpec, Registry, String, files)

__all__ = ["node", "REGISTRY", "Registry", "NodeDef", "InputSpec", "OutputSpec", "FileOptions", "In", "Int",
           "Float", "String", "Boolean", "Combo", "Out", "NodeOutput", "files", "declaring_into", "clean_doc"]

REGISTRY = Registry()
# Target of `@node` without `registry=`; plugin loading points it at the registry it fills.
_TARGET: contextvars.ContextVar[Registry | None] = contextvars.ContextVar("lg_registry_target", default=None)
_MODULE_LABEL: contextvars.ContextVar[str | None] = contextvars.ContextVar("lg_module_label", default=None)


class declaring_into:  # noqa: N801 - used as a `with` statement, like a function
    """While active, `@node` without `registry=` registers into `registry`, labelled `label`
    (the python_module of /object_info); used while a plugin module is imported."""

    def __init__(self, registry: Registry, label: str) -> None:
        self.registry, self.label = registry, label

    def __enter__(self) -> None:
        self._tokens = (_TARGET.set(self.registry), _MODULE_LABEL.set(self.label))

    def __exit__(self, *exc: Any) -> None:
        _TARGET.reset(self._tokens[0])
        _MODULE_LABEL.reset(self._tokens[1])


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
            description=clean_doc(cls.__doc__), output_node=output_node, never_cache=never_cache,
            inputs=list(getattr(cls, "INPUTS", [])), outputs=list(getattr(cls, "OUTPUTS", [])),
            python_module=label)
        _check_declaration(nd)
        target.register(nd)
        return cls

    return wrap


def clean_doc(doc: str | None) -> str:
    """A docstring as the one-line description /object_info shows."""
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
    problem = signature_problem(nd)
    if problem:
        raise TypeError(f"{nd.class_type}.run: {problem}")


def signature_problem(nd: NodeDef) -> str | None:
    """Why `run(self, ctx, ...)` cannot take the declared inputs, or None when it can.

    The executor calls `run(ctx, **inputs)` with every declared input that has a value: each input
    needs a parameter of its name (or `**inputs`), every parameter must be a declared input, and an
    optional input, which may be absent, needs a parameter default.
    """
    params = list(inspect.signature(nd.cls.run).parameters.values())[1:]  # drop self
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].kind not in positional or params[0].name != "ctx":
        return "the first parameter after self must be ctx"
    named = {p.name: p for p in params[1:] if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    declared = {spec.name: spec for spec in nd.inputs}
    unknown = [n for n in named if n not in declared]
    if unknown:
        return f"parameter(s) {', '.join(unknown)} are not declared inputs"
    if not takes_any and (missing := [n for n in declared if n not in named]):
        return f"declared input(s) {', '.join(missing)} have no parameter (add them or **inputs)"
    for name, p in named.items():
        if p.kind is p.POSITIONAL_ONLY:
            return f"parameter {name} is positional-only; inputs are passed by name"
        if declared[name].optional and p.default is p.empty:
            return f"optional input {name} needs a parameter default (it may be absent)"
    return None
