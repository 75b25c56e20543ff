"""Installs the ComfyUI import surface for plugins (called by nodes.plugin_env.prepare()).

ComfyUI's top-level module `nodes` and our package `nodes` share a name, and our package wins
(it is what our own code imports). So ComfyUI's names (NODE_CLASS_MAPPINGS, MAX_RESOLUTION,
KSampler, common_ksampler, ...) are lent to our package through a module `__getattr__`: they
resolve from `comfy_nodes_surface` on first use, and only for names our package does not
define itself, so our code's view of `nodes` is unchanged. Outside processes that only want the
module names put this folder on PYTHONPATH and call `install()`.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SURFACE = "comfy_nodes_surface"


def _surface_getattr(name: str) -> Any:
    """Our `nodes` package's fallback for ComfyUI's `nodes` names; others stay AttributeErrors
    (so `from nodes import <submodule>` still imports the submodule)."""
    if name.startswith("__") or importlib.util.find_spec(f"nodes.{name}") is not None:
        raise AttributeError(name)  # dunders and our own submodules are never lent names
    surface = importlib.import_module(SURFACE)
    if name in surface.__all__:
        return getattr(surface, name)
    raise AttributeError(f"module 'nodes' has no attribute '{name}' (not part of ComfyUI's nodes "
                         f"module as offered by comfy_compat)")


def install() -> None:
    """Idempotent: this folder on sys.path, ComfyUI's `nodes` names resolvable on our `nodes`."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    package = importlib.import_module("nodes")
    package.__dict__.setdefault("__getattr__", _surface_getattr)
