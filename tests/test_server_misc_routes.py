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
