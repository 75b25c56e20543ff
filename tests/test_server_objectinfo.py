"""/object_info and the other read-only info routes, in the shapes third-party clients parse.

ComfyScript and comfy-cli read /object_info strictly: every class carries the same keys, an input
is ``[TYPE, {options}]`` or ``[[choices], {options}]``, and file combos list the folders' current
contents (a file added while the server runs shows up on the next request).
"""
from __future__ import annotations

import httpx
import pytest

from tests.server_helpers import ServerProcess

CLASS_KEYS = {"input", "input_order", "output", "output_is_list", "output_name", "name", "display_name",
              "description", "python_module", "category", "output_node", "output_tooltips"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("srv_info")
    models = base / "models"
    for folder in ("checkpoints", "embeddings", "loras"):
        (models / folder).mkdir(parents=True)
    (models / "checkpoints" / "first.safetensors").write_bytes(b"not really")
    (models / "embeddings" / "nice_style.pt").write_bytes(b"x")
    (models / "embeddings" / "other.safetensors").write_bytes(b"x")
    srv = ServerProcess(base, models_dir=models).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30.0) as c:
        yield c


def _check_input(spec: list) -> None:
    assert isinstance(spec, list) and 1 <= len(spec) <= 2
    head = spec[0]
    assert isinstance(head, str) or (isinstance(head, list) and all(isinstance(c, str) for c in head))
    if len(spec) == 2:
        assert isinstance(spec[1], dict)


def test_object_info_shape_for_every_class(client):
    info = client.get("/object_info").json()
    assert {"LgConst", "LgSlow", "LgSave", "LgPickFile"} <= set(info)
    for name, entry in info.items():
        assert set(entry) >= CLASS_KEYS, name
        assert entry["name"] == name
        assert set(entry["input"]) <= {"required", "optional", "hidden"}
        for section in ("required", "optional"):
            for spec in entry["input"].get(section, {}).values():
                _check_input(spec)
            assert list(entry["input"].get(section, {})) == entry["input_order"].get(section, [])
        n = len(entry["output"])
        assert len(entry["output_is_list"]) == n and len(entry["output_name"]) == n
        assert isinstance(entry["output_node"], bool)
    assert client.get("/api/object_info").json() == info


def test_object_info_single_class_and_unknown(client):
    one = client.get("/object_info/LgSlow").json()
    assert list(one) == ["LgSlow"]
    slow = one["LgSlow"]
    assert slow["input"]["required"]["steps"] == ["INT", {"default": 4, "min": 1, "max": 10000, "step": 1}]
    assert slow["output"] == ["LG_INT"] and slow["output_name"] == ["value"] and slow["category"] == "lg_test"
    assert client.get("/object_info/NoSuchNode").json() == {}


def test_combos_list_current_files(server, client):
    def choices() -> tuple[list, list]:
        req = client.get("/object_info/LgPickFile").json()["LgPickFile"]["input"]["required"]
        return req["ckpt_name"][0], req["image"][0]

    ckpts, images = choices()
    assert ckpts == ["first.safetensors"]
    (server.models_dir / "checkpoints" / "sub").mkdir(exist_ok=True)
    (server.models_dir / "checkpoints" / "sub" / "second.ckpt").write_bytes(b"x")
    server.dirs["input"].mkdir(parents=True, exist_ok=True)
    (server.dirs["input"] / "fresh.png").write_bytes(b"x")
    ckpts, images = choices()
    assert ckpts == ["first.safetensors", "sub/second.ckpt"]
    assert "fresh.png" in images
    req = client.get("/object_info/LgPickFile").json()["LgPickFile"]["input"]["required"]
    assert req["image"][1].get("image_upload") is True


def test_models_and_embeddings(client):
    folders = client.get("/models").json()
    assert {"checkpoints", "loras", "embeddings", "vae"} <= set(folders)
    assert "first.safetensors" in client.get("/models/checkpoints").json()
    assert client.get("/api/models/loras").json() == []
    assert client.get("/models/not_a_folder").status_code == 404
    assert client.get("/embeddings").json() == ["nice_style", "other"]


def test_system_stats_shape(client):
    stats = client.get("/system_stats").json()
    system = stats["system"]
    assert {"os", "ram_total", "ram_free", "comfyui_version", "python_version", "pytorch_version",
            "embedded_python", "argv"} <= set(system)
    assert system["comfyui_version"] == "0.3.64" and system["latentgraph_version"]
    assert system["ram_total"] >= system["ram_free"] > 0
    dev = stats["devices"][0]
    assert {"name", "type", "index", "vram_total", "vram_free", "torch_vram_total", "torch_vram_free"} <= set(dev)


def test_probe_routes(client):
    assert client.get("/extensions").json() == []
    assert client.get("/api/extensions").json() == []
    assert isinstance(client.get("/features").json(), dict)
    assert client.get("/settings").status_code == 200
    assert client.get("/users").status_code == 200
    assert client.post("/free", json={"unload_models": True, "free_memory": True}).json() == {}
    assert client.post("/interrupt").status_code == 200


def test_pooled_connection_survives_an_idle_wait(server):
    """A client that keeps its connection idle longer than uvicorn's default 5 s keep-alive (while
    it waits on the WebSocket) reuses it: the server keeps connections 75 s, as ComfyUI's aiohttp."""
    import socket
    import time

    host, port = server.url.removeprefix("http://").split(":")
    request = f"GET /system_stats HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        for _ in range(2):
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(65536)
                assert chunk, "the server closed the idle connection"
                head += chunk
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length:
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection mid-body"
                body += chunk
            time.sleep(6.5)
