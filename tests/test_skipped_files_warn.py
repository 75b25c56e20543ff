"""A file that is skipped or refused is a warning the user sees, never silence.

Malicious and broken embeddings referenced by ``embedding:name``: a pickle carrying a payload, a
wrong-shape tensor, NaN vectors, an empty file, a name outside the folder. Each is ignored (as
ComfyUI does) and reported: in ``TextEncoder.last_warnings``, as ``ctx.warn`` from every text
encode node, in ``main.py run --json`` warnings, as the server's WebSocket ``warning`` event and in
its log. The payload never runs.
"""
from __future__ import annotations

import asyncio
import json
import os
import pickle
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import torch
import websockets

from tests.server_helpers import ServerProcess, collect_until_done, tiny_sd_graph

ROOT = Path(__file__).resolve().parent.parent
PROMPT = ("a cat embedding:evil embedding:wrongshape embedding:nans embedding:empty "
          "embedding:../checkpoints/tiny_sd1")
EXPECTED = {  # embedding name -> what its warning must say
    "evil": "pickle that needs code", "wrongshape": "has width 5", "nans": "NaN",
    "empty": "holds no vectors", "../checkpoints/tiny_sd1": "outside the embedding folders",
}


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def models(tiny_dir, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("bad_embeddings")
    models = base / "models"
    shutil.copytree(tiny_dir, models)
    emb = models / "embeddings"
    with open(emb / "evil.pt", "wb") as fh:
        pickle.dump({"string_to_param": {"*": _Payload(base / "PWNED")}}, fh)
    torch.save({"string_to_param": {"*": torch.zeros(2, 3, 5)}}, emb / "wrongshape.pt")
    torch.save({"string_to_param": {"*": torch.full((2, 32), float("nan"))}}, emb / "nans.pt")
    torch.save({"string_to_param": {}}, emb / "empty.pt")
    return models


def _assert_all_reported(warnings: list[str]) -> None:
    for name, reason in EXPECTED.items():
        assert any(w.startswith(f"embedding:{name} ") and reason in w for w in warnings), (name, warnings)
    assert all("\n" not in w for w in warnings)  # one line each, not torch's paragraphs


def test_the_encoder_reports_each_refusal(models):
    from ldm.checkpoint import load_checkpoint

    _, clip, _ = load_checkpoint(models / "checkpoints" / "tiny_sd1.safetensors", output_vae=False)
    clip.embedding_dirs = [models / "embeddings"]
    cond, _ = clip.encode(PROMPT)
    _assert_all_reported(clip.last_warnings)
    assert torch.isfinite(cond).all()
    assert not (models.parent / "PWNED").exists()


@pytest.mark.parametrize("ckpt,node,args", [
    ("tiny_sdxl", "CLIPTextEncodeSDXL", (1024, 1024, 0, 0, 1024, 1024, "embedding:evil x", "embedding:nans")),
    ("tiny_sdxl_refiner", "CLIPTextEncodeSDXLRefiner", (6.0, 1024, 1024, "embedding:evil x")),
])
def test_sdxl_encode_nodes_pass_the_warnings_on(models, ckpt, node, args):
    from engine.cache import ModelCache
    from engine.context import NodeContext
    from engine.paths import Paths
    from nodes import conditioning, loaders

    base = models.parent
    paths = Paths(models, base / "in", base / "out", base / "tmp", base / "user")
    events: list = []
    ctx = NodeContext(node_id="12", prompt_id="p", prompt={}, paths=paths, models=ModelCache(),
                      emit=lambda e: events.append((e.type, e.data)))
    clip = loaders.CheckpointLoaderSimple().run(ctx, f"{ckpt}.safetensors")[1]
    encode = getattr(conditioning, node)().run
    if node == "CLIPTextEncodeSDXL":
        encode(ctx, clip, *args)
    else:
        encode(ctx, *args, clip)
    messages = [d["message"] for e, d in events if e == "warning" and d["node"] == "12"]
    assert any("embedding:evil" in m and "pickle" in m for m in messages), messages
    if node == "CLIPTextEncodeSDXL":
        assert any("embedding:nans" in m for m in messages), messages


def _workflow(tmp: Path) -> Path:
    graph = tiny_sd_graph(seed=3)
    graph["6"]["inputs"]["text"] = PROMPT
    path = tmp / "wf.json"
    path.write_text(json.dumps(graph))
    return path


def test_run_json_lists_the_warnings(models, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "run", str(_workflow(tmp_path)), "--json",
         "--models-dir", str(models), "--output-dir", str(tmp_path / "out"), "--user-dir", str(tmp_path / "u"),
         "--input-dir", str(tmp_path / "in"), "--custom-nodes", str(tmp_path / "none")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_all_reported(json.loads(proc.stdout)["warnings"])
    assert "warning: embedding:evil" in proc.stderr
    assert not (models.parent / "PWNED").exists()


def test_server_sends_warning_events_and_logs_them(models, tmp_path):
    graph = tiny_sd_graph(seed=4)
    graph["6"]["inputs"]["text"] = PROMPT
    client_id = uuid.uuid4().hex
    with ServerProcess(tmp_path / "srv", models_dir=models) as srv:
        async def go() -> list:
            async with websockets.connect(srv.ws_url(client_id)) as ws:
                async with httpx.AsyncClient(base_url=srv.url, timeout=60.0) as c:
                    r = await c.post("/prompt", json={"prompt": graph, "client_id": client_id})
                    assert r.status_code == 200, r.text
                    prompt_id = r.json()["prompt_id"]
                return await collect_until_done(ws, prompt_id, timeout=300)

        frames = asyncio.run(go())
        log = srv.log_tail(50000)
    messages = [m for m in frames if isinstance(m, dict)]
    warnings = [m["data"] for m in messages if m["type"] == "warning"]
    assert {w["node"] for w in warnings} == {"6"}
    _assert_all_reported([w["message"] for w in warnings])
    assert any(m["type"] == "execution_success" for m in messages)
    for name in EXPECTED:
        assert f"node 6: embedding:{name} " in log, log[-3000:]
    assert not (models.parent / "PWNED").exists()


def test_an_unreadable_model_folder_is_logged_once(tmp_path, monkeypatch, caplog):
    """os.walk skips a folder it cannot open; the listing says so (once) instead of going quiet."""
    import errno

    from engine.paths import Paths

    paths = Paths(tmp_path / "m", tmp_path / "i", tmp_path / "o", tmp_path / "t", tmp_path / "u")
    paths.ensure_dirs()
    (paths.models_dir / "loras" / "ok.safetensors").write_bytes(b"x")
    locked = paths.models_dir / "loras" / "locked"
    locked.mkdir()
    (locked / "hidden.safetensors").write_bytes(b"x")
    real_scandir = os.scandir

    def scandir(path="."):  # root reads everything: simulate a folder without read permission
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with caplog.at_level("WARNING", logger="engine.paths"):
        assert paths.list_files("loras") == ["ok.safetensors"]
        assert paths.list_files("loras") == ["ok.safetensors"]
    lines = [r.getMessage() for r in caplog.records if "cannot list" in r.getMessage()]
    assert len(lines) == 1 and str(locked) in lines[0] and "Permission denied" in lines[0]
