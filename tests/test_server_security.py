"""Hostile inputs against a real server subprocess: each refused with a JSON 4xx, server still up.

Covers path traversal in every spelling (plain, %-encoded, double-encoded, absolute, NUL,
backslash, drive letter, symlinks leaving input/), hostile uploads (not an image, truncated,
decompression bomb, oversized, disguised names), hostile JSON (huge, malformed, deeply nested,
wrong shapes) and the bearer-token guard on HTTP and WebSocket.
"""
from __future__ import annotations

import asyncio
import io
import json
import struct
import zlib

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from PIL import Image

from tests.server_helpers import ServerProcess, stub_graph
from ui.server import listen_warning

SECRET = b"top secret outside the roots"


def _png(size=(4, 4), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(side: int = 20000) -> bytes:
    """A 1-bit greyscale PNG of side×side pixels, all zero: ~50 MB decoded, tens of KB on disk."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("srv_sec")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(SECRET)
    srv = ServerProcess(base)
    srv.dirs["input"].mkdir(parents=True)
    (srv.dirs["input"] / "escape.png").symlink_to(outside / "secret.png")
    (srv.dirs["input"] / "linkdir").symlink_to(outside, target_is_directory=True)
    srv.start()
    yield srv
    srv.stop()


def _view(filename: str, subfolder: str = "", type_: str = "input") -> tuple:
    return ("GET", "/view", {"params": {"filename": filename, "subfolder": subfolder, "type": type_}})


def _raw(path_and_query: str) -> tuple:
    return ("GET", path_and_query, {})


def _upload(name: str, data: bytes, **form) -> tuple:
    return ("POST", "/upload/image", {"files": {"image": (name, data, "image/png")}, "data": form})


HOSTILE = [
    ("view traversal filename", _view("../../outside/secret.png"), {400, 403}),
    ("view traversal subfolder", _view("secret.png", "../../outside"), {400, 403}),
    ("view %2e%2e encoded", _raw("/view?type=input&filename=%2e%2e%2f%2e%2e%2foutside%2fsecret.png"), {400, 403}),
    ("view double encoded", _raw("/view?type=input&filename=%252e%252e%252fsecret.png"), {400, 403}),
    ("view encoded subfolder", _raw("/view?type=input&filename=secret.png&subfolder=%2e%2e/%2e%2e/outside"), {400, 403}),
    ("view absolute filename", _view("/etc/passwd"), {400, 403}),
    ("view absolute subfolder", _view("passwd", "/etc"), {400, 403}),
    ("view NUL byte", _raw("/view?type=input&filename=escape.png%00.txt"), {400, 403}),
    ("view backslashes", _view("..\\..\\outside\\secret.png"), {400, 403}),
    ("view drive letter", _view("C:/Windows/win.ini"), {400, 403}),
    ("view symlink file escape", _view("escape.png"), {403}),
    ("view symlink dir escape", _view("secret.png", "linkdir"), {403}),
    ("view bad type", _view("x.png", "", "../models"), {400}),
    ("view missing file", _view("nope.png"), {404}),
    ("api view traversal", ("GET", "/api/view", {"params": {"filename": "../../../etc/passwd"}}), {400, 403}),
    ("upload not an image", _upload("evil.png", b"<script>alert(1)</script>"), {400, 415}),
    ("upload svg", _upload("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"), {400, 415}),
    ("upload truncated png", _upload("cut.png", _png((64, 64))[:60]), {400}),
    ("upload decompression bomb", _upload("bomb.png", _bomb_png()), {413}),
    ("upload subfolder traversal", _upload("ok.png", _png(), subfolder="../../outside"), {400, 403}),
    ("upload subfolder symlink", _upload("ok.png", _png(), subfolder="linkdir"), {403}),
    ("upload filename traversal", _upload("../../outside/pwn.png", _png()), {400}),
    ("upload filename backslash", _upload("..\\..\\pwn.png", _png()), {400}),
    ("upload bad type", _upload("ok.png", _png(), type="../../outside"), {400}),
    ("upload no image field", ("POST", "/upload/image", {"data": {"subfolder": "x"}}), {400}),
    ("upload not multipart", ("POST", "/upload/image", {"content": b"{}"}), {400}),
    ("mask original_ref traversal", ("POST", "/upload/mask", {
        "files": {"image": ("m.png", _png(mode="RGBA"), "image/png")},
        "data": {"original_ref": json.dumps({"filename": "../../outside/secret.png", "type": "input"})}}), {400, 403}),
    ("huge json body", ("POST", "/prompt", {"content": b'{"prompt": "' + b"a" * (17 << 20) + b'"}'}), {413}),
    ("bad json", ("POST", "/prompt", {"content": b'{"prompt": {'}), {400}),
    ("deeply nested json", ("POST", "/prompt", {"content": b"[" * 200000}), {400}),
    ("prompt not a dict", ("POST", "/prompt", {"json": {"prompt": [1, 2, 3]}}), {400}),
    ("body not a dict", ("POST", "/prompt", {"json": "hello"}), {400}),
    ("unknown class", ("POST", "/prompt", {"json": {"prompt": {"1": {"class_type": "Nope", "inputs": {}}}}}), {400}),
    ("node not a dict", ("POST", "/prompt", {"json": {"prompt": {"1": 5}}}), {400}),
    ("prompt_id not a string", ("POST", "/prompt", {"json": {"prompt": stub_graph(1), "prompt_id": {"a": 1}}}), {400}),
    ("queue delete not list", ("POST", "/queue", {"json": {"delete": "x"}}), {400}),
    ("history bad max_items", ("GET", "/history?max_items=lots", {}), {400}),
    ("unknown model folder", ("GET", "/models/..%2F..%2Fetc", {}), {404}),
]


@pytest.mark.parametrize("name,request_,allowed", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_refused(server, name, request_, allowed):
    method, url, kwargs = request_
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        r = c.request(method, url, **kwargs)
        assert r.status_code in allowed, (r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()  # the mounted editor answers unknown paths with {"detail": ...}
        assert ("error" in body or "detail" in body) and "Traceback" not in r.text
        assert c.get("/system_stats").status_code == 200
    assert SECRET not in r.content


def test_nothing_was_written_outside(server):
    outside = server.base / "outside"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.png"]
    assert not list(server.base.glob("pwn*")) and not list(server.dirs["input"].rglob("pwn*"))


def test_streamed_body_over_limit_is_413(server):
    def gen():
        for _ in range(18):
            yield b"x" * (1 << 20)

    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        r = c.post("/prompt", content=gen(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert c.get("/prompt").status_code == 200


def test_oversized_upload_is_413(server):
    data = b"\x89PNG\r\n\x1a\n" + b"\x00" * (51 << 20)
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        try:
            r = c.post("/upload/image", files={"image": ("big.png", data, "image/png")})
            assert r.status_code == 413
        except httpx.TransportError:
            pass  # the server may close the connection while the client is still sending
        assert c.get("/system_stats").status_code == 200
    assert not list(server.dirs["input"].glob("big*"))


def test_upload_names_are_sanitised(server):
    """Control characters and leading dots go; the extension follows the decoded format."""
    boundary = "lgboundary7"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"..hidden\x07name.html\"\r\nContent-Type: image/png\r\n\r\n").encode() \
        + _png() + f"\r\n--{boundary}--\r\n".encode()
    with httpx.Client(base_url=server.url, timeout=30.0) as c:
        r = c.post("/upload/image", content=body,
                   headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 200, r.text
        name = r.json()["name"]
        assert name == "hiddenname.png"
        assert (server.dirs["input"] / name).is_file()


def test_listen_warning():
    assert listen_warning("127.0.0.1", None) is None
    assert "NO authentication" in listen_warning("0.0.0.0", None)
    assert "NO authentication" not in listen_warning("0.0.0.0", "tok")


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("srv_tok"), auth_token="s3cret-token")
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("path", ["/system_stats", "/api/queue", "/object_info", "/view?filename=x.png",
                                  "/history", "/"])
def test_token_required_everywhere(token_server, path):
    with httpx.Client(base_url=token_server.url, timeout=30.0) as c:
        assert c.get(path).status_code == 401
        assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = c.get(path, headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code != 401


def test_token_query_sets_cookie_for_browsers(token_server):
    with httpx.Client(base_url=token_server.url, timeout=30.0) as c:
        assert c.get("/system_stats", params={"token": "s3cret-token"}).status_code == 200
        assert c.get("/queue").status_code == 200  # the cookie now carries the token
    with httpx.Client(base_url=token_server.url, timeout=30.0) as c:
        r = c.post("/prompt", json={"prompt": stub_graph(1)})
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"


def test_token_page_for_browsers_and_public_manifest(token_server):
    with httpx.Client(base_url=token_server.url, timeout=30.0) as c:
        page = c.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
        assert page.status_code == 401 and "text/html" in page.headers["content-type"]
        assert "/?token=" in page.text
        assert c.get("/manifest.json").status_code != 401  # browsers fetch it without cookies
        assert c.get("/manifest.json/x").status_code == 401


def test_websocket_needs_token(token_server):
    async def run() -> None:
        url = f"ws://127.0.0.1:{token_server.port}/ws?clientId=abc"
        with pytest.raises(InvalidStatus):
            async with websockets.connect(url):
                pass
        async with websockets.connect(url + "&token=s3cret-token") as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert hello["type"] == "status" and hello["data"]["sid"] == "abc"
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer s3cret-token"}) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "status"

    asyncio.run(run())


def test_cross_origin_and_dns_rebinding_refused(server):
    """A web page elsewhere (or a rebound DNS name) must not drive the local server."""
    here = f"http://127.0.0.1:{server.port}"
    with httpx.Client(base_url=server.url, timeout=30.0) as c:
        evil = c.post("/prompt", json={"prompt": stub_graph(1)}, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403 and evil.json()["error"]["type"] == "forbidden_origin"
        assert c.get("/queue", headers={"Origin": "null"}).status_code == 403
        rebound = c.get("/system_stats", headers={"Host": f"evil.example:{server.port}"})
        assert rebound.status_code == 403
        same = c.get("/system_stats", headers={"Origin": here})
        assert same.status_code == 200
        alias = c.get("/system_stats", headers={"Origin": f"http://localhost:{server.port}",
                                                "Host": f"localhost:{server.port}"})
        assert alias.status_code == 200

    async def ws_check() -> None:
        with pytest.raises(InvalidStatus):
            async with websockets.connect(server.ws_url("x"), origin="http://evil.example"):
                pass
        async with websockets.connect(server.ws_url("x"), origin=here) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "status"

    asyncio.run(ws_check())


def test_unexpected_error_is_json_without_traceback(tmp_path):
    """A bug behind a route answers 500 JSON naming the error, never a traceback page."""
    from fastapi.testclient import TestClient

    from engine.executor import Executor
    from engine.paths import Paths
    from engine.queue import JobQueue
    from nodes.registry import Registry
    from ui.server import create_app

    class BrokenQueue(JobQueue):
        def queue(self):
            raise RuntimeError("store exploded")

    paths = Paths(tmp_path / "m", tmp_path / "i", tmp_path / "o", tmp_path / "t", tmp_path / "u")
    registry = Registry()
    queue = BrokenQueue(tmp_path / "u" / "db.sqlite", Executor(registry, paths))
    app = create_app(paths, queue, registry, editor=False, start_queue=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/queue")
        assert r.status_code == 500
        assert r.json()["error"] == {"type": "internal_error", "message": "RuntimeError: store exploded",
                                     "details": "", "extra_info": {}}
        assert "Traceback" not in r.text
        assert c.get("/prompt").json() == {"exec_info": {"queue_remaining": 0}}
    queue.close()
