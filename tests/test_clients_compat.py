"""Third-party ComfyUI clients' exact HTTP/WS call sequences, replayed against a real server.

Each test reproduces what one client does on the wire (read from the clients' own code and run
against this server by hand: comfy-api-simplified 1.6.0, comfy-catapult 3.0.0, comfy-cli 1.23.0
`comfy run --workflow`, ComfyScript 0.6.1, comfy-toolkit 0.1.0, and ComfyUI's script_examples) without
importing any of them: they are not project dependencies. What each one relies on:

- script_examples/websockets_api_example.py: a clientId on /ws, POST /prompt as urllib sends it
  (JSON bytes labelled ``application/x-www-form-urlencoded``), wait for ``executing node=null``,
  then GET /history/{id} *at once* (no retry) and /view every image.
- comfy-api-simplified: POST /prompt (JSON bytes, no Content-Type), *then* connect /ws; done on
  ``status queue_remaining == 0`` or ``executing null``; every binary frame is taken as a result
  image, so none may come unless previews were asked for (ComfyUI's default is no previews).
- ComfyScript: on ``executing null`` it reads /history/{id} once and, if ``queue_remaining`` (from
  the last ``status``) is 0, gives up on every other task: ComfyUI sends ``status`` before it.
- comfy-catapult: POST /free and POST /queue as urlencoded forms; upload fields overwrite/type/
  subfolder/filename with an ``application/octet-stream`` image part.
- comfy-cli: converts a UI workflow with /object_info (``input_order``, widget types, ``forceInput``,
  the control_after_generate companion value after seed) and submits the result.
"""
from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from PIL import Image

from tests.server_helpers import ServerProcess, stub_graph, tiny_sd_graph

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "comfy_ui"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_dir):
    srv = ServerProcess(tmp_path_factory.mktemp("srv_clients"), models_dir=tiny_dir).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        yield c


async def _recv_json(ws, timeout: float = 60.0):
    """Next frame: a dict for JSON text, bytes for binary."""
    raw = await asyncio.wait_for(ws.recv(), timeout)
    return raw if isinstance(raw, bytes) else json.loads(raw)


async def _until_done(ws, pid: str, timeout: float = 90.0) -> list:
    frames, deadline = [], time.monotonic() + timeout
    while True:
        frame = await _recv_json(ws, max(0.1, deadline - time.monotonic()))
        frames.append(frame)
        if isinstance(frame, dict) and frame["type"] == "executing" and frame["data"]["node"] is None \
                and frame["data"]["prompt_id"] == pid:
            return frames


# ------------------------------------------------------------------------------------------------
# ComfyUI script_examples/websockets_api_example.py (on the tiny SD1 checkpoint, real nodes)
# ------------------------------------------------------------------------------------------------
def test_script_examples_websocket_flow_tiny_sd(server, client):
    async def run() -> tuple[str, list, dict]:
        cid = str(uuid.uuid4())
        async with websockets.connect(server.ws_url(cid)) as ws:
            graph = tiny_sd_graph(seed=5)
            graph["9"]["inputs"]["filename_prefix"] = "script_example"
            body = json.dumps({"prompt": graph, "client_id": cid}).encode()
            # urllib.request.Request(url, data=...) labels it a form; ComfyUI reads JSON anyway
            r = await asyncio.to_thread(client.post, "/prompt", content=body,
                                        headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 200, r.text
            pid = r.json()["prompt_id"]
            frames = await _until_done(ws, pid, 180)
            history = (await asyncio.to_thread(client.get, f"/history/{pid}")).json()  # no retry
        return pid, frames, history

    pid, frames, history = asyncio.run(run())
    assert pid in history, "history must be readable when executing node=null arrives"
    assert not [f for f in frames if isinstance(f, bytes)], "no preview frames unless asked for"
    images = history[pid]["outputs"]["9"]["images"]
    for image in images:
        r = client.get("/view", params={"filename": image["filename"], "subfolder": image["subfolder"],
                                        "type": image["type"]})
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (64, 64)


def test_script_examples_websocket_images(server, client):
    """script_examples/websockets_api_example_ws_images.py: SaveImageWebsocket in the graph; every
    binary frame that arrives while ``executing`` names that node is a result (its bytes after 8)."""
    async def run() -> tuple[str, list[bytes], list]:
        cid = str(uuid.uuid4())
        graph = tiny_sd_graph(seed=6)
        del graph["9"]
        graph["save_image_websocket_node"] = {"class_type": "SaveImageWebsocket",
                                              "inputs": {"images": ["8", 0]}}
        async with websockets.connect(server.ws_url(cid)) as ws:
            r = await asyncio.to_thread(client.post, "/prompt", json={"prompt": graph, "client_id": cid})
            assert r.status_code == 200, r.text
            pid, current, images, headers = r.json()["prompt_id"], "", [], []
            while True:
                frame = await _recv_json(ws, 180)
                if isinstance(frame, bytes):
                    headers.append(frame[:8])
                    if current == "save_image_websocket_node":
                        images.append(frame[8:])
                    continue
                if frame["type"] == "executing" and frame["data"]["prompt_id"] == pid:
                    if frame["data"]["node"] is None:
                        break
                    current = frame["data"]["node"]
        return pid, images, headers

    pid, images, headers = asyncio.run(run())
    assert headers == [b"\x00\x00\x00\x01\x00\x00\x00\x02"], "one PNG frame, and no previews"
    assert Image.open(io.BytesIO(images[0])).size == (64, 64)
    history = client.get(f"/history/{pid}").json()[pid]
    assert history["status"]["status_str"] == "success" and history["outputs"] == {}


def test_completion_signal_follows_history_and_status(server, client):
    """ComfyUI order: history stored → status (queue_remaining lowered) → executing null."""
    async def run() -> list[tuple[bool, list]]:
        cid = uuid.uuid4().hex
        results = []
        async with websockets.connect(server.ws_url(cid)) as ws, \
                httpx.AsyncClient(base_url=server.url, timeout=30.0) as ac:
            await _recv_json(ws, 10)  # hello status
            for i in range(8):
                pid = uuid.uuid4().hex
                r = await ac.post("/prompt", json={"prompt": stub_graph(100 + i), "client_id": cid,
                                                   "prompt_id": pid})
                assert r.status_code == 200, r.text
                frames = await _until_done(ws, pid, 30)
                results.append((pid in (await ac.get(f"/history/{pid}")).json(), frames))
        return results

    for present, frames in asyncio.run(run()):
        assert present
        kinds = [f["type"] for f in frames if isinstance(f, dict)]
        last_status = max(i for i, k in enumerate(kinds) if k == "status")
        assert kinds.index("execution_success") < last_status < len(kinds) - 1
        statuses = [f for f in frames if isinstance(f, dict) and f["type"] == "status"]
        assert statuses[-1]["data"]["status"]["exec_info"]["queue_remaining"] == 0


# ------------------------------------------------------------------------------------------------
# comfy-api-simplified: queue_and_wait_images + get_history + get_image
# ------------------------------------------------------------------------------------------------
def _cas_wait(server, pid: str, cid: str) -> tuple[str, list[bytes]]:
    """ComfyApiWrapper.queue_prompt_and_wait after the POST: connect, read until done."""
    async def run() -> tuple[str, list[bytes]]:
        images: list[bytes] = []
        async with websockets.connect(server.ws_url(cid)) as ws:
            while True:
                out = await asyncio.wait_for(ws.recv(), 60)
                if isinstance(out, bytes):
                    images.append(out[8:])
                    continue
                msg = json.loads(out)
                if msg["type"] == "execution_error" and msg["data"]["prompt_id"] == pid:
                    raise AssertionError("execution error")
                if msg["type"] == "status" and msg["data"]["status"]["exec_info"]["queue_remaining"] == 0:
                    return "status", images
                if msg["type"] == "executing" and msg["data"]["node"] is None and msg["data"]["prompt_id"] == pid:
                    return "executing", images
    return asyncio.run(run())


@pytest.mark.parametrize("delay", [0.0, 1.5], ids=["ws-during-job", "ws-after-job"])
def test_comfy_api_simplified_queue_and_wait_images(server, client, delay):
    graph = stub_graph(90, seconds=0.6, steps=3, prefix="cas")
    for node_id, title in (("1", "Const"), ("2", "Slow"), ("3", "Save Image")):
        graph[node_id]["_meta"] = {"title": title}
    cid = str(uuid.uuid4())
    # requests.post(url, data=json.dumps(p).encode("utf-8")): no Content-Type header at all
    r = client.post("/prompt", content=json.dumps({"prompt": graph, "client_id": cid}).encode(),
                    headers={"Content-Type": ""})
    assert r.status_code == 200, r.text
    pid = r.json()["prompt_id"]
    time.sleep(delay)
    _, images = _cas_wait(server, pid, cid)
    assert images == [], "binary frames would be returned as the result images"
    history = client.get(f"/history/{pid}").json()
    node_id = next(k for k, v in graph.items() if v["_meta"]["title"] == "Save Image")
    result = history[pid]["outputs"][node_id]["images"]
    for image in result:
        r = client.get("/view", params={"filename": image["filename"], "subfolder": image["subfolder"],
                                        "type": image["type"]})
        assert r.status_code == 200 and r.content[:4] == b"\x89PNG"


def test_previews_only_when_asked_for(server, client):
    async def run(extra: dict, value: int) -> list:
        cid, pid = uuid.uuid4().hex, uuid.uuid4().hex
        async with websockets.connect(server.ws_url(cid)) as ws:
            r = await asyncio.to_thread(client.post, "/prompt", json={
                "prompt": stub_graph(value, seconds=0.1, steps=2), "client_id": cid, "prompt_id": pid,
                "extra_data": extra})
            assert r.status_code == 200, r.text
            return await _until_done(ws, pid, 30)

    cases = (({}, 0), ({"preview_method": "none"}, 0), ({"preview_method": "default"}, 0),
             ({"preview_method": "auto"}, 2), ({"preview_method": "latent2rgb"}, 2))
    for i, (extra, count) in enumerate(cases):
        frames = asyncio.run(run(extra, 120 + i))  # distinct values: a cached run reports no progress
        assert len([f for f in frames if isinstance(f, bytes)]) == count, extra
        assert len([f for f in frames if isinstance(f, dict) and f["type"] == "progress"]) == 2


def test_comfy_api_simplified_side_calls(server, client, tmp_path):
    assert set(client.get("/queue").json()) == {"queue_running", "queue_pending"}
    assert "KSampler" in client.get("/object_info/KSampler").json()
    assert set(client.get("/system_stats").json()) >= {"system", "devices"}
    assert "tiny_embedding_sd1" in client.get("/embeddings").json()
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buf, format="PNG")
    for expected in ("cas_up.png", "cas_up (1).png"):  # no overwrite: ComfyUI's " (n)" renaming
        r = client.post("/upload/image", files={"image": ("cas_up.png", buf.getvalue())},
                        data={"subfolder": "default_upload_folder"})
        assert r.status_code == 200 and r.json() == {"name": expected, "subfolder": "default_upload_folder",
                                                     "type": "input"}
    assert client.post("/interrupt").status_code == 200  # requests.post(url): no body at all


# ------------------------------------------------------------------------------------------------
# ComfyScript: its watch loop on the WebSocket
# ------------------------------------------------------------------------------------------------
def test_comfyscript_watch_sees_results(server, client):
    async def run() -> tuple[list[dict], list[dict]]:
        cid = str(uuid.uuid4())
        tasks: dict[str, dict] = {}
        results: list[dict] = []
        queue_remaining = 0
        async with websockets.connect(server.ws_url(cid)) as ws:
            for i in range(2):  # two tasks queued back to back, like `with Workflow(): ...` twice
                r = await asyncio.to_thread(client.post, "/prompt", json={
                    "prompt": stub_graph(130 + i, seconds=0.3, steps=2), "client_id": cid,
                    "extra_data": {"extra_pnginfo": {"ComfyScriptSource": "x = 1\n"}}})
                assert r.status_code == 200
                body = r.json()
                tasks[body["prompt_id"]] = {"number": body["number"]}
            while tasks:
                msg = await _recv_json(ws, 60)
                if isinstance(msg, bytes):
                    continue
                data = msg["data"]
                if msg["type"] == "status":
                    queue_remaining = data["status"]["exec_info"]["queue_remaining"]
                elif msg["type"] == "executing" and data["node"] is None:
                    tasks.pop(data["prompt_id"], None)
                    if queue_remaining == 0:
                        abandoned = list(tasks)  # ComfyScript resolves these with {} outputs
                        assert not abandoned, "queue_remaining 0 while a task was still queued"
                    history = (await asyncio.to_thread(client.get, f"/history/{data['prompt_id']}")).json()
                    results.append(history.get(data["prompt_id"], {}).get("outputs", {}))
                elif msg["type"] == "progress":
                    assert data.get("prompt_id") and data.get("node")
        return results

    results = asyncio.run(run())
    assert len(results) == 2 and all(r.get("3", {}).get("images") for r in results)


def test_no_completion_signal_for_a_client_less_prompt(server, client):
    """ComfyUI sends ``executing null`` only to the submitting client; a prompt queued without a
    client_id (basic_api_example.py) would otherwise broadcast it, and ComfyScript's watcher takes
    it for one of its own tasks (AttributeError on ``None``, then it reconnects and may miss its own)."""
    async def run() -> list:
        async with websockets.connect(server.ws_url("watcher-" + uuid.uuid4().hex[:8])) as ws:
            await _recv_json(ws, 10)
            r = await asyncio.to_thread(client.post, "/prompt", json={"prompt": stub_graph(150)})
            pid = r.json()["prompt_id"]
            frames, deadline = [], time.monotonic() + 30
            while pid not in (await asyncio.to_thread(client.get, f"/history/{pid}")).json():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            try:
                while True:
                    frames.append(await _recv_json(ws, 0.5))
            except asyncio.TimeoutError:
                pass
            return frames

    frames = asyncio.run(run())
    assert not [f for f in frames if isinstance(f, dict) and f["type"] == "executing" and f["data"]["node"] is None]
    assert [f for f in frames if isinstance(f, dict) and f["type"] == "status"]


# ------------------------------------------------------------------------------------------------
# comfy-catapult: form-encoded /free and /queue, its upload fields
# ------------------------------------------------------------------------------------------------
def test_comfy_catapult_form_posts_and_upload(server, client):
    r = client.post("/free", data={"unload_models": "False", "free_memory": "False"})
    assert r.status_code == 200, r.text
    blocker = client.post("/prompt", json={"prompt": stub_graph(140, seconds=2.0, steps=4)}).json()["prompt_id"]
    pending = client.post("/prompt", json={"prompt": stub_graph(141)}).json()["prompt_id"]
    r = client.post("/queue", content=f"delete={pending}&clear=False".encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert pending not in [item[1] for item in client.get("/queue").json()["queue_pending"]]
    assert client.post("/interrupt").status_code == 200
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buf, format="PNG")
    for _ in range(2):  # overwrite=true keeps the name
        r = client.post("/upload/image",
                        files={"image": ("cat.png", buf.getvalue(), "application/octet-stream")},
                        data={"overwrite": "true", "subfolder": "catapult", "type": "input", "filename": "cat.png"})
        assert r.status_code == 200 and r.json() == {"name": "cat.png", "subfolder": "catapult", "type": "input"}
    deadline = time.monotonic() + 30
    while blocker not in client.get(f"/history/{blocker}").json() and time.monotonic() < deadline:
        time.sleep(0.1)
    entry = client.get("/history", params={"max_items": 5}).json()[blocker]
    # APIHistoryEntry: outputs, prompt (5 items), status {status_str, completed, messages}
    assert len(entry["prompt"]) == 5 and set(entry["status"]) >= {"status_str", "completed", "messages"}
    r = client.post("/prompt", content=b"not json", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400  # forms are read only where ComfyUI takes no prompt


# ------------------------------------------------------------------------------------------------
# comfy-cli `comfy run --workflow ui.json`: UI → API through /object_info
# ------------------------------------------------------------------------------------------------
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}


def _is_widget(spec: list) -> bool:
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if opts.get("forceInput") or opts.get("defaultInput"):
        return False
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def _ui_to_api(workflow: dict, object_info: dict) -> dict:
    """comfy-cli's rules: widget values positional over input_order's widget inputs, a control
    value after control_after_generate (or seed/noise_seed INT), links from the links table."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        info = object_info[node["type"]]
        linked = {i["name"]: links[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        inputs, values, k = {}, list(node.get("widgets_values") or []), 0
        for section in ("required", "optional"):
            for name in info["input_order"].get(section, []):
                spec = info["input"][section][name]
                if _is_widget(spec) and name not in linked and k < len(values):
                    inputs[name] = values[k]
                    k += 1
                    opts = spec[1] if len(spec) > 1 else {}
                    auto = opts.get("control_after_generate") or (spec[0] == "INT" and name in ("seed", "noise_seed"))
                    if auto and k < len(values) and values[k] in CONTROL_VALUES:
                        k += 1
                if name in linked:
                    inputs[name] = [str(linked[name][1]), linked[name][2]]
        assert k == len(values), f"{node['type']}: {len(values) - k} widget values left over"
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def test_comfy_cli_ui_to_api_via_object_info(server, client):
    workflow = json.loads((FIXTURES / "txt2img_basic.json").read_text())
    object_info = client.get("/object_info").json()
    for name, info in object_info.items():  # every declared input is placed by input_order
        for section in ("required", "optional"):
            assert sorted(info["input_order"].get(section, [])) == sorted(info["input"].get(section, {})), name
    for node in workflow["nodes"]:
        if node["type"] == "CheckpointLoaderSimple":
            node["widgets_values"] = ["tiny_sd1.safetensors"]
        elif node["type"] == "EmptyLatentImage":
            node["widgets_values"] = [64, 64, 1]
        elif node["type"] == "KSampler":
            node["widgets_values"][2] = 2  # steps
    prompt = _ui_to_api(workflow, object_info)
    ks = next(n for n in prompt.values() if n["class_type"] == "KSampler")["inputs"]
    assert isinstance(ks["seed"], int) and ks["steps"] == 2 and ks["sampler_name"] == "euler"
    assert ks["denoise"] == 1 and isinstance(ks["model"], list)
    r = client.post("/prompt", json={"prompt": prompt, "client_id": uuid.uuid4().hex})
    assert r.status_code == 200, r.text
    # comfy-cli's failure path parses ComfyUI's 400 body
    bad = json.loads(json.dumps(prompt))
    next(n for n in bad.values() if n["class_type"] == "CheckpointLoaderSimple")["inputs"]["ckpt_name"] = "no.ckpt"
    r = client.post("/prompt", json={"prompt": bad})
    assert r.status_code == 400
    errors = r.json()["node_errors"]
    assert any(e["type"] == "value_not_in_list" for n in errors.values() for e in n["errors"])
