"""``GET /api/jobs`` and ``GET /api/jobs/{id}``: ComfyUI's unified job list, read from our job store.

The official frontend (its queue and history panels) reads these instead of /queue and /history.
Shapes follow ComfyUI's jobs API: a list item ``{id, status, priority, create_time,
execution_start_time, execution_end_time, execution_error, outputs_count, preview_output,
workflow_id}`` (keys whose value would be null are left out), the detail adds ``outputs``,
``execution_status`` (the /history ``status``) and ``workflow {prompt, extra_data}`` for finished
jobs; the list answer is ``{jobs, pagination: {offset, limit, total, has_more}}``.

States map as ComfyUI reports them: pending → pending, running → in_progress, success → completed,
error → failed, interrupted → cancelled. Jobs removed from the queue before they ran are gone from
ComfyUI's lists, so our ``cancelled`` store rows are not listed. Filtering, ordering and paging
happen in SQLite (``JobStore.list_jobs``), so a long history costs one page per request.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from engine.store import ERROR, INTERRUPTED, PENDING, RUNNING, SUCCESS, Job
from ui.api_files import ApiError

# ComfyUI job status -> our store status.
STORE_STATUS = {"pending": PENDING, "in_progress": RUNNING, "completed": SUCCESS, "failed": ERROR,
                "cancelled": INTERRUPTED}
JOB_STATUS = {v: k for k, v in STORE_STATUS.items()}
PREVIEWABLE = frozenset({"images", "video", "audio", "3d"})
THREE_D_EXTENSIONS = (".obj", ".fbx", ".gltf", ".glb", ".usdz")
END_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


def _previewable(media_type: str, item: dict) -> bool:
    fmt = item.get("format")
    name = item.get("filename")
    return (media_type in PREVIEWABLE
            or (isinstance(fmt, str) and fmt.startswith(("video/", "audio/")))
            or (isinstance(name, str) and name.lower().endswith(THREE_D_EXTENSIONS)))


def outputs_summary(outputs: dict) -> tuple[int, dict | None]:
    """(number of output items, the item to preview): an ``output``-type previewable item first,
    else the first previewable one, tagged with ``nodeId`` and ``mediaType`` (ComfyUI's rule)."""
    count, first, fallback = 0, None, None
    for node_id, node_out in outputs.items():
        if not isinstance(node_out, dict):
            continue
        for media_type, items in node_out.items():
            if media_type == "animated" or not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, dict):
                    continue
                count += 1
                if first is None and _previewable(media_type, item):
                    tagged = {**item, "nodeId": str(node_id), "mediaType": item.get("mediaType", media_type)}
                    if item.get("type") == "output":
                        first = tagged
                    elif fallback is None:
                        fallback = tagged
    return count, first or fallback


def _workflow_id(extra_data: dict) -> Any:
    pnginfo = extra_data.get("extra_pnginfo")
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    return workflow.get("id") if isinstance(workflow, dict) else None


def _error_payload(data: dict) -> dict:
    """The stored execution_error, with the fields the frontend's schema requires as strings/lists
    (our validation and restart failures name no node: ComfyUI's always do)."""
    error = dict(data)
    for key in ("node_id", "node_type", "exception_message", "exception_type"):
        error[key] = "" if error.get(key) is None else str(error[key])
    if not isinstance(error.get("traceback"), list):
        error["traceback"] = []
    return error


def _times(job: Job) -> tuple[Any, Any, dict | None]:
    """(start ms, end ms, execution_error) from the job's status messages, else its row times."""
    start, end, error = None, None, None
    for entry in job.messages or []:
        if not (isinstance(entry, (list, tuple)) and len(entry) >= 2 and isinstance(entry[1], dict)):
            continue
        event, data = entry[0], entry[1]
        if event == "execution_start":
            start = data.get("timestamp")
        elif event in END_EVENTS:
            end = data.get("timestamp")
            if event == "execution_error":
                error = _error_payload(data)
    if start is None and job.started is not None:
        start = int(job.started * 1000)
    if end is None and job.finished is not None:
        end = int(job.finished * 1000)
    return start, end, error


def job_item(job: Job) -> dict:
    """One job as a list item (ComfyUI's keys; null values left out)."""
    extra = job.extra_data if isinstance(job.extra_data, dict) else {}
    create_time = extra.get("create_time")
    item: dict[str, Any] = {
        "id": job.prompt_id, "status": JOB_STATUS.get(job.status, job.status), "priority": job.number,
        "create_time": create_time if isinstance(create_time, (int, float)) else int(job.created * 1000),
        "outputs_count": 0, "workflow_id": _workflow_id(extra)}
    if job.status in (SUCCESS, ERROR, INTERRUPTED):
        start, end, error = _times(job)
        count, preview = outputs_summary(job.outputs or {})
        item.update(execution_start_time=start, execution_end_time=end, execution_error=error,
                    outputs_count=count, preview_output=preview)
    return {k: v for k, v in item.items() if v is not None}


def _parse_statuses(value: str | None) -> list[str]:
    if not value:
        return list(STORE_STATUS)
    names = [s.strip().lower() for s in value.split(",") if s.strip()]
    bad = [s for s in names if s not in STORE_STATUS]
    if bad:
        raise ApiError(400, "invalid_parameter",
                       f"invalid status value(s): {', '.join(bad)}; use {', '.join(STORE_STATUS)}")
    return names


def _parse_int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer") from None


def list_jobs(queue: Any, params: dict[str, str]) -> dict:
    """The ``GET /api/jobs`` body for the query parameters (ComfyUI's rules and 400s)."""
    statuses = _parse_statuses(params.get("status"))
    sort_by = (params.get("sort_by") or "created_at").lower()
    sort_order = (params.get("sort_order") or "desc").lower()
    if sort_by not in ("created_at", "execution_duration"):
        raise ApiError(400, "invalid_parameter", "sort_by must be created_at or execution_duration")
    if sort_order not in ("asc", "desc"):
        raise ApiError(400, "invalid_parameter", "sort_order must be asc or desc")
    limit = _parse_int(params.get("limit"), "limit")
    if limit is not None and limit <= 0:
        raise ApiError(400, "invalid_parameter", "limit must be a positive integer")
    offset = max(0, _parse_int(params.get("offset"), "offset") or 0)
    jobs, total = queue.list_jobs([STORE_STATUS[s] for s in statuses], workflow_id=params.get("workflow_id") or None,
                                  by_duration=sort_by == "execution_duration", descending=sort_order == "desc",
                                  limit=limit, offset=offset)
    items = [job_item(j) for j in jobs]
    return {"jobs": items, "pagination": {"offset": offset, "limit": limit, "total": total,
                                          "has_more": offset + len(items) < total}}


def job_detail(queue: Any, job_id: str) -> dict:
    """``GET /api/jobs/{id}``: a finished job with its outputs, status and workflow; a queued one as
    its list item; 404 for an unknown (or cancelled-before-running) id."""
    job = queue.job(job_id)
    if job is None or job.status not in JOB_STATUS:
        raise ApiError(404, "not_found", f"job {job_id[:200]!r} not found")
    item = job_item(job)
    if job.status in (SUCCESS, ERROR, INTERRUPTED):
        entry = queue.history_item(job_id).get(job_id, {})
        item.update(outputs=job.outputs or {}, execution_status=entry.get("status"),
                    workflow={"prompt": job.prompt, "extra_data": job.extra_data})
    return item


def jobs_router(queue: Any) -> APIRouter:
    """``/jobs`` and ``/jobs/{id}`` (ComfyUI serves them under /api; we answer at both prefixes)."""
    r = APIRouter()

    @r.get("/jobs")
    async def get_jobs(request: Request) -> dict:
        return await run_in_threadpool(list_jobs, queue, dict(request.query_params))

    @r.get("/jobs/{job_id}")
    async def get_job(job_id: str) -> dict:
        return await run_in_threadpool(job_detail, queue, job_id)

    return r
