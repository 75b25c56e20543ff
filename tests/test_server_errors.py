"""Every API error is JSON in one shape, even with the Gradio editor mounted at ``/``.

The app is ``ui.server.create_app`` with the editor (so unknown paths really would fall through to
Gradio) over the stub registry; the queue worker is not started.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.executor import Executor
from engine.paths import Paths
from engine.queue import JobQueue
from tests.stub_nodes import make_registry

ERROR_KEYS = {"type", "message", "details", "extra_info"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from ui.server import create_app

    base = tmp_path_factory.mktemp("errors")
    paths = Paths(base / "m", base / "i", base / "o", base / "t", base / "u")
    paths.ensure_dirs()
    registry = make_registry()
    queue = JobQueue(Path(paths.user_dir) / "db.sqlite", Executor(registry, paths))
    app = create_app(paths, queue, registry, start_queue=False, editor=True)

    @app.get("/api/lg-test-crash")  # a route with a bug
    async def crash() -> dict:
        raise RuntimeError("route exploded")

    app.router.routes.insert(0, app.router.routes.pop())  # ahead of the editor's catch-all mount

    with TestClient(app) as c:  # raise_server_exceptions stays on: a 500 must not be re-raised
        yield c
    queue.close()


def _error(r, status: int, kind: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body["error"]) == ERROR_KEYS and body["node_errors"] == {} and body["error"]["type"] == kind
    return body


@pytest.mark.parametrize("path", ["/api/nope", "/api/prompt/extra/parts", "/api/v2/userdata/x.json",
                                  "/history/a/b", "/object_info/A/B", "/internal/nothing", "/lg/nothing",
                                  "/templates/a/b.json", "/api"])
def test_unknown_api_routes_are_json_404(client, path):
    assert path in _error(client.get(path), 404, "not_found")["error"]["message"]


@pytest.mark.parametrize("method,path,allow", [("DELETE", "/prompt", "GET, POST"), ("PUT", "/api/queue", "GET, POST"),
                                               ("POST", "/api/system_stats", "GET"), ("GET", "/lg/queue", "POST")])
def test_wrong_method_is_json_405_with_allow(client, method, path, allow):
    r = client.request(method, path)
    _error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == allow


@pytest.mark.parametrize("path,expected", [("/extensions", []), ("/api/extensions", []), ("/embeddings", []),
                                           ("/api/workflow_templates", {}), ("/i18n", {}),
                                           ("/api/global_subgraphs", {}), ("/api/settings", {})])
def test_probed_routes_answer_what_comfyui_answers_when_empty(client, path, expected):
    r = client.get(path)
    assert r.status_code == 200 and r.json() == expected


def test_non_api_paths_still_reach_the_editor(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/config").json()["api_prefix"] == "/gradio_api"  # Gradio's own route
    assert "error" not in client.get("/no-such-page").json()  # Gradio answers its own 404s


def test_a_crashing_route_is_a_json_500_and_the_server_carries_on(client, caplog):
    body = _error(client.get("/api/lg-test-crash"), 500, "internal_error")
    assert body["error"]["message"] == "RuntimeError: route exploded" and "Traceback" not in str(body)
    assert any("unhandled error on GET /api/lg-test-crash" in rec.getMessage() for rec in caplog.records)
    assert client.get("/prompt").json() == {"exec_info": {"queue_remaining": 0}}
