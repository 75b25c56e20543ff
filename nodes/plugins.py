"""Loading node modules: the built-in nodes/ package and plugins from a custom_nodes folder.

Each plugin (`custom_nodes/<x>.py` or a package `custom_nodes/<x>/`) is imported as
`custom_nodes.<x>` with `@node` pointed at the registry being filled. Plugins written for ComfyUI
(`NODE_CLASS_MAPPINGS`, `INPUT_TYPES`, `RETURN_TYPES`, `FUNCTION`) are adapted to NodeDefs here.
A broken plugin becomes an error entry, never an exception: one bad plugin must not stop the app.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

import nodes as builtin_package
from engine.nodedef import Registry
from nodes import plugin_env
from nodes.plugin_v3 import class_nodedef, entrypoint_nodedefs
from nodes.registry import REGISTRY, declaring_into

__all__ = ["load_all"]

# Modules of nodes/ that declare no nodes (the declaration and loading machinery itself).
_NOT_NODE_MODULES = {"registry", "plugins", "plugin_env", "plugin_probe", "plugin_v1", "plugin_v3"}


def _error_entry(module: str, exc: BaseException) -> dict:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"module": module, "error": f"{type(exc).__name__}: {exc}", "traceback": tb}


def _load_builtin(errors: list[dict]) -> None:
    for info in pkgutil.iter_modules(builtin_package.__path__):
        if info.name in _NOT_NODE_MODULES or info.name.startswith("_"):
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


def _import_plugin(name: str, path: Path, is_pkg: bool, registry: Registry) -> dict | None:
    """Imports one plugin into `registry`; its load error entry, or None when it loaded."""
    try:
        _exec_plugin(name, path, is_pkg, registry)
    except BaseException as exc:  # SystemExit from a plugin is still just a load error
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _error_entry(f"custom_nodes.{name}", exc)
    return None


def _exec_plugin(name: str, path: Path, is_pkg: bool, registry: Registry) -> None:
    mod_name = f"custom_nodes.{name}"
    spec = importlib.util.spec_from_file_location(
        mod_name, path, submodule_search_locations=[str(path.parent)] if is_pkg else None)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        with declaring_into(registry, mod_name):
            spec.loader.exec_module(module)
            _register_legacy(module, registry, mod_name)
            for nd in entrypoint_nodedefs(module, mod_name):  # V3: comfy_entrypoint()
                registry.register(nd)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise


def _register_legacy(module: Any, registry: Registry, label: str) -> None:
    """Registers a plugin's ComfyUI-style NODE_CLASS_MAPPINGS (INPUT_TYPES / RETURN_TYPES / FUNCTION)."""
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
    if not isinstance(mappings, dict):
        return
    displays = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {}
    for class_type, cls in mappings.items():
        try:
            registry.register(class_nodedef(str(class_type), cls, displays.get(class_type), label))
        except Exception as exc:  # one bad class must not drop the plugin's other nodes
            registry.errors.append({**_error_entry(label, exc), "class_type": str(class_type)})


def load_all(custom_dir: str | Path | list | None = None, registry: Registry | None = None,
             builtin: bool = True,
             probe: Callable[[str, Path, bool], dict | None] | None = None) -> list[dict]:
    """Imports every module of nodes/ and each plugin of `custom_dir`, each isolated.

    Returns the load errors ({module, error, traceback}); a broken plugin or a duplicate class
    name becomes an entry, never an exception, so one bad plugin cannot stop the application.
    Built-in modules always register into `REGISTRY` (their `@node` has no target); plugins go to
    `registry` (default `REGISTRY`). `probe` (nodes.plugin_probe.PluginProbe) imports each plugin
    in a child process first, with a time limit: one that hangs, exits or crashes there is
    reported and never imported here.
    """
    registry = REGISTRY if registry is None else registry
    errors: list[dict] = []
    before = len(registry.errors)
    if builtin:
        _load_builtin(errors)
    folders = [Path(d) for d in (custom_dir if isinstance(custom_dir, (list, tuple)) else [custom_dir])
               if d is not None and Path(d).is_dir()]  # several: extra_model_paths' custom_nodes
    if folders:
        plugin_env.prepare()  # ComfyUI's module names (comfy_compat/) for the plugins
    for name, path, is_pkg in (e for folder in folders for e in _plugin_entries(folder)):
        error = probe(name, path, is_pkg) if probe is not None else None
        if error is None:
            error = _import_plugin(name, path, is_pkg, registry)
        if error is not None:
            errors.append(error)
    errors.extend(registry.errors[before:])
    return errors
