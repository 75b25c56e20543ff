"""HTTP routes used only by the browser graph editor (everything else goes through the ComfyUI API).

- ``POST /lg/queue``   {workflow: native document, client_id, count?, front?}
  converts the editor document to the canonical prompt in Python (``engine.formats.native``),
  then checks, validates and queues it through ``engine.submit.SubmitService`` exactly as POST
  /prompt does, with the document in ``extra_data.extra_pnginfo.workflow`` so SaveImage embeds it.
  → ``{prompt_ids: [...], numbers: [...]}`` or 400 ``{error, node_errors}`` in ComfyUI's shape.
- ``POST /lg/import``  JSON body (any supported format) or a multipart ``file`` (.json / .png)
  → ``{workflow: native document, kind, summary: {nodes, links, groups, frontend: {type: n}, unknown}}``.
- ``POST /lg/export {workflow: native document}`` → ``{workflow: ComfyUI UI workflow}`` (lossless for
  what an import kept; see engine/formats/comfy_ui_export.py).
- ``GET /lg/workflows`` → ``{workflows: [{name, title}]}`` from the example folder;
  ``GET /lg/workflows/{name}`` → ``{name, title, workflow}`` (plain safe names only).

The browser is presentation only: conversion, validation and execution all happen here and in the
engine, exactly as for API clients.
"""
from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from engine.submit import SubmitRejected, SubmitService, error_body
from ui.api_routes import read_json
from engine.formats import FormatError, to_native
from engine.formats.comfy_ui_export import native_to_ui
from engine.formats.frontend_nodes import FRONTEND_ONLY
from engine.formats.png import PNG_SIGNATURE
from engine.formats.reading import JsonSyntaxError, decode_text, parse_json

DEFAULT_WORKFLOWS_DIR = Path(__file__).resolve().parent.parent / "workflows"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,80}$")
MAX_COUNT = 100
MAX_IMPORT_BYTES = 64 * 1024 * 1024


def _bad(body: dict, status: int = 400) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def workflow_to_prompt(doc: Any, registry: Any) -> dict:
    """An editor document → the canonical API prompt; SubmitRejected (ComfyUI's 400 body) when it
    is not one or cannot be converted. Validation is the submit service's."""
    from engine.formats import native

    if not native.is_native(doc):
        raise SubmitRejected(error_body("invalid_prompt", "The workflow is not a Latentgraph editor document."))
    try:
        return native.to_prompt(doc, registry)
    except Exception as exc:  # conversion errors are user errors: report them, never 500
        raise SubmitRejected(error_body("invalid_prompt", f"Cannot convert the workflow: {exc}",
                                        type(exc).__name__)) from None


def submit_workflow(body: dict, submitter: SubmitService, registry: Any) -> dict:
    """The /lg/queue work (blocking: conversion, validation, SQLite) → ``{prompt_ids, numbers,
    node_errors}``; the document is checked once and queued ``count`` times."""
    doc = body["workflow"]
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int):
        raise SubmitRejected(error_body("invalid_prompt", "count must be an integer."))
    request = {"prompt": workflow_to_prompt(doc, registry),
               "extra_data": {"extra_pnginfo": {"workflow": doc}}}
    request.update({k: body[k] for k in ("client_id", "front") if body.get(k) is not None})
    checked = submitter.check(request)
    ids, numbers = [], []
    for i in range(max(1, min(MAX_COUNT, count))):
        queued = submitter.enqueue(checked, prompt_id=None if i == 0 else str(uuid.uuid4()))
        ids.append(queued["prompt_id"])
        numbers.append(queued["number"])
    return {"prompt_ids": ids, "numbers": numbers, "node_errors": {}}


def _read_title(doc: dict, name: str) -> str:
    """A workflow's display title: its own title/meta, else the file name made readable."""
    for key in ("title", "name"):
        if isinstance(doc.get(key), str) and doc[key].strip():
            return doc[key].strip()
    extra = doc.get("extra") if isinstance(doc.get("extra"), dict) else {}
    if isinstance(extra.get("title"), str) and extra["title"].strip():
        return extra["title"].strip()
    return name.replace("_", " ").replace("-", " ").strip().capitalize()


def list_workflows(folder: Path) -> list[dict]:
    """The example workflows (``*.json`` directly in ``folder``), default first, then by name."""
    items = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if not _SAFE_NAME.match(path.stem):
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict):
            items.append({"name": path.stem, "title": _read_title(doc, path.stem)})
    items.sort(key=lambda it: (it["name"] != "default", it["name"]))
    return items


async def _queue_route(request: Request, submitter: SubmitService, registry: Any) -> JSONResponse:
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("workflow"), dict):
        return _bad(error_body("no_prompt", "No workflow in the request."))
    return JSONResponse(await asyncio.to_thread(submit_workflow, body, submitter, registry))


async def _import_body(request: Request) -> tuple[Any, str]:
    """Read the import request: a JSON body, or a multipart ``file`` (JSON text or PNG bytes)."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file") or form.get("image")
        if upload is None or not hasattr(upload, "read"):
            raise ValueError("No file in the upload.")
        data = await upload.read()
        return data, str(getattr(upload, "filename", "") or "")
    data = await request.body()
    return data, "body.json"


def _parse_import(data: bytes, filename: str) -> Any:
    """Turn uploaded bytes into what ``to_native`` reads: a dict for JSON, the bytes for PNG.

    JSON goes through the engine's reader, so hostile files (deep nesting, huge numbers, NaN, bad
    UTF-8) are refused with a message like any other unreadable file.
    """
    if len(data) > MAX_IMPORT_BYTES:
        raise ValueError("The file is too large.")
    if data.startswith(PNG_SIGNATURE):
        return data
    name = filename or "The file"
    try:
        obj = parse_json(decode_text(data))
    except JsonSyntaxError as exc:
        if not (filename.lower().endswith(".json") or data.lstrip()[:1] in (b"{", b"[")):
            raise ValueError(f"{name} is neither JSON nor PNG.") from None
        raise ValueError(f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from None
    except FormatError as exc:
        raise ValueError(f"{name} cannot be read: {exc}.") from None
    if not isinstance(obj, dict):
        raise ValueError("The JSON is not a workflow object.")
    return obj


async def _import_route(request: Request, paths: Any, registry: Any) -> JSONResponse:
    try:
        data, filename = await _import_body(request)
        source = _parse_import(data, filename)
    except ValueError as exc:
        return _bad({"error": str(exc)})
    try:
        doc, kind = await asyncio.to_thread(to_native, source, registry)
    except Exception as exc:  # any format problem is the user's file, not a server crash
        return _bad({"error": f"Cannot import {filename or 'the file'}: {exc}"})
    return JSONResponse({"workflow": doc, "kind": kind, "summary": import_summary(doc, registry)})


def import_summary(doc: dict, registry: Any) -> dict:
    """What an import kept, for the editor's message: node/link/group counts, the frontend-only
    nodes by type, and the node types this server does not know (kept, but they cannot run)."""
    kinds: dict[str, int] = {}
    unknown: set[str] = set()
    for node in doc.get("nodes") or []:
        kind = str(node.get("type"))
        if kind in FRONTEND_ONLY:
            kinds[kind] = kinds.get(kind, 0) + 1
        elif registry.get(kind) is None:
            unknown.add(kind)
    return {"nodes": len(doc.get("nodes") or []), "links": len(doc.get("links") or []),
            "groups": len(doc.get("groups") or []), "frontend": kinds, "unknown": sorted(unknown)}


async def _export_route(request: Request, registry: Any) -> JSONResponse:
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("workflow"), dict):
        return _bad({"error": "No workflow in the request."})
    try:
        return JSONResponse({"workflow": await asyncio.to_thread(native_to_ui, body["workflow"], registry)})
    except (FormatError, AttributeError, KeyError, TypeError, ValueError) as exc:  # a malformed document
        return _bad({"error": f"Cannot export the workflow: {exc}"})


def make_router(paths: Any, queue: Any, registry: Any,
                workflows_dir: Path | None = None) -> APIRouter:
    """Build the ``/lg/*`` routes bound to one engine (paths, job queue, node registry)."""
    folder = Path(workflows_dir) if workflows_dir else DEFAULT_WORKFLOWS_DIR
    router = APIRouter()
    submitter = SubmitService(queue, registry, paths)

    @router.post("/lg/queue")
    async def lg_queue(request: Request) -> JSONResponse:
        return await _queue_route(request, submitter, registry)

    @router.post("/lg/import")
    async def lg_import(request: Request) -> JSONResponse:
        return await _import_route(request, paths, registry)

    @router.post("/lg/export")
    async def lg_export(request: Request) -> JSONResponse:
        return await _export_route(request, registry)

    @router.get("/lg/workflows")
    async def lg_workflows() -> JSONResponse:
        return JSONResponse({"workflows": list_workflows(folder)})

    @router.get("/lg/workflows/{name}")
    async def lg_workflow(name: str) -> JSONResponse:
        stem = name[:-5] if name.endswith(".json") else name
        path = folder / f"{stem}.json"
        if not _SAFE_NAME.match(stem) or not path.is_file():
            return _bad({"error": f"No example workflow named {name!r}."}, 404)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            doc, _kind = to_native(raw, registry)
        except Exception as exc:
            return _bad({"error": f"Cannot read workflow {stem!r}: {exc}"}, 500)
        return JSONResponse({"name": stem, "title": _read_title(raw, stem), "workflow": doc})

    return router
