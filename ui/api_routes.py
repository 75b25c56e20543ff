"""JSON routes of the ComfyUI-compatible API (everything but files and the WebSocket).

Shapes follow ../shared/COMPAT.md "HTTP API" exactly, because third-party clients (comfy-cli,
ComfyScript, ComfyUI's script examples) parse them. Handlers are thin: submitting is
``engine.submit.SubmitService``, jobs are ``engine.queue.JobQueue``; blocking calls (SQLite,
listing model folders) run in the thread pool so the event loop keeps serving WebSockets.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import urllib.parse
from importlib import metadata
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from engine.formats.reading import LIMIT_HOOKS
from engine.submit import SubmitRejected, SubmitService
from ui.api_files import ApiError

COMFYUI_VERSION = "0.3.64"  # what clients check for feature support
MAX_JSON_BYTES = 16 * 1024 * 1024


def latentgraph_version() -> str:
    try:
        return metadata.version("latentgraph")
    except metadata.PackageNotFoundError:
        return "0.1.0"


async def read_json(request: Request, *, allow_empty: bool = False, allow_form: bool = False) -> Any:
    """The request body as JSON; bad JSON → 400, oversized → 413 (before parsing).

    ``allow_form``: a urlencoded form body is read too (comfy-catapult posts /free and /queue
    that way: ``unload_models=False&free_memory=False``, ``delete=a&delete=b&clear=True``).
    """
    body = await request.body()
    if len(body) > MAX_JSON_BYTES:
        raise ApiError(413, "too_large", f"JSON body exceeds {MAX_JSON_BYTES} bytes")
    if not body.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "invalid_json", "empty request body")
    try:
        return json.loads(body, **LIMIT_HOOKS)
    except (ValueError, RecursionError) as exc:  # bad JSON, NaN/Infinity, ±inf, an int over 4,300 digits
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if allow_form and ctype == "application/x-www-form-urlencoded":
            return _form_fields(body)
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None


def _form_fields(body: bytes) -> dict:
    """A urlencoded form as a JSON-like dict: 'true'/'false' → bool, ``delete`` always a list."""
    try:
        fields = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "invalid_json", f"request body is neither JSON nor a form: {exc}") from None

    def scalar(v: str) -> Any:
        return {"true": True, "false": False}.get(v.strip().lower(), v)

    return {k: (list(v) if k == "delete" else scalar(v[-1])) for k, v in fields.items()}


def _opt_int(value: Any, name: str, default: int | None) -> int | None:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer") from None


def _ids(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ApiError(400, "invalid_parameter", "delete must be a list of prompt ids")
    return [str(v) for v in value]


class Api:
    """The services the routes use (the queue itself announces queue changes to the hub)."""

    def __init__(self, paths: Any, queue: Any, registry: Any, executor: Any = None) -> None:
        self.paths, self.queue, self.registry = paths, queue, registry
        self.executor = executor if executor is not None else getattr(queue, "executor", None)
        self.submitter = SubmitService(queue, registry, paths)

    # -- /prompt -----------------------------------------------------------------------------
    def submit(self, body: Any) -> dict:
        """Check, validate and queue a prompt (engine.submit); ComfyUI's 200 body. A refusal raises
        SubmitRejected, answered as its 400 body by ui.server's error handlers."""
        return self.submitter.enqueue(self.submitter.check(body))

    def exec_info(self) -> dict:
        return {"exec_info": {"queue_remaining": int(self.queue.queue_remaining())}}

    # -- /queue, /history ---------------------------------------------------------------------
    def queue_state(self) -> dict:
        running, pending = self.queue.queue()
        return {"queue_running": running, "queue_pending": pending}

    def queue_post(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_parameter", "body must be an object")
        if body.get("clear"):
            self.queue.clear()
        if "delete" in body:
            self.queue.delete(_ids(body["delete"]))
        return {}

    def history_post(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_parameter", "body must be an object")
        if body.get("clear"):
            self.queue.clear_history()
        if "delete" in body:
            self.queue.delete_history(_ids(body["delete"]))
        return {}

    def history_one(self, prompt_id: str) -> dict:
        return self.queue.history_item(prompt_id) or {}

    # -- info ------------------------------------------------------------------------------------
    def object_info(self, class_type: str | None = None) -> dict:
        if class_type is None:
            return {nd.class_type: nd.object_info(self.paths) for nd in self.registry.all()}
        nd = self.registry.get(class_type)
        return {} if nd is None else {class_type: nd.object_info(self.paths)}

    def interrupt(self, body: Any) -> dict:
        prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
        self.queue.interrupt(None if prompt_id is None else str(prompt_id))
        return {}

    def free(self, body: Any) -> dict:
        """Drop cached models (and cached node outputs with free_memory), then empty device caches."""
        body = body if isinstance(body, dict) else {}
        unload, free_mem = bool(body.get("unload_models")), bool(body.get("free_memory"))
        if unload or free_mem:
            _clear_executor_caches(self.executor, unload, free_mem)
            try:
                from ldm import devices
                devices.soft_empty_cache()
            except ImportError:
                pass
        return {}

    def models(self, folder: str | None = None) -> list[str]:
        from engine.paths import MODEL_FOLDERS

        if folder is None:
            return list(MODEL_FOLDERS)
        if folder not in MODEL_FOLDERS:
            raise ApiError(404, "not_found", f"unknown model folder {folder!r}")
        return self.paths.list_files(folder)

    def embeddings(self) -> list[str]:
        return [os.path.splitext(n)[0] for n in self.paths.list_files("embeddings")]


def _clear_executor_caches(executor: Any, unload: bool, free_mem: bool) -> None:
    """Ask the executor to forget models / outputs; tolerant of which API it offers."""
    if executor is None:
        return
    if hasattr(executor, "free"):
        executor.free(unload_models=unload, free_memory=free_mem)
        return
    targets = []
    if unload:
        targets.append(getattr(executor, "models", None))
    if free_mem:
        targets += [getattr(executor, "models", None), getattr(executor, "cache", None)]
    for cache in targets:
        if cache is not None and hasattr(cache, "clear"):
            cache.clear()


def _ram() -> tuple[int, int]:
    """(total, available) bytes from /proc/meminfo or sysconf (no psutil dependency)."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        total = int(info["MemTotal"].split()[0]) * 1024
        free = int(info.get("MemAvailable", info["MemFree"]).split()[0]) * 1024
        return total, free
    except (OSError, KeyError, ValueError):
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            return page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return 0, 0


def _devices(ram_total: int, ram_free: int) -> list[dict]:
    """The compute device as ComfyUI lists it; torch is only consulted if already imported."""
    torch = sys.modules.get("torch")
    dev = {"name": "cpu", "type": "cpu", "index": None, "vram_total": ram_total, "vram_free": ram_free,
           "torch_vram_total": ram_total, "torch_vram_free": ram_free}
    if torch is None:
        return [dev]
    try:
        from ldm import devices as ldm_devices
        device = ldm_devices.get_device()
    except Exception:
        device = torch.device("cpu")
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        reserved = torch.cuda.memory_reserved(device)
        dev = {"name": f"{device} {torch.cuda.get_device_name(device)}", "type": "cuda",
               "index": device.index or 0, "vram_total": total, "vram_free": free,
               "torch_vram_total": reserved, "torch_vram_free": reserved - torch.cuda.memory_allocated(device)}
    elif device.type != "cpu":
        dev = {**dev, "name": str(device), "type": device.type}
    return [dev]


def system_stats() -> dict:
    total, free = _ram()
    torch = sys.modules.get("torch")
    try:
        torch_version = torch.__version__ if torch is not None else metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = ""
    return {"system": {"os": os.name, "ram_total": total,
                       "ram_free": free, "comfyui_version": COMFYUI_VERSION,
                       "latentgraph_version": latentgraph_version(),
                       "python_version": sys.version, "pytorch_version": str(torch_version),
                       "embedded_python": False, "argv": list(sys.argv), "platform": platform.platform()},
            "devices": _devices(total, free)}


def api_router(api: Api) -> APIRouter:
    """The JSON routes; included once at ``/`` and once under ``/api``."""
    r = APIRouter()
    _add_job_routes(r, api)
    _add_info_routes(r, api)
    _add_probe_routes(r)
    return r


def _add_job_routes(r: APIRouter, api: Api) -> None:
    """/prompt, /queue, /history, /interrupt: submitting and inspecting jobs."""
    th = run_in_threadpool

    @r.post("/prompt")
    async def post_prompt(request: Request) -> dict:
        return await th(api.submit, await read_json(request))

    @r.get("/prompt")
    async def get_prompt() -> dict:
        return await th(api.exec_info)

    @r.get("/queue")
    async def get_queue() -> dict:
        return await th(api.queue_state)

    @r.post("/queue")
    async def post_queue(request: Request) -> dict:
        return await th(api.queue_post, await read_json(request, allow_form=True))

    @r.get("/history")
    async def get_history(request: Request) -> dict:
        q = request.query_params
        max_items = _opt_int(q.get("max_items"), "max_items", None)
        offset = _opt_int(q.get("offset"), "offset", 0) or 0
        return await th(api.queue.history, max_items, max(0, offset))

    @r.get("/history/{prompt_id}")
    async def get_history_one(prompt_id: str) -> dict:
        return await th(api.history_one, prompt_id)

    @r.post("/history")
    async def post_history(request: Request) -> dict:
        return await th(api.history_post, await read_json(request, allow_form=True))

    @r.post("/interrupt")
    async def post_interrupt(request: Request) -> dict:
        return await th(api.interrupt, await read_json(request, allow_empty=True, allow_form=True))


def _add_info_routes(r: APIRouter, api: Api) -> None:
    """/object_info, /system_stats, /free, /embeddings, /models: what clients read to build graphs."""
    th = run_in_threadpool

    @r.get("/object_info")
    async def object_info() -> dict:
        return await th(api.object_info)

    @r.get("/object_info/{class_type}")
    async def object_info_one(class_type: str) -> dict:
        return await th(api.object_info, class_type)

    @r.get("/system_stats")
    async def get_system_stats() -> dict:
        return await th(system_stats)

    @r.post("/free")
    async def post_free(request: Request) -> dict:
        return await th(api.free, await read_json(request, allow_empty=True, allow_form=True))

    @r.get("/embeddings")
    async def get_embeddings() -> list:
        return await th(api.embeddings)

    @r.get("/models")
    async def get_models() -> list:
        return await th(api.models)

    @r.get("/models/{folder}")
    async def get_models_folder(folder: str) -> list:
        return await th(api.models, folder)


def _add_probe_routes(r: APIRouter) -> None:
    """Small routes frontends probe at start-up; answering them avoids noisy errors."""

    @r.get("/extensions")
    async def extensions() -> list:
        return []

    @r.get("/features")
    async def features() -> dict:
        return {"supports_preview_metadata": False, "max_upload_size": 50 * 1024 * 1024}

    # What ComfyUI answers when nothing is installed (no custom-node templates, translations or
    # shared subgraphs); the official frontend iterates these objects at start-up.
    @r.get("/workflow_templates")
    async def workflow_templates() -> dict:
        return {}

    @r.get("/i18n")
    async def i18n() -> dict:
        return {}

    @r.get("/global_subgraphs")
    async def global_subgraphs() -> dict:
        return {}
