"""GET /api/jobs and /api/jobs/{id} (ui/api_jobs.py over JobStore.list_jobs): ComfyUI's job shapes,
status names, filters, ordering and paging. Jobs are written straight into the store in every
state (no worker runs), with known times, so every assertion is exact."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.executor import Executor
from engine.paths import Paths
from engine.queue import JobQueue
from engine.store import ERROR, INTERRUPTED, RUNNING, SUCCESS, Counter
from tests.stub_nodes import make_registry

IMAGE = {"filename": "a.png", "subfolder": "", "type": "output"}
TEMP = {"filename": "t.png", "subfolder": "", "type": "temp"}


def _add(store, pid: str, created: float, *, status: str | None = None, run: tuple[int, int] | None = None,
         outputs: dict | None = None, workflow_id: str | None = None, error: dict | None = None) -> None:
    extra = {"extra_pnginfo": {"workflow": {"id": workflow_id}}} if workflow_id else {}
    store.insert(prompt_id=pid, number=None, front=False, counter=COUNTER, prompt={"1": {"class_type": "X"}},
                 extra_data=extra, client_id=None, targets=None, outputs_to_execute=["1"])
    store._conn.execute("UPDATE jobs SET created=? WHERE prompt_id=?", (created, pid))
    if status is None:
        return
    if status == RUNNING:
        store._conn.execute("UPDATE jobs SET status=?, started=? WHERE prompt_id=?", (RUNNING, created + 1, pid))
        return
    start, end = run
    end_event = {SUCCESS: "execution_success", ERROR: "execution_error",
                 INTERRUPTED: "execution_interrupted"}[status]
    messages = [["execution_start", {"prompt_id": pid, "timestamp": start}],
                [end_event, {"prompt_id": pid, "timestamp": end, **(error or {})}]]
    store.finish(pid, status=status, outputs=outputs or {}, messages=messages, error=error, timings={})
    store._conn.execute("UPDATE jobs SET started=?, finished=? WHERE prompt_id=?", (start / 1000, end / 1000, pid))


COUNTER = Counter(1)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from ui.server import create_app

    base = tmp_path_factory.mktemp("jobs")
    paths = Paths(base / "m", base / "i", base / "o", base / "t", base / "u")
    paths.ensure_dirs()
    registry = make_registry()
    queue = JobQueue(Path(paths.user_dir) / "db.sqlite", Executor(registry, paths))
    s = queue.store
    _add(s, "ok-old", 100.0, status=SUCCESS, run=(101_000, 111_000), outputs={"9": {"images": [TEMP, IMAGE]}},
         workflow_id="wf-a")
    _add(s, "failed", 200.0, status=ERROR, run=(201_000, 202_000),
         error={"node_id": None, "node_type": None, "exception_message": "boom", "exception_type": "E",
                "traceback": None, "executed": []})
    _add(s, "stopped", 300.0, status=INTERRUPTED, run=(301_000, 331_000))
    _add(s, "ok-new", 400.0, status=SUCCESS, run=(401_000, 403_000), outputs={"9": {"images": [TEMP]}},
         workflow_id="wf-a")
    _add(s, "running", 500.0, status=RUNNING)
    _add(s, "pending", 600.0)
    _add(s, "removed", 700.0)
    s.cancel(["removed"])
    app = create_app(paths, queue, registry, start_queue=False, editor=False)
    with TestClient(app) as c:
        yield c
    queue.close()


def _ids(body: dict) -> list[str]:
    return [j["id"] for j in body["jobs"]]


def test_list_shape_and_status_names(client):
    body = client.get("/api/jobs").json()
    assert _ids(body) == ["pending", "running", "ok-new", "stopped", "failed", "ok-old"]  # newest first
    assert body["pagination"] == {"offset": 0, "limit": None, "total": 6, "has_more": False}
    by_id = {j["id"]: j for j in body["jobs"]}
    assert {k: v["status"] for k, v in by_id.items()} == {
        "pending": "pending", "running": "in_progress", "ok-new": "completed", "stopped": "cancelled",
        "failed": "failed", "ok-old": "completed"}
    assert by_id["pending"] == {"id": "pending", "status": "pending", "priority": by_id["pending"]["priority"],
                                "create_time": 600_000, "outputs_count": 0}
    old = by_id["ok-old"]
    assert old["execution_start_time"] == 101_000 and old["execution_end_time"] == 111_000
    assert old["outputs_count"] == 2 and old["workflow_id"] == "wf-a"
    assert old["preview_output"] == {**IMAGE, "nodeId": "9", "mediaType": "images"}  # output before temp
    assert by_id["ok-new"]["preview_output"]["type"] == "temp"  # no output item: the first previewable
    error = by_id["failed"]["execution_error"]
    assert error["exception_message"] == "boom" and error["node_id"] == "" and error["traceback"] == []
    assert "execution_error" not in old and "preview_output" not in by_id["stopped"]


def test_status_filter_sort_and_paging(client):
    history = client.get("/api/jobs?status=completed,failed,cancelled&limit=2&offset=1").json()
    assert _ids(history) == ["stopped", "failed"]
    assert history["pagination"] == {"offset": 1, "limit": 2, "total": 4, "has_more": True}
    last = client.get("/api/jobs?status=completed,failed,cancelled&limit=2&offset=2").json()
    assert _ids(last) == ["failed", "ok-old"] and last["pagination"]["has_more"] is False
    assert _ids(client.get("/api/jobs?status=in_progress,pending").json()) == ["pending", "running"]
    assert _ids(client.get("/jobs?status=completed&sort_order=asc").json()) == ["ok-old", "ok-new"]
    by_time = client.get("/api/jobs?status=completed,cancelled,failed&sort_by=execution_duration").json()
    assert _ids(by_time) == ["stopped", "ok-old", "ok-new", "failed"]  # 30 s, 10 s, 2 s, 1 s
    assert _ids(client.get("/api/jobs?workflow_id=wf-a").json()) == ["ok-new", "ok-old"]
    assert client.get("/api/jobs?offset=-5&limit=1").json()["pagination"]["offset"] == 0


@pytest.mark.parametrize("query", ["status=done", "sort_by=name", "sort_order=up", "limit=0", "limit=x",
                                   "offset=x"])
def test_bad_parameters_are_400(client, query):
    r = client.get(f"/api/jobs?{query}")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_parameter"


def test_job_detail(client):
    job = client.get("/api/jobs/ok-old").json()
    assert job["status"] == "completed" and job["outputs"] == {"9": {"images": [TEMP, IMAGE]}}
    assert job["workflow"] == {"prompt": {"1": {"class_type": "X"}},
                               "extra_data": {"extra_pnginfo": {"workflow": {"id": "wf-a"}}}}
    assert job["execution_status"]["status_str"] == "success" and job["execution_status"]["completed"] is True
    assert client.get("/api/jobs/stopped").json()["execution_status"]["status_str"] == "error"
    pending = client.get("/api/jobs/pending").json()
    assert pending["status"] == "pending" and "workflow" not in pending and "outputs" not in pending
    for missing in ("nope", "removed"):  # cancelled before running: gone, as in ComfyUI
        r = client.get(f"/api/jobs/{missing}")
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
