"""`comfy_execution.utils`: which node is executing (get_executing_context), from the engine's
running-node context (engine.context.current_context)."""
from __future__ import annotations

from typing import NamedTuple, Optional

from engine.context import current_context


class ExecutionContext(NamedTuple):
    prompt_id: str
    node_id: str
    list_index: Optional[int]


def get_executing_context() -> ExecutionContext | None:
    """The running node (prompt id, node id), None outside execution."""
    ctx = current_context()
    if ctx is None:
        return None
    return ExecutionContext(ctx.prompt_id, ctx.node_id, getattr(ctx, "list_index", None))
