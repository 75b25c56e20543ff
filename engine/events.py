"""Execution events: one typed class per message the executor and the job queue send.

Every event knows its ComfyUI message name (`type`) and its JSON payload (`data`, keys in ComfyUI's
order, COMPAT.md); consumers (WebSocket hub, history, CLI bars) receive the objects through
`emit(event)` and never build payloads themselves. Framing for the wire (JSON text frames, the
binary image frame) lives in ui/ws.py.

    execution_start {prompt_id, timestamp}
    execution_cached {nodes, prompt_id, timestamp}
    executing {node, display_node, prompt_id}            node None = the prompt is finished
    progress {value, max, prompt_id, node}
    executed {node, display_node, output, prompt_id}     for nodes with UI output (also when cached)
    execution_success {prompt_id, timestamp}
    execution_error {prompt_id, node_id, node_type, executed, exception_message, exception_type,
                     traceback, current_inputs, current_outputs, timestamp}
    execution_interrupted {prompt_id, node_id, node_type, executed, timestamp}
    status {status: {exec_info: {queue_remaining}}}      the queue, on every change (broadcast)

Latentgraph events beyond ComfyUI's JSON messages:
    preview  (Preview)      a live preview image → binary WS frame (JPEG), for jobs that want them
    image    (ResultImage)  a result image (SaveImageWebsocket) → binary WS frame (PNG), always sent
    warning  (ExecutionWarning) {prompt_id, node, message}: validation warnings (defaults filled
                            in) and ctx.warn(); ComfyUI clients ignore unknown types.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar

IMAGE_FORMAT_JPEG = 1  # image formats of binary image frames (ComfyUI's numbering)
IMAGE_FORMAT_PNG = 2


def now_ms() -> int:
    """ComfyUI's event timestamps: milliseconds since the epoch."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Event:
    """Base class: `type` is the ComfyUI message name; `data` the payload, one key per field."""

    type: ClassVar[str] = ""
    in_history: ClassVar[bool] = False  # ComfyUI also records it in history `status.messages`

    @property
    def data(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def message(self) -> list:
        """The `[type, data]` pair of history `status.messages`."""
        return [self.type, self.data]


Emit = Callable[[Event], None]


@dataclass(frozen=True)
class ExecutionStart(Event):
    type: ClassVar[str] = "execution_start"
    in_history: ClassVar[bool] = True
    prompt_id: str
    timestamp: int = field(default_factory=now_ms)


@dataclass(frozen=True)
class ExecutionCached(Event):
    type: ClassVar[str] = "execution_cached"
    in_history: ClassVar[bool] = True
    nodes: list
    prompt_id: str
    timestamp: int = field(default_factory=now_ms)


@dataclass(frozen=True)
class Executing(Event):
    """A node starts; `node` None is the end of the prompt (clients wait for it)."""

    type: ClassVar[str] = "executing"
    node: str | None
    prompt_id: str
    display_node: str | None = None  # the node the UI highlights (an expansion's parent); default `node`

    @property
    def data(self) -> dict:
        return {"node": self.node, "display_node": self.display_node or self.node, "prompt_id": self.prompt_id}


@dataclass(frozen=True)
class Progress(Event):
    type: ClassVar[str] = "progress"
    value: int | float
    max: int | float
    prompt_id: str
    node: str


@dataclass(frozen=True)
class Executed(Event):
    """A node's UI output (images to show), also re-sent when the node was cached."""

    type: ClassVar[str] = "executed"
    node: str
    output: dict
    prompt_id: str
    display_node: str | None = None

    @property
    def data(self) -> dict:
        return {"node": self.node, "display_node": self.display_node or self.node, "output": self.output,
                "prompt_id": self.prompt_id}


@dataclass(frozen=True)
class ExecutionSuccess(Event):
    type: ClassVar[str] = "execution_success"
    in_history: ClassVar[bool] = True
    prompt_id: str
    timestamp: int = field(default_factory=now_ms)


@dataclass(frozen=True)
class ExecutionError(Event):
    type: ClassVar[str] = "execution_error"
    in_history: ClassVar[bool] = True
    prompt_id: str
    node_id: str | None
    node_type: str | None
    executed: list
    exception_message: str
    exception_type: str
    traceback: list
    current_inputs: dict
    current_outputs: Any  # the ids of the nodes whose outputs exist
    timestamp: int = field(default_factory=now_ms)


@dataclass(frozen=True)
class ExecutionInterrupted(Event):
    type: ClassVar[str] = "execution_interrupted"
    in_history: ClassVar[bool] = True
    prompt_id: str
    node_id: str | None
    node_type: str | None
    executed: list
    timestamp: int = field(default_factory=now_ms)


@dataclass(frozen=True)
class ExecutionWarning(Event):
    type: ClassVar[str] = "warning"
    prompt_id: str
    node: str | None
    message: str


@dataclass(frozen=True)
class Status(Event):
    """The queue's broadcast on every change (and the first frame a WebSocket gets)."""

    type: ClassVar[str] = "status"
    queue_remaining: int

    @property
    def data(self) -> dict:
        return {"status": {"exec_info": {"queue_remaining": self.queue_remaining}}}


@dataclass(frozen=True)
class Logs(Event):
    """New server log entries for a client subscribed through PATCH /internal/logs/subscribe."""

    type: ClassVar[str] = "logs"
    entries: list
    size: dict


@dataclass(frozen=True)
class ImageEvent(Event):
    """An image for the client that queued the prompt; sent as a binary frame, not JSON."""

    prompt_id: str
    node: str
    image: bytes
    image_format: int


@dataclass(frozen=True)
class Preview(ImageEvent):
    """A live preview (sampler step); whether a job gets them is the WebSocket hub's policy."""

    type: ClassVar[str] = "preview"
    image_format: int = IMAGE_FORMAT_JPEG


@dataclass(frozen=True)
class ResultImage(ImageEvent):
    """A result image (SaveImageWebsocket): always sent, whatever the preview policy."""

    type: ClassVar[str] = "image"
    image_format: int = IMAGE_FORMAT_PNG


class EventRecorder:
    """Keeps every event (thread-safe); tests read it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, event_type: str) -> list[dict]:
        """Payloads of one event type, in order."""
        with self._lock:
            return [e.data for e in self.events if e.type == event_type]

    def types(self) -> list[str]:
        with self._lock:
            return [e.type for e in self.events]

    def executing_nodes(self) -> list[Any]:
        """The `node` of every `executing` event (the final None included)."""
        return [d["node"] for d in self.of(Executing.type)]
