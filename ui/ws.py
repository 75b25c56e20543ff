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
- live-preview binary frames are not sent for prompt ids registered with ``mute_previews`` (POST
  /prompt without ``extra_data.preview_method``: ComfyUI's default is no previews, and
  comfy-api-simplified takes any binary frame for a result image).
"""
from __future__ import annotations

import asyncio
import json
import logging
import struct
import threading
import uuid
from collections import OrderedDict
from typing import Any, Callable

from fastapi import WebSocket, WebSocketDisconnect

log = logging.getLogger("latentgraph.ws")

PREVIEW_IMAGE = 1          # binary event type: preview image
FORMAT_JPEG = 1            # image format inside a preview frame
FORMAT_PNG = 2
OUTBOX_LIMIT = 2048        # messages buffered per client before it is dropped as too slow
MUTED_LIMIT = 10000        # prompt ids remembered as "no previews" (cancelled jobs never finish)


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


def preview_frame(image: bytes, image_format: int = FORMAT_JPEG) -> bytes:
    """Binary preview frame: big-endian event type 1, image format (1 JPEG, 2 PNG), then the bytes."""
    return struct.pack(">II", PREVIEW_IMAGE, image_format) + bytes(image)


class WsHub:
    """Connected clients by sid, plus the bridge from queue-worker events to the sockets."""

    def __init__(self, queue_remaining: Callable[[], int]) -> None:
        self._queue_remaining = queue_remaining
        self._clients: dict[str, set[_Client]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._muted: OrderedDict[str, None] = OrderedDict()  # prompt ids whose previews are dropped
        self._muted_lock = threading.Lock()                   # touched by HTTP threads and the loop

    # -- previews per prompt ------------------------------------------------------------------
    def mute_previews(self, prompt_id: str) -> bool:
        """Drop preview frames of this prompt; False when it was already muted."""
        with self._muted_lock:
            if prompt_id in self._muted:
                return False
            self._muted[prompt_id] = None
            while len(self._muted) > MUTED_LIMIT:
                self._muted.popitem(last=False)
            return True

    def unmute_previews(self, prompt_id: str) -> None:
        with self._muted_lock:
            self._muted.pop(prompt_id, None)

    def previews_muted(self, prompt_id: Any) -> bool:
        with self._muted_lock:
            return prompt_id in self._muted

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
        client.offer(self._status_text(await self._remaining(), sid))  # first frame, before broadcasts
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

    def send_json(self, event: str, data: Any, sid: str | None) -> None:
        self.send(json.dumps({"type": event, "data": data}, default=str), sid)

    async def _remaining(self) -> int:
        try:
            return int(await asyncio.to_thread(self._queue_remaining))
        except Exception:
            log.exception("queue_remaining failed")
            return 0

    @staticmethod
    def _status_text(remaining: int, sid: str | None = None) -> str:
        data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": remaining}}}
        if sid is not None:
            data["sid"] = sid
        return json.dumps({"type": "status", "data": data})

    # -- bridge from the queue's worker thread -------------------------------------------------
    def on_queue_event(self, event: str, data: Any, client_id: str | None = None) -> None:
        """JobQueue subscriber (any thread): forward the event into the loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._dispatch, event, data, client_id)
        except RuntimeError:  # loop closed while shutting down
            pass

    def _dispatch(self, event: str, data: Any, client_id: str | None) -> None:
        if event == "preview":
            data = data if isinstance(data, dict) else {}
            jpeg = data.get("jpeg")
            if jpeg and not self.previews_muted(data.get("prompt_id")):
                self.send(preview_frame(jpeg), client_id)
        elif event == "image":  # SaveImageWebsocket: a result, so sent even with previews muted
            png = data.get("png") if isinstance(data, dict) else None
            if png:
                self.send(preview_frame(png, FORMAT_PNG), client_id)
        elif event == "status":
            self.send_json("status", data, None)  # the queue's broadcast on every queue change
        elif event == "executing" and isinstance(data, dict) and data.get("node") is None:
            # The queue sends this after saving the history and sending `status` (ComfyUI's order).
            self.unmute_previews(data.get("prompt_id"))
            if client_id is not None:  # ComfyUI sends no completion signal for a client-less prompt
                self.send_json(event, data, client_id)
        else:
            self.send_json(event, data, client_id)

