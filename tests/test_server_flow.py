"""The ComfyUI client flow over real HTTP + WebSocket against a server subprocess.

What ComfyUI's script examples and third-party clients do: connect /ws with a clientId, POST
/prompt with their own prompt_id, wait for ``executing node=null``, read /history/{id}, fetch the
images with /view. Plus the error paths (validation 400, runtime error, interrupt), the cache
(resubmit → execution_cached), previews as binary frames, status broadcasts, a client vanishing
mid-job and 50 concurrent clients.
"""
from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import websockets
from PIL import Image

from tests.server_helpers import ServerProcess, collect_until_done, stub_graph, tiny_sd_graph, wait_history


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("srv_flow")).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30.0) as c:
        yield c


def _types(frames: list) -> list[str]:
    return [f["type"] for f in frames if isinstance(f, dict)]


def _of(frames: list, kind: str, prompt_id: str | None = None) -> list[dict]:
    return [f["data"] for f in frames if isinstance(f, dict) and f["type"] == kind
            and (prompt_id is None or f["data"].get("prompt_id") == prompt_id)]


async def _submit_and_collect(server, client, graph: dict, *, prompt_id: str | None = None,
                              extra_data: dict | None = None, timeout: float = 60.0) -> tuple[str, list]:
    """Connect a WS client, submit the graph as that client and read until completion."""
    cid = uuid.uuid4().hex
    pid = prompt_id or uuid.uuid4().hex
    async with websockets.connect(server.ws_url(cid)) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "status" and hello["data"]["sid"] == cid
        r = await asyncio.to_thread(client.post, "/prompt", json={"prompt": graph, "client_id": cid,
                                                                   "prompt_id": pid, "extra_data": extra_data or {}})
        assert r.status_code == 200, r.text
        frames = await collect_until_done(ws, pid, timeout)
    return pid, frames


def test_comfyui_client_flow_with_stub_nodes(server, client):
    pid = "my-own-id-" + uuid.uuid4().hex[:8]
    graph = stub_graph(7, seconds=0.1, steps=2, prefix="flow")
    pid2, frames = asyncio.run(_submit_and_collect(server, client, graph, prompt_id=pid))
    assert pid2 == pid
    kinds = _types(frames)
    assert "execution_start" in kinds and "execution_success" in kinds
    executing = [d["node"] for d in _of(frames, "executing", pid)]
    assert set(executing[:-1]) == {"1", "2", "3"} and executing[-1] is None
    assert _of(frames, "progress", pid)[-1] == {"value": 2, "max": 2, "prompt_id": pid, "node": "2"}
    executed = _of(frames, "executed", pid)
    assert executed[0]["node"] == "3" and executed[0]["output"]["images"][0]["type"] == "output"

    hist = wait_history(client, pid)
    assert hist["status"]["status_str"] == "success" and hist["status"]["completed"] is True
    assert hist["prompt"][1] == pid and hist["prompt"][3]["client_id"]
    image = hist["outputs"]["3"]["images"][0]
    r = client.get("/view", params=image)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    on_disk = (server.dirs["output"] / image["subfolder"] / image["filename"]).read_bytes()
    assert r.content == on_disk
    assert Image.open(io.BytesIO(r.content)).getpixel((0, 0))[0] == 7
    dup = client.post("/prompt", json={"prompt": graph, "prompt_id": pid})
    assert dup.status_code == 400 and dup.json()["error"]["type"] == "invalid_prompt"


def test_preview_frames_are_binary_jpeg(server, client):
    # ComfyUI sends live previews only when asked (extra_data.preview_method, or its launch flag)
    _, frames = asyncio.run(_submit_and_collect(server, client, stub_graph(11, seconds=0.1, steps=3),
                                                extra_data={"preview_method": "auto"}))
    binary = [f for f in frames if isinstance(f, bytes)]
    assert len(binary) == 3
    for frame in binary:
        event, fmt = struct.unpack(">II", frame[:8])
        assert (event, fmt) == (1, 1)
        assert frame[8:10] == b"\xff\xd8"
        assert Image.open(io.BytesIO(frame[8:])).format == "JPEG"


def test_editor_jobs_always_get_preview_frames(server, client):
    """/lg/queue (the editor) carries no preview_method; its jobs get live previews regardless."""
    from engine.formats.native import from_prompt
    from nodes.registry import Registry
    from tests.server_helpers import register

    registry = Registry()
    register(registry)
    doc = from_prompt(stub_graph(12, seconds=0.1, steps=3), registry)

    async def run() -> list:
        cid = uuid.uuid4().hex
        async with websockets.connect(server.ws_url(cid)) as ws:
            r = await asyncio.to_thread(client.post, "/lg/queue", json={"workflow": doc, "client_id": cid})
            assert r.status_code == 200, r.text
            return await collect_until_done(ws, r.json()["prompt_ids"][0])

    binary = [f for f in asyncio.run(run()) if isinstance(f, bytes)]
    assert len(binary) == 3 and all(f[:8] == struct.pack(">II", 1, 1) for f in binary)


def test_validation_failure_is_400_with_node_errors(server, client):
    graph = stub_graph(999)
    r = client.post("/prompt", json={"prompt": graph})
    assert r.status_code == 400
    body = r.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert set(body["error"]) >= {"type", "message", "details", "extra_info"}
    err = body["node_errors"]["1"]
    assert err["class_type"] == "LgConst" and "3" in err["dependent_outputs"]
    first = err["errors"][0]
    assert first["type"] == "value_bigger_than_max"
    assert first["extra_info"]["input_name"] == "value" and first["extra_info"]["received_value"] == 999
    missing = client.post("/api/prompt", json={"client_id": "x"})
    assert missing.status_code == 400 and missing.json()["error"]["type"] == "no_prompt"
    assert missing.json()["node_errors"] == {}


def test_runtime_error_names_the_node(server, client):
    pid, frames = asyncio.run(_submit_and_collect(server, client, stub_graph(5, fail=True)))
    errors = _of(frames, "execution_error", pid)
    assert len(errors) == 1
    err = errors[0]
    assert err["node_id"] == "4" and err["node_type"] == "LgFail"
    assert "stub failure 5" in err["exception_message"] and err["exception_type"].endswith("RuntimeError")
    assert "execution_success" not in _types(frames)
    hist = wait_history(client, pid)
    assert hist["status"]["status_str"] == "error" and hist["status"]["completed"] is False


def test_interrupt_mid_job(server, client):
    async def run() -> tuple[str, list]:
        cid, pid = uuid.uuid4().hex, uuid.uuid4().hex
        async with websockets.connect(server.ws_url(cid)) as ws:
            graph = stub_graph(21, seconds=30.0, steps=300)
            r = await asyncio.to_thread(client.post, "/prompt", json={"prompt": graph, "client_id": cid,
                                                                       "prompt_id": pid})
            assert r.status_code == 200
            frames: list = []
            while not _of(frames, "progress", pid):
                raw = await asyncio.wait_for(ws.recv(), 30)
                frames.append(raw if isinstance(raw, bytes) else json.loads(raw))
            r = await asyncio.to_thread(client.post, "/interrupt", json={"prompt_id": pid})
            assert r.status_code == 200
            frames += await collect_until_done(ws, pid, 30)
        return pid, frames

    pid, frames = asyncio.run(run())
    interrupted = _of(frames, "execution_interrupted", pid)
    assert interrupted and interrupted[0]["node_id"] == "2" and interrupted[0]["node_type"] == "LgSlow"
    assert len(_of(frames, "progress", pid)) < 300


def test_cached_resubmit_runs_nothing(server, client):
    graph = stub_graph(33)
    asyncio.run(_submit_and_collect(server, client, graph))
    pid, frames = asyncio.run(_submit_and_collect(server, client, graph))
    cached = _of(frames, "execution_cached", pid)
    assert "3" in cached[0]["nodes"]
    assert [d["node"] for d in _of(frames, "executing", pid)] == [None]
    assert _of(frames, "executed", pid)[0]["output"]["images"]
    assert "execution_success" in _types(frames)


def test_cached_resubmit_lists_all_nodes(server, client):
    graph = stub_graph(34)
    asyncio.run(_submit_and_collect(server, client, graph))
    pid, frames = asyncio.run(_submit_and_collect(server, client, graph))
    assert sorted(_of(frames, "execution_cached", pid)[0]["nodes"]) == ["1", "2", "3"]


def test_status_broadcast_and_events_only_to_submitter(server, client):
    async def run() -> tuple[list, list, str]:
        async with websockets.connect(server.ws_url("watcher-" + uuid.uuid4().hex[:6])) as watcher:
            await asyncio.wait_for(watcher.recv(), 10)
            pid, frames = await _submit_and_collect(server, client, stub_graph(44, seconds=0.05))
            seen: list = []
            try:
                while True:
                    raw = await asyncio.wait_for(watcher.recv(), 1.0)
                    seen.append(raw if isinstance(raw, bytes) else json.loads(raw))
            except asyncio.TimeoutError:
                pass
        return seen, frames, pid

    seen, frames, pid = asyncio.run(run())
    statuses = [f["data"]["status"]["exec_info"]["queue_remaining"] for f in seen
                if isinstance(f, dict) and f["type"] == "status"]
    assert statuses and statuses[-1] == 0 and max(statuses) >= 1
    assert not [f for f in seen if isinstance(f, bytes) or f["type"] != "status"]
    assert _of(frames, "execution_start", pid)


def test_client_disconnect_mid_job_loses_nothing(server, client):
    async def run() -> str:
        cid, pid = uuid.uuid4().hex, uuid.uuid4().hex
        async with websockets.connect(server.ws_url(cid)) as ws:
            await asyncio.wait_for(ws.recv(), 10)
            r = await asyncio.to_thread(client.post, "/prompt", json={
                "prompt": stub_graph(55, seconds=1.0, steps=10), "client_id": cid, "prompt_id": pid})
            assert r.status_code == 200
        return pid

    pid = asyncio.run(run())
    hist = wait_history(client, pid, timeout=60)
    assert hist["status"]["status_str"] == "success"
    assert hist["outputs"]["3"]["images"]


def test_queue_routes_and_api_prefix(server, client):
    blocker = client.post("/api/prompt", json={"prompt": stub_graph(61, seconds=3.0, steps=30)}).json()
    pending = [client.post("/prompt", json={"prompt": stub_graph(62 + i)}).json()["prompt_id"] for i in range(3)]
    front = client.post("/prompt", json={"prompt": stub_graph(70), "front": True}).json()
    q = client.get("/api/queue").json()
    pending_ids = [item[1] for item in q["queue_pending"]]
    assert set(pending) <= set(pending_ids)
    assert pending_ids[0] == front["prompt_id"]
    assert len(q["queue_pending"][0]) == 5
    assert client.get("/prompt").json()["exec_info"]["queue_remaining"] >= 4
    assert client.post("/queue", json={"delete": [pending[0]]}).status_code == 200
    left = [item[1] for item in client.get("/queue").json()["queue_pending"]]
    assert pending[0] not in left and pending[1] in left
    assert client.post("/api/queue", json={"clear": True}).status_code == 200
    assert client.get("/queue").json()["queue_pending"] == []
    client.post("/interrupt", json={})
    wait_history(client, blocker["prompt_id"], timeout=30)
    hist = client.get("/history", params={"max_items": 1}).json()
    assert len(hist) == 1
    assert client.post("/history", json={"delete": [blocker["prompt_id"]]}).status_code == 200
    assert client.get(f"/history/{blocker['prompt_id']}").json() == {}


def test_partial_execution_targets_and_extra_data(server, client):
    graph = stub_graph(77, prefix="target_a")
    graph["5"] = {"class_type": "LgSave", "inputs": {"value": ["1", 0], "filename_prefix": "target_b"}}
    extra = {"extra_pnginfo": {"workflow": {"nodes": [], "links": []}}}
    r = client.post("/prompt", json={"prompt": graph, "partial_execution_targets": ["5"],
                                     "extra_data": extra, "number": 12345.5})
    assert r.status_code == 200, r.text
    body = r.json()
    hist = wait_history(client, body["prompt_id"])
    assert list(hist["outputs"]) == ["5"]
    assert hist["prompt"][0] == 12345.5 and hist["prompt"][4] == ["5"]
    assert hist["prompt"][3]["extra_pnginfo"] == extra["extra_pnginfo"]
    bad = client.post("/prompt", json={"prompt": graph, "partial_execution_targets": "5"})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_prompt"


def test_fifty_concurrent_clients(server):
    """50 clients submit and poll at once; every job runs exactly once and the queue drains."""
    def one(i: int) -> tuple[str, int, str]:
        with httpx.Client(base_url=server.url, timeout=60.0) as c:
            r = c.post("/prompt", json={"prompt": stub_graph(100 + i, prefix=f"conc{i}"),
                                        "client_id": f"c{i}"})
            assert r.status_code == 200, r.text
            body = r.json()
            hist = wait_history(c, body["prompt_id"], timeout=120)
            c.get("/queue").raise_for_status()
            return body["prompt_id"], body["number"], hist["status"]["status_str"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    assert len({r[0] for r in results}) == 50 and len({r[1] for r in results}) == 50
    assert all(r[2] == "success" for r in results)
    with httpx.Client(base_url=server.url, timeout=30.0) as c:
        q = c.get("/queue").json()
        assert q == {"queue_running": [], "queue_pending": []}
        history = c.get("/history").json()
    assert {r[0] for r in results} <= set(history)


def test_fifty_concurrent_websocket_clients(server):
    """50 WS clients each submit and wait for their own completion; nobody sees another's events."""
    async def one(i: int, http: httpx.AsyncClient) -> tuple[str, list]:
        cid, pid = f"ws{i}-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
        async with websockets.connect(server.ws_url(cid), open_timeout=60) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
            assert hello["data"]["sid"] == cid
            r = await http.post("/prompt", json={"prompt": stub_graph(150 + i, prefix=f"wsc{i}"),
                                                 "client_id": cid, "prompt_id": pid})
            assert r.status_code == 200, r.text
            return pid, await collect_until_done(ws, pid, 120)

    async def run() -> list:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=server.url, timeout=60.0, limits=limits) as http:
            return await asyncio.gather(*(one(i, http) for i in range(50)))

    results = asyncio.run(run())
    for pid, frames in results:
        foreign = {f["data"].get("prompt_id") for f in frames if isinstance(f, dict) and f["type"] != "status"}
        assert foreign == {pid}
        assert "execution_success" in _types(frames)


def test_upload_then_view_roundtrip(server, client):
    buf = io.BytesIO()
    Image.new("RGBA", (12, 10), (200, 10, 10, 128)).save(buf, format="PNG")
    files = {"image": ("photo.png", buf.getvalue(), "image/png")}
    first = client.post("/upload/image", files=files, data={"subfolder": "ups"}).json()
    assert first == {"name": "photo.png", "subfolder": "ups", "type": "input"}
    second = client.post("/upload/image", files=files, data={"subfolder": "ups"}).json()
    assert second["name"] == "photo (1).png"
    again = client.post("/upload/image", files=files, data={"subfolder": "ups", "overwrite": "true"}).json()
    assert again["name"] == "photo.png"
    r = client.get("/view", params={"filename": "photo.png", "subfolder": "ups", "type": "input"})
    assert r.status_code == 200 and r.content == buf.getvalue()
    webp = client.get("/view", params={"filename": "photo.png", "subfolder": "ups", "type": "input",
                                       "preview": "webp;80"})
    assert webp.headers["content-type"] == "image/webp" and Image.open(io.BytesIO(webp.content)).format == "WEBP"
    rgb = client.get("/view", params={"filename": "photo.png", "subfolder": "ups", "type": "input", "channel": "rgb"})
    assert Image.open(io.BytesIO(rgb.content)).mode == "RGB"
    alpha = client.get("/view", params={"filename": "photo.png", "subfolder": "ups", "type": "input", "channel": "a"})
    assert Image.open(io.BytesIO(alpha.content)).getchannel("A").getpixel((0, 0)) == 128


def test_mask_upload_merges_alpha_into_original(server, client):
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buf, format="PNG")
    client.post("/upload/image", files={"image": ("base.png", buf.getvalue(), "image/png")}, data={"overwrite": "1"})
    mask = Image.new("RGBA", (8, 8), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 4, 8))
    mbuf = io.BytesIO()
    mask.save(mbuf, format="PNG")
    ref = json.dumps({"filename": "base.png", "subfolder": "", "type": "input"})
    r = client.post("/upload/mask", files={"image": ("base-mask.png", mbuf.getvalue(), "image/png")},
                    data={"original_ref": ref, "overwrite": "true"})
    assert r.status_code == 200, r.text
    saved = Image.open(server.dirs["input"] / r.json()["name"])
    assert saved.size == (16, 16) and saved.mode == "RGBA"
    assert saved.getpixel((1, 5)) == (10, 200, 30, 0) and saved.getpixel((14, 5)) == (10, 200, 30, 255)


@pytest.mark.slow
def test_tiny_model_txt2img_flow(tmp_path, request):
    """The classic 7-node graph on the tiny SD1 checkpoint through the real nodes."""
    pytest.importorskip("torch")
    try:
        tiny_dir = request.getfixturevalue("tiny_dir")
    except Exception as exc:  # ldm.tiny not available yet
        pytest.skip(f"tiny models unavailable: {exc}")
    with ServerProcess(tmp_path / "srv", models_dir=tiny_dir, stubs=False) as srv, \
            httpx.Client(base_url=srv.url, timeout=60.0) as c:
        info = c.get("/object_info").json()
        needed = {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage"}
        if not needed <= set(info):
            pytest.skip(f"real nodes missing: {sorted(needed - set(info))}")
        assert "tiny_sd1.safetensors" in info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
        t0 = time.monotonic()
        pid, frames = asyncio.run(_submit_and_collect(srv, c, tiny_sd_graph(), timeout=240,
                                                      extra_data={"extra_pnginfo": {"workflow": {"v": 1}}}))
        assert "execution_success" in _types(frames), [f for f in frames if isinstance(f, dict)][-3:]
        assert {d["node"] for d in _of(frames, "executing", pid)} >= {"4", "3", "8", "9", None}
        assert len(_of(frames, "progress", pid)) >= 2
        image = wait_history(c, pid)["outputs"]["9"]["images"][0]
        r = c.get("/view", params=image)
        png = Image.open(io.BytesIO(r.content))
        assert r.status_code == 200 and png.size == (64, 64)
        assert json.loads(png.text["workflow"]) == {"v": 1} and "9" in json.loads(png.text["prompt"])
        print(f"tiny txt2img end-to-end {time.monotonic() - t0:.2f}s")
