"""`comfy_api.v0_0_2`: the API version 0.0.2 surface (same calls as `latest` today)."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, Input, InputImpl, Types, io, ui  # noqa: F401
from comfy_api.latest._api import ComfyAPI_latest, ComfyAPISync_latest


class ComfyAPIAdapter_v0_0_2(ComfyAPI_latest):
    VERSION = "0.0.2"


class ComfyAPISyncAdapter_v0_0_2(ComfyAPISync_latest):
    VERSION = "0.0.2"


ComfyAPI = ComfyAPIAdapter_v0_0_2
ComfyAPISync = ComfyAPISyncAdapter_v0_0_2

__all__ = ["ComfyAPI", "ComfyAPISync", "Input", "InputImpl", "Types", "ComfyExtension", "io", "ui"]
