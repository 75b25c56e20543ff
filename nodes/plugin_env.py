"""The import environment ComfyUI-style plugins expect, prepared just before plugins load.

Packs written for ComfyUI import `folder_paths`, `comfy.*`, `server`, `nodes` (ComfyUI's module)...
The repository's comfy_compat/ folder provides those names; `prepare()` puts that folder on
sys.path and runs its installer (`latentgraph_plugin_env.install`), which also lends ComfyUI's
`nodes` names to our own `nodes` package (the two share a name). The installer is looked up by
name, not imported statically: comfy_compat sits above nodes/ and knows about it, not the reverse.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

COMPAT_DIR = Path(__file__).resolve().parent.parent / "comfy_compat"
INSTALLER = "latentgraph_plugin_env"


def prepare() -> None:
    """Makes the ComfyUI module names importable for plugins (idempotent, cheap: no torch import)."""
    if not COMPAT_DIR.is_dir():
        return
    if str(COMPAT_DIR) not in sys.path:
        sys.path.insert(0, str(COMPAT_DIR))
    importlib.import_module(INSTALLER).install()
