"""The smaller routes ComfyUI's official frontend reads: model folders, model metadata, server logs.

- ``GET /internal/folder_paths`` → ``{folder: [directories]}``.
- ``GET /internal/logs`` → the recent log lines as one JSON string (``"<time> - <line>"`` each);
  ``GET /internal/logs/raw`` → ``{entries: [{t, m}], size: {cols, rows}}``;
  ``PATCH /internal/logs/subscribe {clientId, enabled}`` → that WebSocket client receives each new
  line as a ``logs`` message ``{entries: [{t, m}], size}`` (the frontend's terminal panel).
  The lines come from a bounded ring buffer (``LogRing``, the last 1,000 records) on the root
  logger, so they are what the server logs (warnings and errors unless a logger is set lower),
  not every byte printed on stderr as ComfyUI's captured console has.
- ``GET /experiment/models`` → ``[{name, folders}]`` (``configs`` left out, as ComfyUI does);
  ``GET /experiment/models/{folder}`` → ``[{name, pathIndex, modified, created, size}]``.
- ``GET /view_metadata/{folder}?filename=`` → a safetensors file's ``__metadata__`` strings, read
  from its header without torch; 404 when there is none (ComfyUI's answers), the name confined to
  the model folder by ``engine.paths.safe_join``.
- ``GET /templates/index.json`` → our example workflows (``workflows/*.json``) as one template
  module ``[{moduleName: "default", title, type, templates: [{name, title, description, mediaType,
  mediaSubtype}]}]`` (the frontend's template index format); ``GET /templates/{name}.json`` → that
  example converted to ComfyUI's UI workflow (``engine.formats.comfy_ui_export``). No thumbnails
  yet: the frontend's ``/templates/{name}-1.webp`` requests get a 404. Served at ``/templates``
  only, where ComfyUI's frontend package serves its own.

``/internal/*`` is only mounted at ``/internal`` (ComfyUI serves it there, not under ``/api``).
"""
from __future__ import annotations

import json
import logging
import shutil
import threading
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from engine.errors import ModelNotFound, PathRefused
from engine.events import Logs
from engine.formats.comfy_ui_export import native_to_ui
from engine.model_hashes import read_safetensors_header
from engine.paths import MODEL_FOLDERS
from ui.api_files import ApiError, check_part
from ui.api_routes import read_json
from ui.editor_routes import DEFAULT_WORKFLOWS_DIR, _SAFE_NAME, list_workflows

log = logging.getLogger("latentgraph.server")
LOG_CAPACITY = 1000
METADATA_HEADER_LIMIT = 8 * 1024 * 1024  # a header beyond this is not metadata worth showing
HIDDEN_MODEL_FOLDERS = ("configs",)


class LogRing(logging.Handler):
    """The last ``capacity`` log records as ComfyUI's ``{t: ISO time, m: line}`` entries; listeners
    (called in the logging thread, so they must be quick and thread-safe) see each new entry."""

    def __init__(self, capacity: int = LOG_CAPACITY) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s [%(name)s] %(message)s"))
        self.entries: deque[dict] = deque(maxlen=capacity)
        self._listeners: list[Callable[[dict], None]] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = {"t": datetime.fromtimestamp(record.created).isoformat(), "m": self.format(record) + "\n"}
        except Exception:  # noqa: BLE001 — a bad log call must not break the caller
            return
        with self._guard:
            self.entries.append(entry)
            listeners = list(self._listeners)
        for fn in listeners:
            fn(entry)

    def snapshot(self) -> list[dict]:
        with self._guard:
            return list(self.entries)

    def listen(self, fn: Callable[[dict], None]) -> None:
        with self._guard:
            self._listeners.append(fn)


_RING: LogRing | None = None
_RING_LOCK = threading.Lock()


def log_ring() -> LogRing:
    """The process's ring, attached to the root logger on first use. When the root logger had no
    handler, Python's last-resort stderr handler is attached with it, so warnings still reach the
    console exactly as before (a root handler would otherwise switch that fallback off)."""
    global _RING
    with _RING_LOCK:
        if _RING is None:
            root = logging.getLogger()
            if not root.handlers and logging.lastResort is not None:
                root.addHandler(logging.lastResort)
            _RING = LogRing()
            root.addHandler(_RING)
        return _RING


def terminal_size() -> dict:
    size = shutil.get_terminal_size()
    return {"cols": size.columns, "rows": size.lines}


class LogFeed:
    """Pushes new log entries to the WebSocket clients that subscribed (``hub.post`` is the
    thread-safe way into the loop)."""

    def __init__(self, ring: LogRing, hub: Any) -> None:
        self.hub, self.sids = hub, set()
        self._lock = threading.Lock()
        ring.listen(self._on_entry)

    def subscribe(self, body: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("clientId"), str):
            raise ApiError(400, "invalid_parameter", "body must be {clientId: string, enabled: bool}")
        with self._lock:
            (self.sids.add if body.get("enabled") else self.sids.discard)(body["clientId"])

    def _on_entry(self, entry: dict) -> None:
        with self._lock:
            sids = list(self.sids)
        if self.hub is None or not sids:
            return
        event = Logs(entries=[entry], size=terminal_size())
        for sid in sids:
            self.hub.post(event, sid)


# ------------------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------------------
def model_folders(paths: Any) -> list[dict]:
    return [{"name": f, "folders": [str(d) for d in paths.folder_dirs(f)]}
            for f in MODEL_FOLDERS if f not in HIDDEN_MODEL_FOLDERS]


def model_files(paths: Any, folder: str) -> list[dict]:
    """Every model file of ``folder`` with the index of the directory it is in (ComfyUI's
    ``pathIndex``), relative name with '/', times in seconds and size."""
    if folder not in MODEL_FOLDERS:
        raise ApiError(404, "not_found", f"unknown model folder {folder[:100]!r}")
    out: list[dict] = []
    for index, name, path in paths.walk_files(folder):
        try:
            st = path.stat()
        except OSError:
            continue
        out.append({"name": name, "pathIndex": index, "modified": st.st_mtime, "created": st.st_ctime,
                    "size": st.st_size})
    return out


def view_metadata(paths: Any, folder: str, filename: str) -> dict:
    """The ``__metadata__`` of a safetensors model; 404 when absent, 403 for an escaping name."""
    if folder not in MODEL_FOLDERS or not filename or not filename.lower().endswith(".safetensors"):
        raise ApiError(404, "not_found", "no safetensors metadata for this name")
    check_part(filename, "filename")
    try:
        path = paths.model_path(folder, filename)
        header, _ = read_safetensors_header(path, METADATA_HEADER_LIMIT)
    except PathRefused as exc:
        raise ApiError(403, "path_refused", str(exc)) from None
    except ModelNotFound:
        raise ApiError(404, "not_found", f"{folder}/{filename[:200]} not found") from None
    except (ValueError, OSError) as exc:  # no header: the message names no server path
        raise ApiError(404, "not_found", f"no safetensors header: {str(exc)[:200]}") from None
    meta = header.get("__metadata__")
    if not isinstance(meta, dict):
        raise ApiError(404, "not_found", "the file has no __metadata__")
    return meta


def internal_router(paths: Any, hub: Any) -> APIRouter:
    """``/logs``, ``/logs/raw``, ``/logs/subscribe`` and ``/folder_paths``, included at ``/internal``."""
    ring = log_ring()
    feed = LogFeed(ring, hub)
    r = APIRouter()

    @r.get("/logs")
    async def get_logs() -> str:
        return "".join(f"{e['t']} - {e['m']}" for e in ring.snapshot())

    @r.get("/logs/raw")
    async def get_logs_raw() -> dict:
        return {"entries": ring.snapshot(), "size": terminal_size()}

    @r.patch("/logs/subscribe")
    async def subscribe(request: Request) -> Response:
        feed.subscribe(await read_json(request))
        return Response(status_code=200)

    @r.get("/folder_paths")
    async def folder_paths() -> dict:
        return {f: [str(d) for d in paths.folder_dirs(f)] for f in MODEL_FOLDERS}

    return r


def misc_router(paths: Any) -> APIRouter:
    """``/experiment/models[/{folder}]`` and ``/view_metadata/{folder}`` (at ``/`` and ``/api``)."""
    r = APIRouter()
    th = run_in_threadpool

    @r.get("/experiment/models")
    async def experiment_models() -> list:
        return model_folders(paths)

    @r.get("/experiment/models/{folder}")
    async def experiment_models_folder(folder: str) -> list:
        return await th(model_files, paths, folder)

    @r.get("/view_metadata/{folder}")
    async def get_view_metadata(request: Request, folder: str) -> dict:
        return await th(view_metadata, paths, folder, request.query_params.get("filename", ""))

    return r



def template_index(folder: Path) -> list[dict]:
    templates = [{"name": w["name"], "title": w["title"], "description": w["title"], "mediaType": "image",
                  "mediaSubtype": "webp"} for w in list_workflows(folder)]
    return [{"moduleName": "default", "title": "Latentgraph examples", "type": "image", "templates": templates}]


def template_workflow(folder: Path, filename: str, registry: Any) -> dict:
    """``<name>.json`` of the example folder as a ComfyUI UI workflow; 404 for anything else."""
    name = filename[:-5] if filename.endswith(".json") else ""
    path = folder / f"{name}.json"
    if not _SAFE_NAME.match(name) or not path.is_file():
        raise ApiError(404, "not_found", f"no template {filename[:100]!r}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return native_to_ui(doc, registry)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("template %s cannot be offered: %s", path.name, exc)
        raise ApiError(404, "not_found", f"template {name!r} cannot be read") from None


def templates_router(registry: Any, folder: str | Path | None = None) -> APIRouter:
    """``/templates/index.json`` and ``/templates/{name}.json``; included at ``/`` only."""
    folder = Path(folder) if folder else DEFAULT_WORKFLOWS_DIR
    r = APIRouter()

    @r.get("/templates/index.json")
    async def index() -> list:
        return await run_in_threadpool(template_index, folder)

    @r.get("/templates/{filename}")
    async def template(filename: str) -> dict:
        return await run_in_threadpool(template_workflow, folder, filename, registry)

    return r
