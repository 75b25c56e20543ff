"""The editor routes (/lg/queue, /lg/import, /lg/workflows) over HTTP against the real app.

The app is ``ui.server.create_app`` with the real node registry and a real ``JobQueue`` whose
worker is not started, so submitted jobs stay pending and can be inspected through ``/api/queue``.
No model is needed: validation checks combo values against the folder listings, so a fake
``tiny_sd1.safetensors`` file in checkpoints/ is enough.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.server_helpers import tiny_sd_graph

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "comfy_ui"


def txt2img_api(seed: int = 7) -> dict:
    return tiny_sd_graph(seed)


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    from engine.executor import Executor
    from engine.paths import Paths
    from engine.queue import JobQueue
    from nodes.plugins import load_all
    from nodes.registry import REGISTRY
    from ui.server import create_app

    base = tmp_path_factory.mktemp("ui_routes")
    load_all(base / "no_custom_nodes")
    paths = Paths.from_args(base / "models", base / "input", base / "output", base / "temp", base / "user", None)
    paths.ensure_dirs()
    (Path(paths.models_dir) / "checkpoints").mkdir(parents=True, exist_ok=True)
    (Path(paths.models_dir) / "checkpoints" / "tiny_sd1.safetensors").write_bytes(b"not loaded here")
    examples = base / "workflows"
    examples.mkdir()
    queue = JobQueue(Path(paths.user_dir) / "latentgraph.db", Executor(REGISTRY, paths))
    app = create_app(paths, queue, REGISTRY, start_queue=False, editor=False)
    from ui.editor_routes import make_router

    app.include_router(make_router(paths, queue, REGISTRY, workflows_dir=examples))
    return app, queue, examples


@pytest.fixture
def client(app_env):
    from fastapi.testclient import TestClient

    app, queue, _ = app_env
    queue.clear()
    with TestClient(app) as c:
        yield c


@pytest.fixture
def native_doc(client) -> dict:
    r = client.post("/lg/import", json=txt2img_api())
    assert r.status_code == 200, r.text
    return r.json()["workflow"]


def test_import_api_prompt_gives_native_document(native_doc):
    assert native_doc["format"] == "latentgraph" and native_doc["version"] == 1
    ks = next(n for n in native_doc["nodes"] if n["id"] == "3")
    assert ks["widgets"]["seed"] == 7 and ks["widgets"]["sampler_name"] == "euler"
    assert {"from": ["4", 0], "to": ["3", "model"], "type": "MODEL"} in [
        {k: l[k] for k in ("from", "to", "type")} for l in native_doc["links"]]


def test_queue_submits_the_converted_prompt_with_the_workflow(client, native_doc):
    r = client.post("/lg/queue", json={"workflow": native_doc, "client_id": "abc", "count": 2})
    assert r.status_code == 200, r.text
    ids = r.json()["prompt_ids"]
    assert len(ids) == 2 and len(set(ids)) == 2
    pending = client.get("/api/queue").json()["queue_pending"]
    items = {item[1]: item for item in pending}
    assert set(ids) <= set(items)
    number, pid, prompt, extra, outputs = items[ids[0]]
    assert prompt["3"]["class_type"] == "KSampler" and prompt["3"]["inputs"]["model"] == ["4", 0]
    assert prompt["3"]["inputs"]["seed"] == 7
    assert extra["extra_pnginfo"]["workflow"] == native_doc
    assert extra["client_id"] == "abc"
    assert "9" in outputs


def test_queue_front_puts_the_job_first(client, native_doc):
    first = client.post("/lg/queue", json={"workflow": native_doc}).json()["prompt_ids"][0]
    front = client.post("/lg/queue", json={"workflow": native_doc, "front": True}).json()["prompt_ids"][0]
    pending = sorted(client.get("/api/queue").json()["queue_pending"], key=lambda it: it[0])
    assert [it[1] for it in pending[:2]] == [front, first]


def test_queue_validation_failure_is_comfyui_shaped(client, native_doc):
    doc = json.loads(json.dumps(native_doc))
    doc["links"] = [l for l in doc["links"] if l["to"] != ["3", "model"]]
    ks = next(n for n in doc["nodes"] if n["id"] == "3")
    ks["widgets"]["steps"] = 0
    r = client.post("/lg/queue", json={"workflow": doc, "client_id": "abc"})
    assert r.status_code == 400
    body = r.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    errors = body["node_errors"]["3"]["errors"]
    kinds = {(e["type"], e["extra_info"]["input_name"]) for e in errors}
    assert ("required_input_missing", "model") in kinds
    assert ("value_smaller_than_min", "steps") in kinds
    assert body["node_errors"]["3"]["class_type"] == "KSampler"
    assert client.get("/api/queue").json()["queue_pending"] == []


@pytest.mark.parametrize("body", [{}, {"workflow": "nope"}, {"workflow": {"nodes": []}}])
def test_queue_rejects_what_is_not_a_document(client, body):
    r = client.post("/lg/queue", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["type"] in ("no_prompt", "invalid_prompt")


def test_queue_rejects_a_document_that_does_not_convert(client, native_doc):
    doc = dict(native_doc, nodes=native_doc["nodes"] + [dict(native_doc["nodes"][0], id="99", mode="sideways")])
    r = client.post("/lg/queue", json={"workflow": doc})
    assert r.status_code == 400 and "sideways" in r.json()["error"]["message"]


def test_import_comfy_ui_file_upload_keeps_layout(client):
    raw = (FIXTURES / "txt2img_basic.json").read_bytes()
    ui = json.loads(raw)
    r = client.post("/lg/import", files={"file": ("txt2img_basic.json", raw, "application/json")})
    assert r.status_code == 200, r.text
    doc, kind = r.json()["workflow"], r.json()["kind"]
    assert kind == "ui" and doc["format"] == "latentgraph"
    by_id = {n["id"]: n for n in doc["nodes"]}
    for node in ui["nodes"]:
        assert by_id[str(node["id"])]["pos"] == [float(v) for v in node["pos"]]
    assert len(doc["links"]) == len(ui["links"])


def test_import_png_uses_its_workflow_chunk(client, native_doc):
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(txt2img_api(seed=99)))
    info.add_text("workflow", json.dumps(native_doc))
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=info)
    r = client.post("/lg/import", files={"file": ("result.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["workflow"] == native_doc and r.json()["kind"] == "png"


def test_import_png_without_workflow_lays_out_its_prompt(client):
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(txt2img_api(seed=5)))
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=info)
    r = client.post("/lg/import", files={"file": ("api.png", buf.getvalue(), "image/png")})
    doc = r.json()["workflow"]
    assert {n["id"] for n in doc["nodes"]} == set(txt2img_api())
    assert next(n for n in doc["nodes"] if n["id"] == "3")["widgets"]["seed"] == 5


@pytest.mark.parametrize("payload", [b"not json at all", b"[1, 2, 3]", b'{"hello": "world"}'])
def test_import_rejects_unknown_files_with_a_message(client, payload):
    r = client.post("/lg/import", files={"file": ("x.json", payload, "application/json")})
    assert r.status_code == 400
    assert isinstance(r.json()["error"], str) and r.json()["error"]


@pytest.mark.parametrize("payload", [b"[" * 5000 + b"]" * 5000, b'{"a": ' + b"9" * 5000 + b"}", b'{"a": NaN}',
                                     b'{"nodes": \xff}', b'{"nodes": 5, "links": []}'])
def test_import_refuses_hostile_json_with_a_message(client, payload):
    r = client.post("/lg/import", files={"file": ("x.json", payload, "application/json")})
    assert r.status_code == 400 and "\n" not in r.json()["error"] and "x.json" in r.json()["error"]


def test_workflow_listing_and_safe_names(client, app_env, native_doc):
    _, _, examples = app_env
    (examples / "default.json").write_text(json.dumps(dict(native_doc, title="Text to image")))
    (examples / "another_one.json").write_text(json.dumps(native_doc))
    (examples / "broken.json").write_text("{ nope")
    listing = client.get("/lg/workflows").json()["workflows"]
    assert listing[0] == {"name": "default", "title": "Text to image"}
    assert {"name": "another_one", "title": "Another one"} in listing
    assert all(w["name"] != "broken" for w in listing)
    got = client.get("/lg/workflows/default").json()
    assert got["name"] == "default" and got["workflow"]["nodes"] == native_doc["nodes"]
    assert client.get("/lg/workflows/missing").status_code == 404
    for bad in ("..%2Fsecrets", ".hidden", "a%00b", "x.y"):
        assert client.get(f"/lg/workflows/{bad}").status_code == 404


def test_import_of_broken_json_says_where(client):
    r = client.post("/lg/import", files={"file": ("wf.json", b'{"nodes": [}', "application/json")})
    assert r.status_code == 400 and "wf.json is not valid JSON (line 1, column 12" in r.json()["error"]


def test_serve_refuses_a_port_in_use_with_a_message():
    import socket

    from ui.server import bind_problem

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        problem = bind_problem("127.0.0.1", port)
    assert problem and "already in use" in problem and "--port" in problem
    assert bind_problem("127.0.0.1", port) is None


def test_serve_warm_up_imports_the_text_model_code():
    """`serve` imports transformers' CLIP code in the background (seconds when cold), so the first
    Queue press does not wait on it (bench/bench_first_run.py: ≈7 s → ≈3 s)."""
    import sys

    from ui.server import _warm_up

    _warm_up()
    assert "transformers.models.clip.modeling_clip" in sys.modules


def test_import_says_what_it_kept_and_export_gives_the_comfyui_workflow_back(client):
    from tests.test_formats_roundtrip import CORPUS, comfy_structure

    raw = (CORPUS / "editor_nodes_modern.json").read_bytes()
    r = client.post("/lg/import", files={"file": ("modern.json", raw, "application/json")})
    assert r.status_code == 200, r.text
    summary = r.json()["summary"]
    assert summary == {"nodes": 19, "links": 22, "groups": 2, "unknown": [],
                       "frontend": {"Reroute": 4, "PrimitiveNode": 3, "Note": 1, "MarkdownNote": 1}}
    back = client.post("/lg/export", json={"workflow": r.json()["workflow"]})
    assert back.status_code == 200, back.text
    assert comfy_structure(back.json()["workflow"]) == comfy_structure(json.loads(raw))


@pytest.mark.parametrize("body", [{}, {"workflow": 3}, {"workflow": {"format": "latentgraph", "version": 1,
                                                                   "nodes": [{"id": "1", "ui": 5}]}}])
def test_export_refuses_what_is_not_a_document(client, body):
    r = client.post("/lg/export", json=body)
    assert r.status_code == 400 and "error" in r.json()
