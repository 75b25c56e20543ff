"""/internal/folder_paths, /internal/logs[/raw|/subscribe], /experiment/models, /view_metadata
(ui/api_misc.py): ComfyUI's shapes, over the in-process app (no editor, no queue worker)."""
from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import pytest

from engine.executor import Executor
from engine.paths import Paths
from engine.queue import JobQueue
from tests.stub_nodes import make_registry


def _safetensors(path: Path, metadata: dict | None, *, header_len: int | None = None) -> None:
    header: dict = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + b"\0" * 4)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from fastapi.testclient import TestClient

    from ui.server import create_app

    base = tmp_path_factory.mktemp("misc")
    extra = base / "more_loras"
    paths = Paths(base / "m", base / "i", base / "o", base / "t", base / "u", {"loras": [str(extra)]})
    paths.ensure_dirs()
    (extra / "deep").mkdir(parents=True)
    ckpt = paths.models_dir / "checkpoints"
    _safetensors(ckpt / "meta.safetensors", {"ss_network_dim": "4", "title": "tiny"})
    _safetensors(ckpt / "plain.safetensors", None)
    _safetensors(ckpt / "broken.safetensors", None, header_len=10 ** 9)
    (ckpt / "old.ckpt").write_bytes(b"PK")
    (ckpt / ".hidden.safetensors").write_bytes(b"")
    (ckpt / "notes.txt").write_text("x")
    (paths.models_dir / "loras" / "a.safetensors").write_bytes(b"12")
    (extra / "deep" / "b.pt").write_bytes(b"123")
    (base / "secret.safetensors").write_bytes(b"")
    registry = make_registry()
    queue = JobQueue(Path(paths.user_dir) / "db.sqlite", Executor(registry, paths))
    app = create_app(paths, queue, registry, start_queue=False, editor=False)
    with TestClient(app) as c:
        yield c, paths
    queue.close()


def test_folder_paths(env):
    client, paths = env
    body = client.get("/internal/folder_paths").json()
    assert body["checkpoints"] == [str(paths.models_dir / "checkpoints")]
    assert body["loras"] == [str(paths.models_dir / "loras"), str(paths.extra_model_paths["loras"][0])]
    assert client.get("/api/internal/folder_paths").status_code == 404  # ComfyUI: /internal only


def test_experiment_models(env):
    client, paths = env
    folders = client.get("/api/experiment/models").json()
    assert "configs" not in [f["name"] for f in folders]
    assert {"name": "loras", "folders": [str(d) for d in paths.folder_dirs("loras")]} in folders
    loras = client.get("/api/experiment/models/loras").json()
    assert [(m["name"], m["pathIndex"], m["size"]) for m in loras] == [("a.safetensors", 0, 2), ("deep/b.pt", 1, 3)]
    assert all(isinstance(m["modified"], float) and isinstance(m["created"], float) for m in loras)
    names = [m["name"] for m in client.get("/experiment/models/checkpoints").json()]
    assert names == ["broken.safetensors", "meta.safetensors", "old.ckpt", "plain.safetensors"]
    assert client.get("/api/experiment/models/nope").status_code == 404


@pytest.mark.parametrize("query,status", [
    ("checkpoints?filename=meta.safetensors", 200), ("checkpoints?filename=plain.safetensors", 404),
    ("checkpoints?filename=broken.safetensors", 404), ("checkpoints?filename=old.ckpt", 404),
    ("checkpoints?filename=missing.safetensors", 404), ("checkpoints", 404), ("nope?filename=meta.safetensors", 404),
    ("checkpoints?filename=../../secret.safetensors", 400), ("checkpoints?filename=%2Ftmp%2Fx.safetensors", 400)])
def test_view_metadata(env, query, status):
    client, _ = env
    r = client.get(f"/api/view_metadata/{query}")
    assert r.status_code == status, r.text
    if status == 200:
        assert r.json() == {"ss_network_dim": "4", "title": "tiny"}
    else:
        assert r.headers["content-type"].startswith("application/json")


def test_logs_keep_recent_lines(env):
    client, _ = env
    logging.getLogger("latentgraph.test").warning("a line for the log panel")
    text = client.get("/internal/logs").json()
    assert isinstance(text, str) and "a line for the log panel\n" in text
    raw = client.get("/internal/logs/raw").json()
    assert set(raw["size"]) == {"cols", "rows"}
    entry = [e for e in raw["entries"] if "a line for the log panel" in e["m"]][-1]
    assert set(entry) == {"t", "m"} and entry["m"].endswith("\n")


def test_log_ring_is_bounded():
    from ui.api_misc import LogRing

    ring = LogRing(capacity=3)
    log = logging.getLogger("latentgraph.test.ring")
    log.addHandler(ring)
    try:
        for i in range(5):
            log.warning("line %d", i)
    finally:
        log.removeHandler(ring)
    assert [e["m"].split()[-1] for e in ring.snapshot()] == ["2", "3", "4"]


def test_subscribed_client_receives_new_log_lines(env):
    client, _ = env
    with client.websocket_connect("/ws?clientId=term") as ws:
        assert ws.receive_json()["type"] == "status"
        assert client.patch("/internal/logs/subscribe", json={"clientId": "term", "enabled": True}).status_code == 200
        logging.getLogger("latentgraph.test").warning("pushed to the terminal")
        message = ws.receive_json()
        assert message["type"] == "logs" and set(message["data"]) == {"entries", "size"}
        assert "pushed to the terminal" in message["data"]["entries"][0]["m"]
        client.patch("/internal/logs/subscribe", json={"clientId": "term", "enabled": False})
    assert client.patch("/internal/logs/subscribe", json={"enabled": True}).status_code == 400


def test_templates_offer_the_example_workflows(tmp_path):
    """The index lists workflows/*.json; each template is a ComfyUI UI workflow that converts back
    to the same prompt as the native example (the frontend loads it; we read it back the same)."""
    from fastapi.testclient import TestClient

    from engine.formats import comfy_ui, native
    from nodes.plugins import load_all
    from nodes.registry import REGISTRY
    from ui.server import create_app

    load_all()
    paths = Paths(tmp_path / "m", tmp_path / "i", tmp_path / "o", tmp_path / "t", tmp_path / "u")
    paths.ensure_dirs()
    queue = JobQueue(tmp_path / "db.sqlite", Executor(REGISTRY, paths))
    examples = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "workflows").glob("*.json"))
    with TestClient(create_app(paths, queue, REGISTRY, start_queue=False, editor=False)) as client:
        r = client.get("/templates/index.json")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        (module,) = r.json()
        assert module["moduleName"] == "default" and module["templates"][0]["name"] == "default"
        assert sorted(t["name"] for t in module["templates"]) == examples
        assert all({"name", "title", "description", "mediaType", "mediaSubtype"} <= set(t) for t in module["templates"])
        for name in examples:
            ui = client.get(f"/templates/{name}.json").json()
            assert ui["version"] == 0.4 and comfy_ui.is_ui_workflow(ui)
            doc = json.loads((Path(__file__).resolve().parent.parent / "workflows" / f"{name}.json").read_text())
            assert comfy_ui.ui_to_prompt(ui, REGISTRY) == native.to_prompt(doc, REGISTRY), name
        for bad in ("nope.json", "default", "..%2Fsecret.json", "default.json.json"):
            assert client.get(f"/templates/{bad}").status_code == 404
        assert client.get("/api/templates/index.json").status_code == 404  # /templates only, as ComfyUI
    queue.close()


def test_ui_export_keeps_controls_links_into_widgets_and_modes():
    """A seed's control mode, a widget fed by a link (a stub INT-output node), bypass, numeric ids."""
    from engine.formats import comfy_ui
    from engine.formats.comfy_ui_export import native_to_ui
    from engine.formats.native import new_document
    from engine.nodedef import In, Int, Out, Registry
    from nodes.registry import node

    registry = Registry()

    @node(category="test", registry=registry)
    class Seeded:
        """Takes a seed."""
        INPUTS = [In("x", "LATENT"), Int("seed", 0, min=0, max=100, control_after_generate=True), Int("n", 1)]
        OUTPUTS = [Out("LATENT")]

        def run(self, ctx, x, seed, n):
            return (x,)

    @node(category="test", registry=registry)
    class Number:
        """Gives an INT."""
        INPUTS = []
        OUTPUTS = [Out("INT", "value")]

        def run(self, ctx):
            return (3,)

    doc = new_document([{"id": "5", "type": "Seeded", "title": "T", "pos": [1, 2], "size": [3, 4], "color": "#123",
                         "mode": "bypass", "widgets": {"seed": 7, "n": 2}, "controls": {"seed": "randomize"},
                         "converted": ["n"]},
                        {"id": "6", "type": "Number", "title": "N", "pos": [0, 0], "size": [1, 1], "color": None,
                         "mode": "normal", "widgets": {}, "controls": {}, "converted": []}],
                       [{"id": 9, "from": ["6", 0], "to": ["5", "n"], "type": "INT"}])
    ui = native_to_ui(doc, registry)
    seeded = ui["nodes"][0]
    assert seeded["id"] == 5 and seeded["mode"] == 4 and seeded["title"] == "T" and seeded["color"] == "#123"
    assert seeded["widgets_values"] == [7, "randomize", 2]
    assert seeded["inputs"] == [{"name": "x", "type": "LATENT", "link": None},
                                {"name": "n", "type": "INT", "link": 9, "widget": {"name": "n"}}]
    assert ui["links"] == [[9, 6, 0, 5, 1, "INT"]] and ui["nodes"][1]["outputs"][0]["links"] == [9]
    back = comfy_ui.ui_to_native(ui, registry)
    seeded_back = back["nodes"][0]
    assert seeded_back["widgets"]["seed"] == 7 and seeded_back["controls"]["seed"] == "randomize"
    assert seeded_back["mode"] == "bypass" and seeded_back["converted"] == ["n"]
    assert [(l["from"], l["to"]) for l in back["links"]] == [(["6", 0], ["5", "n"])]
