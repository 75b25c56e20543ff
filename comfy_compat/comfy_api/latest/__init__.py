"""`comfy_api.latest`: V3 node schema (`io`), UI outputs (`ui`), `ComfyExtension` and the host API
(`ComfyAPI`, `ComfyAPISync`). A pack's `comfy_entrypoint()` returns a ComfyExtension whose
`get_node_list()` names its io.ComfyNode classes (loaded by nodes/plugin_v3.py)."""
from __future__ import annotations

from abc import ABC, abstractmethod

from . import _io as io
from . import _ui as ui
from ._api import ComfyAPI_latest, ComfyAPISync_latest


class ComfyExtension(ABC):
    """A V3 pack: `on_load()` once, `get_node_list()` its node classes (both async)."""

    async def on_load(self) -> None:
        return None

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        ...


class Input:
    """Type names plugins annotate with (tensors and dicts here)."""

    Image = Mask = Latent = Audio = Video = object


class InputImpl:
    pass


class Types:
    pass


ComfyAPI = ComfyAPI_latest
ComfyAPISync = ComfyAPISync_latest
comfy_io = io

__all__ = ["ComfyAPI", "ComfyAPISync", "ComfyAPI_latest", "Input", "InputImpl", "Types", "ComfyExtension",
           "io", "comfy_io", "ui"]
