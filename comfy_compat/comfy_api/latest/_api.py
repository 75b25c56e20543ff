"""ComfyAPI / ComfyAPISync: what a running node may ask of the host (progress for now)."""
from __future__ import annotations

from typing import Any

from comfy.utils import report_progress
from engine.context import current_context


def _set_progress(value: float, max_value: float, node_id: str | None, preview_image: Any) -> None:
    ctx = current_context()
    if node_id is None and ctx is None:
        raise ValueError("node_id must be provided if not in executing context")
    preview = None
    if preview_image is not None and hasattr(preview_image, "save"):
        preview = ("JPEG", preview_image, None)
    report_progress(value, max_value, preview, node_id=node_id)


class ComfyAPI_latest:
    """`api.execution.set_progress(value, max_value, node_id=None, preview_image=None)` (async)."""

    VERSION = "latest"
    STABLE = False

    class Execution:
        async def set_progress(self, value: float, max_value: float, node_id: str | None = None,
                               preview_image: Any = None, ignore_size_limit: bool = False) -> None:
            _set_progress(value, max_value, node_id, preview_image)

    def __init__(self) -> None:
        self.execution = self.Execution()


class ComfyAPISync_latest:
    """The same calls for synchronous node functions."""

    VERSION = "latest"
    STABLE = False

    class Execution:
        def set_progress(self, value: float, max_value: float, node_id: str | None = None,
                         preview_image: Any = None, ignore_size_limit: bool = False) -> None:
            _set_progress(value, max_value, node_id, preview_image)

    def __init__(self) -> None:
        self.execution = self.Execution()
