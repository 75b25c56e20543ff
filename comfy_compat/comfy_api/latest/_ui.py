"""`comfy_api.latest.ui`: UI outputs a V3 node may return (`NodeOutput(..., ui=...)`)."""
from __future__ import annotations

from typing import Any


class _UIOutput:
    def as_dict(self) -> dict:
        raise NotImplementedError


class PreviewText(_UIOutput):
    """Text shown on the node."""

    def __init__(self, value: str, **_: Any) -> None:
        self.value = value

    def as_dict(self) -> dict:
        return {"text": [self.value]}


class SavedResult(dict):
    """One saved file reference: {filename, subfolder, type}."""

    def __init__(self, filename: str, subfolder: str, type: Any) -> None:
        super().__init__(filename=filename, subfolder=subfolder, type=getattr(type, "value", type))


class SavedImages(_UIOutput):
    """Images already written to output/ or temp/."""

    def __init__(self, results: list, is_animated: bool = False) -> None:
        self.results, self.is_animated = results, is_animated

    def as_dict(self) -> dict:
        return {"images": list(self.results), "animated": (self.is_animated,)}
