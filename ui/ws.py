"""WebSocket hub: ComfyUI's ``/ws?clientId=`` channel.

The job queue runs its worker in a thread and calls its subscribers there; WebSockets belong to the
asyncio loop. ``WsHub.on_queue_event`` is that subscriber: it never touches a socket, it only hands
the event to the loop with ``call_soon_threadsafe``. On the loop, each connection has its own
bounded outbox and sender task, so one slow or vanished browser never stalls the worker or the
other clients. A client that disconnects mid-job loses nothing: the job goes on and its history
entry holds the result.

Two ComfyUI behaviours clients rely on are reproduced here (see tests/test_clients_compat.py):
- the completion signal ``executing {node: null}`` comes from the queue only after it has recorded
  the job and broadcast ``status`` (queue_remaining already lowered), so a client that reads
  ``/history/{id}`` on that signal (ComfyUI's script examples, ComfyScript) always finds the entry;
  like ComfyUI, a prompt queued without a client_id sends no ``executing null`` at all (it would
  be broadcast, and ComfyScript's watcher crashes on a completion for a prompt it does not know);
- live-preview binary frames go only to jobs that want them (``wants_previews``: POST /prompt jobs
  only with ``extra_data.preview_method`` auto|latent2rgb|taesd, as ComfyUI's default is no
  previews and comfy-api-simplified takes any binary frame for a result image; editor jobs always).

Events arrive typed (engine/events.py); this module is the only place that frames them for the wire:
JSON text ``{"type", "data"}``, or the binary image frame for ``Preview`` / ``ResultImage``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import struct
import uuid
from typing import Any, Callable

from fastapi import WebSocket, WebSocketDisconnect

from engine.events import Event, Executing, ImageEvent, Preview, Status
from engine.formats.native import is_native

log = logging.getLogger("latentgraph.ws")

PREVIEW_IMAGE = 1          # binary event type: preview image (also used for result images)
OUTBOX_LIMIT = 2048        # messages buffered per client before it is dropped as too slow
# extra_data.preview_method values that turn live previews on for a /prompt job. ComfyUI's default
# (absent, "none", "default" = the launch flag, whose default is none) sends no preview frames.
PREVIEW_METHODS_ON = ("auto", "latent2rgb", "taesd")


class _Client:
    """One connected socket with its outbox and sender task."""

    def __init__(self, sid: str, ws: WebSocket) -> None:
        self.sid, self.ws = sid, ws
        self.outbox: asyncio.Queue = asyncio.Queue(OUTBOX_LIMIT)
        self.task: asyncio.Task | None = None

    async def pump(self) -> None:
        """Send queued frames in order until the socket fails or a None arrives."""
        while True:
            item = await self.outbox.get()
            if item is None:
                return
            try:
                if isinstance(item, bytes):
                    await self.ws.send_bytes(item)
                else:
                    await self.ws.send_text(item)
            except Exception:  # closed / reset: the receive loop cleans up
                return

    def offer(self, item: str | bytes) -> bool:
        try:
            self.outbox.put_nowait(item)
            return True
        except asyncio.QueueFull:
            return False


def image_frame(event: ImageEvent) -> bytes:
    """Binary frame: big-endian event type 1, image format (1 JPEG, 2 PNG), then the bytes."""
    return struct.pack(">II", PREVIEW_IMAGE, event.image_format) + bytes(event.image)


def text_frame(event: Event, sid: str | None = None) -> str:
    """JSON text frame ``{"type", "data"}``; a ``status`` sent on connect also carries the sid."""
    data = event.data if sid is None else {**event.data, "sid": sid}
    return json.dumps({"type": event.type, "data": data}, default=str)


def wants_previews(job: Any) -> bool:
    """Whether a job gets live-preview frames: asked for with ``extra_data.preview_method`` (POST
    /prompt, as ComfyUI), or queued by the editor (/lg/queue: a native document in extra_pnginfo)."""
    extra = getattr(job, "extra_data", None)
    if not isinstance(extra, dict):
        return True
    method = extra.get("preview_method")
    if isinstance(method, str) and method.lower() in PREVIEW_METHODS_ON:
        return True
    pnginfo = extra.get("extra_pnginfo")
    return isinstance(pnginfo, dict) and is_native(pnginfo.get("workflow"))


class WsHub:
    """Connected clients by sid, plus the bridge from queue-worker events to the sockets."""

    def __init__(self, queue_remaining: Callable[[], int]) -> None:
        self._queue_remaining = queue_remaining
        self._clients: dict[str, set[_Client]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the server's loop; events arriving before this are dropped (nobody listens)."""
        self._loop = loop

    async def close_all(self) -> None:
        for clients in list(self._clients.values()):
            for client in list(clients):
                client.offer(None)  # type: ignore[arg-type]
                try:
                    await client.ws.close(code=1001)
                except Exception:
                    pass
        self._clients.clear()

    @property
    def client_count(self) -> int:
        return sum(len(c) for c in self._clients.values())

    # -- connection ----------------------------------------------------------------------------
    async def serve(self, ws: WebSocket) -> None:
        """Run one ``/ws`` connection: register, send the initial status, read until it closes."""
        sid = (ws.query_params.get("clientId") or "").strip()[:128] or uuid.uuid4().hex
        await ws.accept()
        client = _Client(sid, ws)
        client.offer(text_frame(Status(await self._remaining()), sid))  # first frame, before broadcasts
        self._clients.setdefault(sid, set()).add(client)
        client.task = asyncio.create_task(client.pump())
        try:
            while True:
                message = await ws.receive()
                if message.get("type") == "websocket.disconnect":
                    break
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        group = self._clients.get(client.sid)
        if group is not None:
            group.discard(client)
            if not group:
                self._clients.pop(client.sid, None)
        client.offer(None)  # type: ignore[arg-type]
        if client.task is not None and not client.task.done():
            client.task.cancel()

    # -- sending (loop thread) ----------------------------------------------------------------
    def send(self, item: str | bytes, sid: str | None) -> None:
        """Queue a frame for one sid, or for everyone when sid is None (ComfyUI's broadcast)."""
        groups = list(self._clients.values()) if sid is None else [self._clients.get(sid, set())]
        for group in groups:
            for client in list(group):
                if not client.offer(item):
                    log.warning("dropping slow websocket client %s", client.sid)
                    self._drop(client)

    async def _remaining(self) -> int:
        try:
            return int(await asyncio.to_thread(self._queue_remaining))
        except Exception:
            log.exception("queue_remaining failed")
            return 0

    # -- bridge from the queue's worker thread -------------------------------------------------
    def on_queue_event(self, event: Event, job: Any = None) -> None:
        """JobQueue subscriber (any thread): forward the event into the loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._dispatch, event, job)
        except RuntimeError:  # loop closed while shutting down
            pass

    def _dispatch(self, event: Event, job: Any) -> None:
        client_id = getattr(job, "client_id", None)  # None: broadcast, as ComfyUI
        if isinstance(event, ImageEvent):
            # Result images always go; live previews only to jobs that want them.
            if event.image and (not isinstance(event, Preview) or wants_previews(job)):
                self.send(image_frame(event), client_id)
        elif isinstance(event, Status):
            self.send(text_frame(event), None)  # the queue's broadcast on every queue change
        elif isinstance(event, Executing) and event.node is None:
            # The queue sends this after saving the history and sending `status` (ComfyUI's order);
            # ComfyUI sends no completion signal for a client-less prompt.
            if client_id is not None:
                self.send(text_frame(event), client_id)
        else:
            self.send(text_frame(event), client_id)
