"""Per-user files and settings, as ComfyUI's user manager serves them to its frontend.

Routes (at ``/`` and ``/api``): ``GET/POST /users``; ``GET /userdata?dir=&recurse=&full_info=&split=``;
``GET /v2/userdata?path=``; ``GET/POST/DELETE /userdata/{file}`` (``overwrite``, ``full_info``);
``POST /userdata/{file}/move/{dest}``; ``GET/POST /settings`` and ``/settings/{id}``.

Layout (ComfyUI's, so a ComfyUI ``user/`` folder can be reused): ``<user_dir>/<user>/...`` holds a
user's files (``workflows/``, ``subgraphs/``, ``comfy.settings.json``, ``user.css``...),
``<user_dir>/users.json`` maps user ids to names. The user comes from the ``Comfy-User`` header
(empty or absent = ``default``, always known); other ids must be in users.json, which POST /users
fills — once it has entries, GET /users lists them (ComfyUI's multi-user answer) instead of
``migrated``. Ids starting with ``__`` are ComfyUI's system users and never served.

Every client path goes through ``ui.api_files.check_part`` (no ``..``, absolute paths, control
characters, backslashes, percent-encoding, over-long names) and ``engine.paths.safe_join`` under the
user's folder (symlinks leaving it are refused; listings skip them), is written atomically
(``engine.paths.write_bytes_atomic``: temp file, fsync, rename) and fails as a JSON 4xx, never a 5xx.
The file names arrive URL-encoded in one path segment (``workflows%2Fa.json``); they are decoded
from the raw path so a ``/move/`` inside a name cannot be confused with the move route.
"""
from __future__ import annotations

import json
import logging
import mimetypes
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from engine.paths import write_bytes_atomic
from ui.api_files import _ACTIVE_TYPES, ApiError, _safe_join, check_part, os_errors
from ui.api_routes import read_json

log = logging.getLogger("latentgraph.users")
DEFAULT_USER = "default"
SYSTEM_PREFIX = "__"
USERS_FILE = "users.json"
SETTINGS_FILE = "comfy.settings.json"
MAX_USERNAME = 100
MAX_DEPTH = 64  # folder levels in a user path: deeper ones would exhaust recursive mkdir/walk


def _flag(params: Any, name: str, default: bool) -> bool:
    """ComfyUI's query flags: ``overwrite`` is on unless "false"; the others only when "true"."""
    value = params.get(name)
    if value is None:
        return default
    return value.lower() != "false" if default else value.lower() == "true"


def _inside(root: Path, path: Path) -> bool:
    """Does ``path`` (following symlinks) stay under ``root`` (resolved)?"""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return False
    return resolved == root or root in resolved.parents


def _read_object(path: Path, consequence: str) -> dict | None:
    """A JSON object file: {} when absent, None (logged with ``consequence``) when unreadable or
    not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s (%s): %s", path, exc, consequence)
        return None
    if not isinstance(data, dict):
        log.warning("%s is not a JSON object: %s", path, consequence)
        return None
    return data


def file_info(path: Path, root: Path) -> dict:
    """ComfyUI's full_info entry: path relative to ``root`` with '/', size, times in ms."""
    st = path.stat()
    return {"path": path.relative_to(root).as_posix(), "size": st.st_size,
            "modified": int(st.st_mtime * 1000), "created": int(st.st_ctime * 1000)}


class UserFiles:
    """The users (users.json) and each user's confined folder, files and settings."""

    def __init__(self, user_dir: str | Path) -> None:
        self.user_dir = Path(user_dir)
        self._lock = threading.Lock()  # users.json and settings read-modify-write

    # -- users -------------------------------------------------------------------------------
    def _stored_users(self) -> dict[str, str]:
        data = _read_object(self.user_dir / USERS_FILE, "only the default user is known") or {}
        return {str(k): str(v) for k, v in data.items()}

    def users_info(self) -> dict:
        users = self._stored_users()
        if users:
            return {"storage": "server", "users": users}
        return {"storage": "server", "migrated": (self.user_dir / DEFAULT_USER).is_dir()}

    def add_user(self, body: Any) -> str:
        """POST /users: a new id ``<name with [^a-zA-Z0-9-_] → ->_<uuid4>``, saved in users.json."""
        name = body.get("username") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "invalid_parameter", "username not provided")
        name = name.strip()
        if len(name) > MAX_USERNAME or any(ord(c) < 32 for c in name):
            raise ApiError(400, "invalid_parameter", f"username must be at most {MAX_USERNAME} printable characters")
        user_id = re.sub(r"[^a-zA-Z0-9\-_]+", "-", name)
        if name.startswith(SYSTEM_PREFIX) or user_id.startswith(SYSTEM_PREFIX):
            raise ApiError(400, "invalid_parameter", "System User prefix not allowed")
        with self._lock:
            users = self._stored_users()
            if name in users.values():
                raise ApiError(400, "duplicate_user", "Duplicate username.")
            user_id = f"{user_id}_{uuid.uuid4()}"
            users[user_id] = name
            with os_errors("cannot save the users"):
                write_bytes_atomic(self.user_dir / USERS_FILE, json.dumps(users, indent=1).encode("utf-8"))
        return user_id

    def user_root(self, request: Request) -> Path:
        """The requesting user's folder (resolved; may not exist yet). Unknown user → 403."""
        user = (request.headers.get("comfy-user") or "").strip() or DEFAULT_USER
        known = user == DEFAULT_USER or user in self._stored_users()
        if user.startswith(SYSTEM_PREFIX) or "/" in user or not known:
            raise ApiError(403, "unknown_user", f"Unknown user: {user[:100]}")
        check_part(user, "user")
        return _safe_join(self.user_dir, user).resolve()

    def resolve(self, root: Path, name: str, what: str = "file") -> Path:
        """``name`` (a client path with '/') under ``root``; refused → 400/403."""
        check_part(name, what)
        if not name.strip("/"):
            raise ApiError(400, "invalid_path", f"{what} is required")
        if name.count("/") >= MAX_DEPTH:
            raise ApiError(400, "invalid_path", f"{what} is nested deeper than {MAX_DEPTH} folders")
        return _safe_join(root, *name.split("/"))

    # -- settings ----------------------------------------------------------------------------
    def settings(self, root: Path) -> dict:
        """The user's comfy.settings.json ({} when absent or unreadable: the page must load)."""
        return _read_object(root / SETTINGS_FILE, "answering no settings") or {}

    def update_settings(self, root: Path, changes: dict) -> None:
        """Merge ``changes`` into the settings file, atomically; an unreadable old file is kept
        beside it as ``comfy.settings.json.bad`` rather than silently lost."""
        path = root / SETTINGS_FILE
        with self._lock, os_errors("cannot save the settings"):
            current = _read_object(path, "it is kept as comfy.settings.json.bad")
            if current is None:
                os.replace(path, path.with_name(SETTINGS_FILE + ".bad"))
            write_bytes_atomic(path, json.dumps({**(current or {}), **changes}, indent=4).encode("utf-8"))


# ------------------------------------------------------------------------------------------------
# listings
# ------------------------------------------------------------------------------------------------
def _walk(base: Path, root: Path, recurse: bool) -> list[tuple[Path, bool]]:
    """(path, is_dir) under ``base``: no hidden entries, nothing whose target leaves ``root``."""
    found: list[tuple[Path, bool]] = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and _inside(root, here / d))
        found += [(here / d, True) for d in dirnames]
        found += [(here / f, False) for f in sorted(filenames)
                  if not f.startswith(".") and _inside(root, here / f)]
        if not recurse:
            break
    return found


def list_userdata(files: UserFiles, request: Request) -> list:
    """GET /userdata: files under ``dir`` (relative to it), as names, split paths or full info."""
    q = request.query_params
    directory = q.get("dir", "")
    if not directory:
        raise ApiError(400, "invalid_parameter", "Directory not provided")
    root = files.user_root(request)
    base = files.resolve(root, directory.rstrip("/") or directory, "dir")
    if not base.exists():
        raise ApiError(404, "not_found", "Directory not found")
    if not base.is_dir():  # ComfyUI globs inside it: nothing
        return []
    recurse, full_info, split = (_flag(q, n, False) for n in ("recurse", "full_info", "split"))
    found = sorted((path.relative_to(base).as_posix(), path) for path, is_dir in _walk(base, root, recurse)
                   if not is_dir and path.is_file())
    return [file_info(path, base) if full_info else [rel, *rel.split("/")] if split else rel
            for rel, path in found]


def list_userdata_v2(files: UserFiles, request: Request) -> list:
    """GET /v2/userdata?path=: every file and folder below ``path``, folders first, by name."""
    root = files.user_root(request)
    rel = request.query_params.get("path", "").strip("/")
    base = files.resolve(root, rel, "path") if rel else root
    if not base.exists():
        if base == root:
            return []
        raise ApiError(404, "not_found", "Requested path not found")
    if not base.is_dir():
        raise ApiError(400, "not_a_directory", "Requested path is not a directory")
    out = []
    for path, is_dir in _walk(base, root, recurse=True):
        entry: dict[str, Any] = {"name": path.name, "path": path.relative_to(root).as_posix(),
                                 "type": "directory" if is_dir else "file"}
        if not is_dir:
            try:
                st = path.stat()
                entry.update(size=st.st_size, modified=st.st_mtime)
            except OSError:
                pass
        out.append(entry)
    out.sort(key=lambda e: (e["type"] != "directory", e["name"].lower()))
    return out


# ------------------------------------------------------------------------------------------------
# one file
# ------------------------------------------------------------------------------------------------
def _segments(request: Request) -> list[str]:
    """The decoded segments after ``userdata/`` of the raw path (a '/' inside a name stays in it)."""
    raw = request.scope.get("raw_path") or request.url.path.encode("utf-8")
    parts = raw.split(b"/")
    try:
        start = parts.index(b"userdata") + 1
    except ValueError:
        return []
    try:
        return [unquote(p.decode("ascii"), errors="strict") for p in parts[start:]]
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid_path", "file name is not valid UTF-8") from None


def _answer(path: Path, root: Path, full_info: bool) -> Any:
    return file_info(path, root) if full_info else path.relative_to(root).as_posix()


def read_file(files: UserFiles, request: Request, name: str) -> Response:
    root = files.user_root(request)
    path = files.resolve(root, name)
    if not path.is_file():
        raise ApiError(404, "not_found", "file not found")
    os.close(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)))  # unreadable → 403 now
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path == root / "user.css":
        media, disposition = "text/css", "inline"
    else:  # user files never render as pages of our origin
        media = "application/octet-stream" if media in _ACTIVE_TYPES else media
        disposition = "attachment"
    return FileResponse(path, media_type=media, headers={"Content-Disposition": disposition,
                                                         "X-Content-Type-Options": "nosniff"})


def write_file(files: UserFiles, request: Request, name: str, body: bytes) -> Any:
    root = files.user_root(request)
    path = files.resolve(root, name)
    q = request.query_params
    overwrite = _flag(q, "overwrite", True)
    if not overwrite and os.path.lexists(path):
        raise ApiError(409, "already_exists", "File already exists")
    if path.is_dir():
        raise ApiError(409, "is_a_directory", "a folder has this name")
    try:
        write_bytes_atomic(path, body, overwrite=overwrite)
    except FileExistsError:
        raise ApiError(409, "already_exists", "File already exists") from None
    return _answer(path, root, _flag(q, "full_info", False))


def delete_file(files: UserFiles, request: Request, name: str) -> Response:
    root = files.user_root(request)
    path = files.resolve(root, name)
    if not os.path.lexists(path):
        raise ApiError(404, "not_found", "file not found")
    if path.is_dir() and not path.is_symlink():
        raise ApiError(409, "is_a_directory", "cannot delete a folder")
    os.remove(path)
    return Response(status_code=204)


def move_file(files: UserFiles, request: Request, source: str, dest: str) -> Any:
    """Rename within the user's folder; without overwrite an existing target is never replaced."""
    root = files.user_root(request)
    src, dst = files.resolve(root, source), files.resolve(root, dest, "dest")
    q = request.query_params
    if not os.path.lexists(src):
        raise ApiError(404, "not_found", "source file not found")
    overwrite = _flag(q, "overwrite", True)
    if not overwrite and os.path.lexists(dst):
        raise ApiError(409, "already_exists", "File already exists")
    if src == dst:
        return _answer(dst, root, _flag(q, "full_info", False))
    dst.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:
        os.replace(src, dst)
    elif src.is_dir():
        os.rename(src, dst)
    else:
        try:
            os.link(src, dst, follow_symlinks=False)  # claims the name atomically: no clobbering
        except FileExistsError:
            raise ApiError(409, "already_exists", "File already exists") from None
        os.unlink(src)
    log.info("moved user file %r -> %r", source, dest)
    return _answer(dst, root, _flag(q, "full_info", False))


async def userdata_item(files: UserFiles, request: Request) -> Any:
    """Dispatch ``/userdata/{file}`` (GET/POST/DELETE) and ``/userdata/{file}/move/{dest}``."""
    parts = _segments(request)
    method = request.method
    th = run_in_threadpool
    with os_errors("user file"):
        if method == "POST" and len(parts) == 3 and parts[1] == "move":
            return await th(move_file, files, request, parts[0], parts[2])
        name = "/".join(parts)
        if method == "GET":
            return await th(read_file, files, request, name)
        if method == "DELETE":
            return await th(delete_file, files, request, name)
        return await th(write_file, files, request, name, await request.body())


def user_router(user_dir: str | Path) -> APIRouter:
    """The routes above; included at ``/`` and ``/api``."""
    files = UserFiles(user_dir)
    r = APIRouter()
    th = run_in_threadpool

    @r.get("/users")
    async def get_users() -> dict:
        return await th(files.users_info)

    @r.post("/users")
    async def post_users(request: Request) -> Any:
        return await th(files.add_user, await read_json(request))

    @r.get("/userdata")
    async def get_userdata(request: Request) -> list:
        with os_errors("cannot list the folder"):
            return await th(list_userdata, files, request)

    @r.get("/v2/userdata")
    async def get_userdata_v2(request: Request) -> list:
        with os_errors("cannot list the folder"):
            return await th(list_userdata_v2, files, request)

    @r.api_route("/userdata/{name:path}", methods=["GET", "POST", "DELETE"])
    async def userdata(request: Request) -> Any:
        return await userdata_item(files, request)

    _add_settings_routes(r, files)
    return r


def _add_settings_routes(r: APIRouter, files: UserFiles) -> None:
    th = run_in_threadpool

    @r.get("/settings")
    async def get_settings(request: Request) -> dict:
        return await th(lambda: files.settings(files.user_root(request)))

    @r.get("/settings/{setting_id}")
    async def get_setting(request: Request, setting_id: str) -> Any:
        value = (await th(lambda: files.settings(files.user_root(request)))).get(setting_id)
        return JSONResponse(value)

    @r.post("/settings")
    async def post_settings(request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_parameter", "settings must be a JSON object")
        await th(lambda: files.update_settings(files.user_root(request), body))
        return Response(status_code=200)

    @r.post("/settings/{setting_id}")
    async def post_setting(request: Request, setting_id: str) -> Response:
        value = await read_json(request)
        await th(lambda: files.update_settings(files.user_root(request), {setting_id: value}))
        return Response(status_code=200)
