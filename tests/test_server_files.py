"""The file routes (/view, /upload/image, /upload/mask) against names and files the OS refuses.

Every row goes through the real FastAPI app (in-process): whatever the file system says — a name
too long, a symlink loop, a directory where a file should be, an unreadable file, a full disk — the
answer is a JSON 4xx in ComfyUI's error shape, never a 5xx. Unreadable files and full disks are
simulated by making ``os.open`` / ``tempfile.mkstemp`` fail (the tests may run as root, who can read
anything).
"""
from __future__ import annotations

import errno
import io
import json
import os
import tempfile

import pytest
from PIL import Image

LONG = "a" * 300
DEEP = "/".join(["d" * 200] * 30)  # every component legal, the whole path over PATH_MAX


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (4, 4), (10, 20, 30, 255)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from fastapi.testclient import TestClient

    from engine.executor import Executor
    from engine.paths import Paths
    from engine.queue import JobQueue
    from nodes.registry import Registry
    from ui.server import create_app

    base = tmp_path_factory.mktemp("files")
    paths = Paths(base / "m", base / "i", base / "o", base / "t", base / "u")
    paths.ensure_dirs()
    inp = paths.input_dir
    for name in ("real.png", "café ☕.png", "unreadable.png", "é" * 100 + ".png"):
        (inp / name).write_bytes(_png())
    (inp / "subdir").mkdir()
    (inp / "taken.png").mkdir()  # a directory named like an image
    (inp / "loop.png").symlink_to(inp / "loop.png")
    (inp / "dangling.png").symlink_to(inp / "nowhere.png")
    os.mkfifo(inp / "fifo.png")
    registry = Registry()
    queue = JobQueue(paths.user_dir / "db.sqlite", Executor(registry, paths))
    app = create_app(paths, queue, registry, editor=False, start_queue=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, paths
    queue.close()


@pytest.fixture
def unreadable(monkeypatch):
    """``os.open`` of any file named unreadable.png fails as for a file without read permission."""
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if str(path).endswith("unreadable.png"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def _assert_error(r, allowed: set[int]) -> dict:
    assert r.status_code in allowed, (r.status_code, r.text[:300])
    body = r.json()
    assert set(body["error"]) == {"type", "message", "details", "extra_info"}, body
    assert "Traceback" not in r.text and "/i/" not in body["error"]["message"]  # no server paths
    return body["error"]


VIEW_TABLE = [
    ("filename of 300 chars", {"filename": LONG}, {400}),
    ("subfolder of 300 chars", {"filename": "real.png", "subfolder": LONG}, {400}),
    ("path over PATH_MAX", {"filename": "real.png", "subfolder": DEEP}, {400}),
    ("200 two-byte chars (400 bytes)", {"filename": "é" * 200 + ".png"}, {400}),
    ("NUL in filename", {"filename": "real.png\x00.txt"}, {400}),
    ("empty filename", {"filename": ""}, {400}),
    ("reserved DOS name", {"filename": "CON"}, {404}),
    ("reserved DOS name with ext", {"filename": "NUL.png"}, {404}),
    ("directory as filename", {"filename": "subdir"}, {404}),
    ("directory named .png", {"filename": "taken.png"}, {404}),
    ("subfolder is a file", {"filename": "x.png", "subfolder": "real.png"}, {404}),
    ("symlink loop", {"filename": "loop.png"}, {400, 403}),
    ("dangling symlink", {"filename": "dangling.png"}, {404}),
    ("fifo", {"filename": "fifo.png"}, {404}),
    ("trailing space", {"filename": "real.png "}, {404}),
    ("replacement char", {"filename": "\ufffd.png"}, {404}),
    ("unreadable file", {"filename": "unreadable.png"}, {403}),
    ("unreadable file, preview", {"filename": "unreadable.png", "preview": "webp;50"}, {403}),
]


@pytest.mark.parametrize("name,params,allowed", VIEW_TABLE, ids=[row[0] for row in VIEW_TABLE])
def test_view_refuses_with_a_4xx(env, unreadable, name, params, allowed):
    client, _ = env
    _assert_error(client.get("/view", params={"type": "input", **params}), allowed)


def test_view_serves_long_and_unicode_names_that_fit(env):
    client, _ = env
    for name in ("café ☕.png", "é" * 100 + ".png"):  # the second is 204 bytes: fits NAME_MAX
        r = client.get("/view", params={"type": "input", "filename": name})
        assert r.status_code == 200 and r.content == _png()


def test_view_of_an_undecodable_query_is_not_a_5xx(env):
    client, _ = env
    for raw in ("filename=%ED%A0%80.png", "filename=%FF%FE", "filename=" + "%C3%A9" * 200):
        r = client.get("/view?type=input&" + raw)
        assert 400 <= r.status_code < 500, (raw, r.status_code, r.text[:200])


def _upload(client, name: str, data: bytes | None = None, route: str = "/upload/image", **form):
    files = {"image": (name, data if data is not None else _png(), "image/png")}
    return client.post(route, files=files, data=form)


UPLOAD_TABLE = [
    ("subfolder of 300 chars", "ok.png", {"subfolder": LONG}, {400}),
    ("subfolder over PATH_MAX", "ok.png", {"subfolder": DEEP}, {400}),
    ("subfolder is a file", "ok.png", {"subfolder": "real.png"}, {409}),
    ("subfolder below a file", "ok.png", {"subfolder": "real.png/below"}, {409}),
    ("overwrite a directory", "taken.png", {"overwrite": "true"}, {409}),
    ("NUL in subfolder", "ok.png", {"subfolder": "a\x00b"}, {400}),
]


@pytest.mark.parametrize("name,filename,form,allowed", UPLOAD_TABLE, ids=[row[0] for row in UPLOAD_TABLE])
def test_upload_refuses_with_a_4xx(env, name, filename, form, allowed):
    client, _ = env
    _assert_error(_upload(client, filename, **form), allowed)


@pytest.mark.parametrize("filename", [LONG + ".png", "é" * 300 + ".png", "CON.png", "日本語 ☕.png",
                                      "taken.png"], ids=["long", "long-2byte", "CON", "cjk", "dir-taken"])
def test_upload_stores_awkward_names_within_limits(env, filename):
    """Over-long names are shortened to 200 bytes; a directory in the way gets a numbered name."""
    client, paths = env
    r = _upload(client, filename)
    assert r.status_code == 200, r.text
    stored = r.json()["name"]
    assert len(stored.encode()) <= 200 and (paths.input_dir / stored).is_file()
    assert stored != "taken.png"


@pytest.mark.parametrize("err,status", [(errno.ENOSPC, 413), (errno.EACCES, 403), (errno.EROFS, 403),
                                        (errno.EIO, 400)])
def test_upload_disk_errors_are_4xx(env, monkeypatch, err, status):
    client, _ = env

    def failing(*args, **kwargs):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(tempfile, "mkstemp", failing)
    _assert_error(_upload(client, "disk.png"), {status})


def test_mask_on_an_unreadable_original_is_403(env, unreadable, monkeypatch):
    client, _ = env
    ref = json.dumps({"filename": "unreadable.png", "type": "input"})
    real_read = type(env[1].input_dir).read_bytes

    def read_bytes(self):  # Path.read_bytes opens with io.open, not os.open
        if self.name == "unreadable.png":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(type(env[1].input_dir), "read_bytes", read_bytes)
    _assert_error(_upload(client, "m.png", route="/upload/mask", original_ref=ref), {403})


def test_mask_with_a_long_original_ref_is_400(env):
    client, _ = env
    ref = json.dumps({"filename": LONG, "type": "input"})
    _assert_error(_upload(client, "m.png", route="/upload/mask", original_ref=ref), {400})


def test_safe_join_refuses_lengths_and_loops(tmp_path):
    from engine.paths import MAX_NAME_BYTES, PathRefused, safe_join

    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert safe_join(tmp_path, "x" * MAX_NAME_BYTES) == tmp_path.resolve() / ("x" * MAX_NAME_BYTES)
    for parts in (("x" * (MAX_NAME_BYTES + 1),), (DEEP,), ("loop",), ("loop/inner",), ("\ud800",)):
        with pytest.raises(PathRefused):
            safe_join(tmp_path, *parts)
