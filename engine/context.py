"""NodeContext: what a running node may see and do besides its inputs.

Nodes get the job's graph, paths and model cache through `ctx`, never through globals, and report
progress/previews/warnings through it so that the CLI, the WebSocket and the history all see the
same events.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from engine.errors import Interrupted
from engine.events import Emit, Event, ExecutionWarning, Preview, Progress, ResultImage


def _no_emit(event: Event) -> None:
    return None


@dataclass
class NodeContext:
    """Per-node execution context (ARCHITECTURE.md §3)."""

    node_id: str
    prompt_id: str
    prompt: dict
    paths: Any  # engine.paths.Paths
    models: Any  # engine.cache.ModelCache
    extra_pnginfo: dict = field(default_factory=dict)
    extra_data: dict = field(default_factory=dict)
    class_type: str = ""
    emit: Emit = _no_emit
    interrupt: threading.Event | None = None
    warnings: list[str] = field(default_factory=list)
    dynprompt: Any = None  # engine.flow.DynamicPrompt of the run (ComfyUI's hidden DYNPROMPT)

    @property
    def unique_id(self) -> str:
        """ComfyUI's name for the node id (hidden input UNIQUE_ID)."""
        return self.node_id

    def check_interrupt(self) -> None:
        """Raises Interrupted when the job was interrupted; long loops call this."""
        if self.interrupt is not None and self.interrupt.is_set():
            raise Interrupted()

    def progress(self, value: int | float, total: int | float, preview_jpeg: bytes | None = None) -> None:
        """Reports progress (a `progress` event, plus a `preview` event with JPEG bytes if given).

        Checks the interrupt first, so a sampler's per-step callback is also the interrupt point.
        """
        self.check_interrupt()
        self.emit(Progress(value, total, self.prompt_id, self.node_id))
        if preview_jpeg is not None:
            self.emit(Preview(self.prompt_id, self.node_id, preview_jpeg))

    def send_image(self, png: bytes) -> None:
        """A result image for the client that queued the prompt (an `image` event: a binary PNG
        frame on the WebSocket, sent even when live previews are off)."""
        self.check_interrupt()
        self.emit(ResultImage(self.prompt_id, self.node_id, png))

    def warn(self, message: str) -> None:
        """A non-fatal problem worth telling the user; goes out as a `warning` event."""
        self.warnings.append(message)
        self.emit(ExecutionWarning(self.prompt_id, self.node_id, message))


# The node being run on this thread (or task): code that gets no `ctx` argument (ComfyUI plugins'
# ProgressBar, interrupt checks) finds its node through this.
_CURRENT: contextvars.ContextVar[NodeContext | None] = contextvars.ContextVar("latentgraph_node", default=None)


def current_context() -> NodeContext | None:
    """The NodeContext of the node running on this thread/task, None outside execution."""
    return _CURRENT.get()


@contextlib.contextmanager
def running(ctx: Any) -> Iterator[None]:
    """Makes `ctx` the current context for the duration (nested runs restore the outer one)."""
    token = _CURRENT.set(ctx)
    try:
        yield
    finally:
        _CURRENT.reset(token)
