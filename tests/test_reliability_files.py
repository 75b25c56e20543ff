"""Hostile file-route requests beyond tests/test_server_security.py's table: OS-level failures.

That module covers traversal spellings, NUL, symlinks leaving input/ and upload content; this one
adds what makes the operating system fail rather than our checks: names over NAME_MAX / PATH_MAX,
a subfolder that is a file, symlink loops, a symlink that leaves output/, overwriting through a
symlink, mask uploads with hostile references, images whose header claims 10^10 pixels.
Every answer must be a JSON 4xx (never a 5xx), the server must keep answering, and no file may
appear (or change) outside the roots.
"""
from __future__ import annotations

import io
import json
import struct
import zlib

import httpx
import pytest
from PIL import Image

from tests.fuzz_cases import response_problem
from tests.server_helpers import ServerProcess

SECRET = b"outside the roots"


def _png(size=(4, 4), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def _claims_huge_png(side: int = 100_000) -> bytes:
    """A valid PNG signature and IHDR claiming side×side RGB pixels, with one tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("srv_files")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(SECRET)
    (outside / "real.png").write_bytes(_png())
    srv = ServerProcess(base)
    for d in srv.dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    inp, out = srv.dirs["input"], srv.dirs["output"]
    (inp / "loop_a").symlink_to(inp / "loop_b")
    (inp / "loop_b").symlink_to(inp / "loop_a")
    (inp / "escape.png").symlink_to(outside / "secret.png")
    (inp / "img_escape.png").symlink_to(outside / "real.png")
    (out / "out_escape.png").symlink_to(outside / "secret.png")
    (inp / "plain.txt").write_bytes(b"not an image")
    (inp / "ok.png").write_bytes(_png())
    (inp / "sub").mkdir()
    srv.start()
    yield srv
    srv.stop()


LONG = "a" * 300 + ".png"  # over NAME_MAX (255)
LONG_UNICODE = "é" * 200 + ".png"  # 400 bytes in UTF-8
DEEP = "/".join(["d" * 200] * 30)  # over PATH_MAX (4096)


def _view(filename: str, subfolder: str = "", type_: str = "input", **extra) -> tuple:
    return ("GET", "/view", {"params": {"filename": filename, "subfolder": subfolder, "type": type_, **extra}})


def _upload(route: str, name: str, data: bytes, **form) -> tuple:
    return ("POST", route, {"files": {"image": (name, data, "image/png")}, "data": form})


def _mask(ref: object, data: bytes | None = None) -> tuple:
    return _upload("/upload/mask", "m.png", data or _png(mode="RGBA"),
                   original_ref=ref if isinstance(ref, str) else json.dumps(ref))


HOSTILE = [
    ("view name over NAME_MAX", _view(LONG)),
    ("view unicode name over NAME_MAX", _view(LONG_UNICODE)),
    ("view subfolder over PATH_MAX", _view("x.png", DEEP)),
    ("view 8 KB query", ("GET", "/view?type=input&filename=" + "b" * 8000, {})),
    ("view symlink loop", _view("loop_a")),
    ("view symlink leaving output/", _view("out_escape.png", type_="output")),
    ("view directory", _view("sub")),
    ("view subfolder is a file", _view("x.png", "plain.txt")),
    ("view preview of a non-image", _view("plain.txt", preview="webp;90")),
    ("view channel unknown", _view("ok.png", channel="../../a")),
    ("upload subfolder over PATH_MAX", _upload("/upload/image", "ok2.png", _png(), subfolder=DEEP)),
    ("upload subfolder over NAME_MAX", _upload("/upload/image", "ok2.png", _png(), subfolder="s" * 300)),
    ("upload subfolder is a file", _upload("/upload/image", "ok2.png", _png(), subfolder="plain.txt")),
    ("upload subfolder symlink loop", _upload("/upload/image", "ok2.png", _png(), subfolder="loop_a")),
    ("upload header claims 10^10 pixels", _upload("/upload/image", "huge.png", _claims_huge_png())),
    ("upload empty file", _upload("/upload/image", "empty.png", b"")),
    ("mask not an image", _mask({"filename": "ok.png", "subfolder": "", "type": "input"}, b"GIF89a junk")),
    ("mask header claims 10^10 pixels", _mask({"filename": "ok.png", "subfolder": "", "type": "input"},
                                              _claims_huge_png())),
    ("mask ref through a symlink", _mask({"filename": "img_escape.png", "subfolder": "", "type": "input"})),
    ("mask ref symlink loop", _mask({"filename": "loop_a", "subfolder": "", "type": "input"})),
    ("mask ref name over NAME_MAX", _mask({"filename": LONG, "subfolder": "", "type": "input"})),
    ("mask ref not an image", _mask({"filename": "plain.txt", "subfolder": "", "type": "input"})),
    ("mask ref wrong shape", _mask([1, 2, 3])),
    ("mask ref deep JSON", _mask("[" * 100_000 + "]" * 100_000)),
    ("mask ref huge number", _mask('{"filename": "ok.png", "subfolder": "", "type": "input", "x": ' + "9" * 5000 + "}")),
    ("mask ref bad type", _mask({"filename": "ok.png", "subfolder": "", "type": 5})),
]


@pytest.mark.parametrize("name,request_", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_file_request_is_a_json_4xx(server, name, request_):
    method, url, kwargs = request_
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        r = c.request(method, url, **kwargs)
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
        assert response_problem(r.status_code, r.headers.get("content-type", ""), r.content,
                                prompt_route=False) is None, r.text[:300]
        assert SECRET not in r.content
        assert c.get("/system_stats").status_code == 200


@pytest.mark.parametrize("name", [LONG, LONG_UNICODE], ids=["ascii", "unicode"])
def test_upload_name_over_name_max_is_refused_or_shortened(server, name):
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        r = c.post("/upload/image", files={"image": (name, _png(), "image/png")})
        assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text[:300])
        assert response_problem(r.status_code, r.headers.get("content-type", ""), r.content,
                                prompt_route=False) is None, r.text[:300]
        if r.status_code == 200:
            stored = r.json()["name"]
            assert len(stored.encode()) <= 255 and (server.dirs["input"] / stored).is_file()


def test_overwrite_through_a_symlink_never_writes_outside(server):
    """An upload named like a symlink that leaves input/ is refused or replaces the link itself."""
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        r = c.post("/upload/image", files={"image": ("escape.png", _png(), "image/png")}, data={"overwrite": "true"})
        assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text[:300])
        assert response_problem(r.status_code, r.headers.get("content-type", ""), r.content,
                                prompt_route=False) is None
    assert (server.base / "outside" / "secret.png").read_bytes() == SECRET


def test_nothing_appeared_outside_the_roots(server):
    outside = server.base / "outside"
    assert sorted(p.name for p in outside.iterdir()) == ["real.png", "secret.png"]
    assert (outside / "secret.png").read_bytes() == SECRET
    roots = {p.name for p in server.dirs.values()} | {"outside", "models"}
    strays = [p.name for p in server.base.iterdir() if p.name not in roots and not p.name.startswith("server-")]
    assert not strays, strays
