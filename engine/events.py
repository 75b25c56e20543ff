"""Execution events: names, the history subset, small consumers, and the WebSocket preview frame.

The executor calls `emit(event_type, data)` with ComfyUI's event names and payloads (COMPAT.md):

    execution_start {prompt_id, timestamp}
    execution_cached {nodes, prompt_id, timestamp}
    executing {node, display_node, prompt_id}            node None = the prompt is finished
    progress {value, max, prompt_id, node}
    executed {node, display_node, output, prompt_id}     for nodes with UI output (also when cached)
    execution_success {prompt_id, timestamp}
    execution_error {prompt_id, node_id, node_type, executed, exception_message, exception_type,
                     traceback, current_inputs, current_outputs, timestamp}
    execution_interrupted {prompt_id, node_id, node_type, executed, timestamp}

Two Latentgraph events are not ComfyUI's JSON messages:
    preview {prompt_id, node, jpeg: bytes}   → sent as a binary WS frame (`preview_frame`)
    image {prompt_id, node, png: bytes}      → a result image (SaveImageWebsocket): a binary WS
                                               frame with image format 2 (PNG), never muted
    warning {prompt_id, node, message}       → validation warnings (defaults filled in) and
                                               ctx.warn(); ComfyUI clients ignore unknown types.
"""
from __future__ import annotations

import struct
import threading
from typing import Any, Callable

Emit = Callable[[str, dict], None]

EXECUTION_START = "execution_start"
EXECUTION_CACHED = "execution_cached"
EXECUTING = "executing"
PROGRESS = "progress"
EXECUTED = "executed"
EXECUTION_SUCCESS = "execution_success"
EXECUTION_ERROR = "execution_error"
EXECUTION_INTERRUPTED = "execution_interrupted"
PREVIEW = "preview"
IMAGE = "image"
WARNING = "warning"

# Events ComfyUI also records in history `status.messages`.
MESSAGE_EVENTS = (EXECUTION_START, EXECUTION_CACHED, EXECUTION_SUCCESS, EXECUTION_ERROR,
                  EXECUTION_INTERRUPTED)
# Binary WebSocket frame: event type 1 = preview image, then image format (1 JPEG, 2 PNG).
BINARY_PREVIEW_IMAGE = 1
IMAGE_FORMAT_JPEG = 1
IMAGE_FORMAT_PNG = 2


def preview_frame(image: bytes, image_format: int = IMAGE_FORMAT_JPEG) -> bytes:
    """The binary WS frame ComfyUI clients decode as a live preview."""
    return struct.pack(">II", BINARY_PREVIEW_IMAGE, image_format) + image


def fanout(*consumers: Emit | None) -> Emit:
    """One emit that calls several consumers in order (e.g. the WS hub and a CLI bar)."""
    active = [c for c in consumers if c is not None]

    def emit(event: str, data: dict) -> None:
        for consumer in active:
            consumer(event, data)

    return emit


class EventRecorder:
    """Keeps every event (thread-safe); tests and the CLI's --json summary read it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self._lock = threading.Lock()

    def __call__(self, event: str, data: dict) -> None:
        with self._lock:
            self.events.append((event, data))

    def of(self, event: str) -> list[dict]:
        """Payloads of one event type, in order."""
        with self._lock:
            return [d for e, d in self.events if e == event]

    def types(self) -> list[str]:
        with self._lock:
            return [e for e, _ in self.events]

    def executing_nodes(self) -> list[Any]:
        """The `node` of every `executing` event (the final None included)."""
        return [d["node"] for d in self.of(EXECUTING)]
