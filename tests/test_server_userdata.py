"""/userdata, /v2/userdata, /users and /settings: ComfyUI's shapes and semantics, confined to the
user's folder, never a 5xx (ui/api_user.py). The app is ``ui.server.create_app`` in-process over
the stub registry, without the editor and without the queue worker."""
from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

import pytest

from engine.executor import Executor
from engine.paths import Paths
from engine.queue import JobQueue
from tests.stub_nodes import make_registry


def _app(base: Path):
    from ui.server import create_app

    paths = Paths(base / "m", base / "i", base / "o", base / "t", base / "u")
    paths.ensure_dirs()
    registry = make_registry()
    queue = JobQueue(Path(paths.user_dir) / "db.sqlite", Executor(registry, paths))
    return create_app(paths, queue, registry, start_queue=False, editor=False), queue


@pytest.fixture()
def env(tmp_path):
    from fastapi.testclient import TestClient

    app, queue = _app(tmp_path)
    with TestClient(app) as client:
        yield client, tmp_path / "u"
    queue.close()


def _url(name: str, query: str = "") -> str:
    return f"/api/userdata/{quote(name, safe='')}" + (f"?{query}" if query else "")


def _store(client, name: str, data: bytes = b'{"nodes": []}', query: str = "overwrite=true&full_info=false"):
    return client.post(_url(name, query), content=data)


def test_workflow_written_through_userdata_is_listed_by_dir(env):
    client, user_dir = env
    r = _store(client, "workflows/sub/my flow.json", query="overwrite=false&full_info=true")
    assert r.status_code == 200
    info = r.json()
    assert info["path"] == "workflows/sub/my flow.json" and info["size"] == 13
    assert isinstance(info["modified"], int) and isinstance(info["created"], int)
    assert (user_dir / "default" / "workflows" / "sub" / "my flow.json").read_bytes() == b'{"nodes": []}'
    assert _store(client, "workflows/top.json").json() == "workflows/top.json"

    listed = client.get("/api/userdata?dir=workflows&recurse=true&split=false&full_info=true").json()
    assert sorted(e["path"] for e in listed) == ["sub/my flow.json", "top.json"]
    assert set(listed[0]) == {"path", "size", "modified", "created"}
    assert client.get("/api/userdata?dir=workflows").json() == ["top.json"]  # no recursion
    assert client.get("/userdata?dir=workflows/&recurse=true&split=true").json() == [
        ["sub/my flow.json", "sub", "my flow.json"], ["top.json", "top.json"]]
    assert client.get(_url("workflows/sub/my flow.json")).content == b'{"nodes": []}'


def test_userdata_list_errors(env):
    client, _ = env
    assert client.get("/api/userdata").status_code == 400  # dir is required
    assert client.get("/api/userdata?dir=nothing_here").status_code == 404
    assert client.get("/api/userdata?dir=../..").status_code == 400


def test_overwrite_false_never_replaces(env):
    client, user_dir = env
    assert _store(client, "a.json", b"1", "overwrite=false").status_code == 200
    r = _store(client, "a.json", b"2", "overwrite=false")
    assert r.status_code == 409 and r.json()["error"]["type"] == "already_exists"
    assert (user_dir / "default" / "a.json").read_bytes() == b"1"
    assert _store(client, "a.json", b"3").status_code == 200  # overwrite defaults to true
    assert (user_dir / "default" / "a.json").read_bytes() == b"3"
    assert not [p for p in (user_dir / "default").iterdir() if p.name.startswith(".")]  # no temp left


def test_move_and_delete(env):
    client, user_dir = env
    _store(client, "workflows/a.json", b"A")
    _store(client, "workflows/b.json", b"B")
    move = f"{_url('workflows/a.json')}/move/{quote('workflows/b.json', safe='')}"
    assert client.post(move + "?overwrite=false").status_code == 409
    assert (user_dir / "default/workflows/b.json").read_bytes() == b"B"
    r = client.post(f"{_url('workflows/a.json')}/move/{quote('old/c.json', safe='')}?overwrite=false&full_info=true")
    assert r.status_code == 200 and r.json()["path"] == "old/c.json"
    assert not (user_dir / "default/workflows/a.json").exists()
    assert (user_dir / "default/old/c.json").read_bytes() == b"A"
    assert client.post(move).status_code == 404  # the source is gone
    assert client.post(f"{_url('old/c.json')}/move/{quote('workflows/b.json', safe='')}").json() == "workflows/b.json"
    assert (user_dir / "default/workflows/b.json").read_bytes() == b"A"  # overwrite defaults to true

    assert client.delete(_url("workflows/b.json")).status_code == 204
    assert client.delete(_url("workflows/b.json")).status_code == 404
    assert client.get(_url("workflows/b.json")).status_code == 404
    assert client.delete(_url("workflows")).status_code == 409  # a folder is not deleted


def test_a_name_containing_move_is_a_file_not_a_move(env):
    client, user_dir = env
    assert _store(client, "x/move/y.json", b"M").json() == "x/move/y.json"
    assert (user_dir / "default/x/move/y.json").read_bytes() == b"M"


def test_v2_listing(env):
    client, _ = env
    assert client.get("/api/v2/userdata").json() == []  # a new user's folder does not exist yet
    _store(client, "workflows/b.json", b"12")
    _store(client, "Zed.txt", b"1")
    items = client.get("/api/v2/userdata").json()
    assert [(i["name"], i["type"]) for i in items] == [("workflows", "directory"), ("b.json", "file"),
                                                       ("Zed.txt", "file")]  # folders first, then by name
    by_path = {i["path"]: i for i in items}
    assert by_path["workflows/b.json"]["size"] == 2 and isinstance(by_path["workflows/b.json"]["modified"], float)
    assert "size" not in by_path["workflows"]
    assert [i["path"] for i in client.get("/api/v2/userdata?path=workflows").json()] == ["workflows/b.json"]
    assert client.get("/api/v2/userdata?path=nope").status_code == 404
    assert client.get("/api/v2/userdata?path=Zed.txt").status_code == 400


HOSTILE = ["../secret.json", "a/../../secret.json", "/etc/passwd", "a\\..\\b", "a\x00b", "x" * 300,
           ("d/" * 1500) + "f", "C:/x", "~/x", "%2e%2e/x", "./a", "a/./b", "a\nb", ""]


@pytest.mark.parametrize("name", HOSTILE, ids=[repr(n)[:24] for n in HOSTILE])
@pytest.mark.parametrize("method", ["get", "post", "delete", "move_from", "move_to"])
def test_hostile_names_are_4xx_and_stay_inside(env, name, method):
    client, user_dir = env
    (user_dir / "secret.json").write_text("top secret")
    _store(client, "ok.json", b"ok")
    if method == "post":
        r = client.post(_url(name), content=b"pwned")
    elif method == "move_from":
        r = client.post(f"{_url(name)}/move/{quote('stolen.json', safe='')}")
    elif method == "move_to":
        r = client.post(f"{_url('ok.json')}/move/{quote(name, safe='')}")
    else:
        r = getattr(client, method)(_url(name))
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
    assert r.headers["content-type"].startswith("application/json")
    assert (user_dir / "secret.json").read_text() == "top secret"
    assert (user_dir / "default" / "ok.json").read_bytes() == b"ok"
    outside = [p for p in user_dir.rglob("*") if "pwned" in (p.read_text(errors="ignore") if p.is_file() else "")]
    assert outside == []


def test_symlinks_leaving_the_user_folder(env, tmp_path):
    client, user_dir = env
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "key.txt").write_text("secret")
    root = user_dir / "default"
    root.mkdir(parents=True)
    os.symlink(secret, root / "escape")
    os.symlink(secret / "key.txt", root / "key.txt")
    (root / "workflows").mkdir()
    os.symlink(secret / "key.txt", root / "workflows" / "link.json")
    for r in (client.get(_url("escape/key.txt")), client.get(_url("key.txt")),
              _store(client, "escape/new.json", b"x"), client.delete(_url("escape/key.txt")),
              client.get("/api/userdata?dir=escape")):
        assert r.status_code == 403, r.text
    assert sorted(os.listdir(secret)) == ["key.txt"]
    assert client.get("/api/userdata?dir=workflows").json() == []  # listings skip escaping links
    assert "escape" not in json.dumps(client.get("/api/v2/userdata").json())


def test_disk_errors_are_4xx(env, monkeypatch):
    import engine.paths

    client, _ = env

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(engine.paths.tempfile, "mkstemp", full)
    assert _store(client, "a.json").status_code == 413
    assert client.post("/api/settings", json={"a": 1}).status_code == 413


def test_user_css_is_inline_css_and_other_files_are_attachments(env):
    client, _ = env
    _store(client, "user.css", b"body{}")
    _store(client, "page.html", b"<script>alert(1)</script>")
    css = client.get(_url("user.css"))
    assert css.headers["content-type"].startswith("text/css") and css.headers["content-disposition"] == "inline"
    page = client.get(_url("page.html"))
    assert page.headers["content-type"] == "application/octet-stream"
    assert page.headers["content-disposition"] == "attachment"
    assert page.headers["x-content-type-options"] == "nosniff"


def test_settings_round_trip_and_survive_a_restart(tmp_path):
    from fastapi.testclient import TestClient

    app, queue = _app(tmp_path)
    with TestClient(app) as client:
        assert client.get("/api/settings").json() == {}
        assert client.post("/api/settings", json={"Comfy.A": 1, "Comfy.B": "x"}).status_code == 200
        assert client.post(f"/api/settings/{quote('Comfy.C')}", json=[1, {"k": True}]).status_code == 200
        assert client.post("/settings", json={"Comfy.A": 2}).status_code == 200
        assert client.get("/api/settings/Comfy.Missing").json() is None
        assert client.post("/api/settings", json=[1]).status_code == 400
        assert client.post("/api/settings", content=b"{bad").status_code == 400
    queue.close()
    stored = json.loads((tmp_path / "u" / "default" / "comfy.settings.json").read_text())
    assert stored == {"Comfy.A": 2, "Comfy.B": "x", "Comfy.C": [1, {"k": True}]}
    app, queue = _app(tmp_path)  # a new server over the same user folder
    with TestClient(app) as client:
        assert client.get("/settings").json() == stored
        assert client.get("/api/settings/Comfy.C").json() == [1, {"k": True}]
    queue.close()


def test_unreadable_settings_answer_empty_and_are_kept_aside(env):
    client, user_dir = env
    path = user_dir / "default" / "comfy.settings.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert client.get("/api/settings").json() == {}
    assert client.post("/api/settings/Comfy.A", json=5).status_code == 200
    assert json.loads(path.read_text()) == {"Comfy.A": 5}
    assert path.with_name("comfy.settings.json.bad").read_text() == "{not json"


def test_users_and_the_comfy_user_header(env):
    client, user_dir = env
    assert client.get("/api/users").json() == {"storage": "server", "migrated": False}
    _store(client, "a.json", b"default's")
    assert client.get("/api/users").json() == {"storage": "server", "migrated": True}

    r = client.post("/api/users", json={"username": "Ann Lee"})
    assert r.status_code == 200
    ann = r.json()
    assert ann.startswith("Ann-Lee_") and len(ann) == len("Ann-Lee_") + 36
    assert client.post("/api/users", json={"username": "Ann Lee"}).status_code == 400
    assert client.post("/api/users", json={"username": "__system"}).status_code == 400
    assert client.post("/api/users", json={"username": "  "}).status_code == 400
    assert client.post("/api/users", json={}).status_code == 400
    assert json.loads((user_dir / "users.json").read_text()) == {ann: "Ann Lee"}
    assert client.get("/api/users").json() == {"storage": "server", "users": {ann: "Ann Lee"}}

    ann_h = {"Comfy-User": ann}
    assert client.post(_url("a.json"), content=b"ann's", headers=ann_h).status_code == 200
    assert client.post("/api/settings", json={"who": "ann"}, headers=ann_h).status_code == 200
    assert client.get(_url("a.json"), headers=ann_h).content == b"ann's"
    assert client.get(_url("a.json"), headers={"Comfy-User": ""}).content == b"default's"
    assert client.get("/api/settings").json() == {}
    assert (user_dir / ann / "comfy.settings.json").is_file()
    for user in ("nobody", "__system", "../u", "a/b"):
        r = client.get(_url("a.json"), headers={"Comfy-User": user})
        assert r.status_code == 403 and r.json()["error"]["type"] == "unknown_user"


def test_real_server_keeps_settings_and_workflows_across_a_restart(tmp_path):
    """Under uvicorn (its raw path keeps %2F inside a file name) and across a process restart."""
    import httpx

    from tests.server_helpers import ServerProcess

    with ServerProcess(tmp_path) as server:
        assert httpx.post(server.url + "/api/settings", json={"Comfy.Locale": "fr"}).status_code == 200
        r = httpx.post(server.url + _url("workflows/saved one.json", "overwrite=false&full_info=false"),
                       content=b'{"nodes": []}')
        assert r.status_code == 200 and r.json() == "workflows/saved one.json"
        r = httpx.post(server.url + _url("workflows/a%2Fb move/c.json"), content=b"x")
        assert r.status_code == 400  # a percent-encoded sequence left after decoding is refused
    with ServerProcess(tmp_path) as server:
        assert httpx.get(server.url + "/api/settings").json() == {"Comfy.Locale": "fr"}
        listed = httpx.get(server.url + "/api/userdata?dir=workflows&recurse=true&full_info=true").json()
        assert [e["path"] for e in listed] == ["saved one.json"]
