"""`comfy_execution.graph`: the dynamic-prompt vocabulary plugins import (ExecutionBlocker,
DynamicPrompt, errors, get_input_info), the very classes the engine uses (engine/flow.py)."""
from __future__ import annotations

from typing import Any

from engine.flow import DependencyCycleError, DynamicPrompt, ExecutionBlocker, NodeNotFoundError

__all__ = ["ExecutionBlocker", "DynamicPrompt", "DependencyCycleError", "NodeNotFoundError",
           "NodeInputError", "get_input_info"]


class NodeInputError(Exception):
    """A node asked for an input it does not have (or that is a constant)."""


def get_input_info(class_def: Any, input_name: str, valid_inputs: dict | None = None) -> tuple:
    """(type, "required"|"optional"|"hidden", options) of one input of a V1 class, or Nones."""
    valid_inputs = valid_inputs or class_def.INPUT_TYPES()
    for category in ("required", "optional", "hidden"):
        section = valid_inputs.get(category) or {}
        if input_name in section:
            info = section[input_name]
            info = info if isinstance(info, (list, tuple)) else (info,)
            return info[0], category, (info[1] if len(info) > 1 else {})
    return None, None, None
