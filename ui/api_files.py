"""File routes of the ComfyUI-compatible API: GET /view, POST /upload/image, POST /upload/mask;
and GET /lg/models/{folder} (our own: each model file's size and recorded sha256).

Every path a client names goes through two gates: a syntactic check here (no ``..``, absolute
paths, NUL/control characters, backslashes, drive letters, names longer than the OS allows —
already URL-decoded by the server, so ``%2e%2e`` arrives as ``..``) and then
``engine.paths.safe_join`` (which also refuses symlinks that leave the root, and symlink loops).
Uploaded bytes are only stored after Pillow has identified, verified and fully decoded them within
a pixel budget, so a decompression bomb or a disguised script never lands in ``input/``.
Refusals are JSON 4xx (``ApiError``), never a traceback: whatever the OS still refuses (a missing
or unreadable file, a directory in the way, a full disk) is mapped from its errno by
``os_errors`` around every file route.
"""
from __future__ import annotations

import errno
import io
import mimetypes
import os
import re
import tempfile
import unicodedata
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine.formats.comfy_api import FormatError
from engine.formats.reading import parse_json
from engine.paths import PathRefused, length_problem, safe_join

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 64 * 1024 * 1024
FILE_TYPES = ("output", "input", "temp")
# Pillow format name -> extensions we accept for it (first one used when a name must be fixed).
IMAGE_FORMATS = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg", ".jfif"), "WEBP": (".webp",),
                 "GIF": (".gif",), "BMP": (".bmp",)}
# Served as attachments, never rendered: a stored file must not become a page of our origin.
_ACTIVE_TYPES = {"text/html", "image/svg+xml", "application/xhtml+xml", "text/javascript",
                 "application/javascript", "application/xml", "text/xml"}
_DRIVE = re.compile(r"^[A-Za-z]:")
# errno -> (HTTP status, error type) for what the OS refuses on a file route; others are 400.
_ERRNO_STATUS = {
    errno.ENOENT: (404, "not_found"), errno.ENOTDIR: (409, "not_a_directory"),
    errno.EACCES: (403, "permission_denied"), errno.EPERM: (403, "permission_denied"),
    errno.EROFS: (403, "read_only"), errno.EISDIR: (409, "is_a_directory"),
    errno.EEXIST: (409, "already_exists"), errno.ENAMETOOLONG: (400, "name_too_long"),
    errno.ELOOP: (400, "invalid_path"), errno.EINVAL: (400, "invalid_path"),
    errno.EILSEQ: (400, "invalid_path"), errno.ENOSPC: (413, "no_space"),
    errno.EDQUOT: (413, "no_space"), errno.EFBIG: (413, "too_large"),
}


class ApiError(Exception):
    """A refusal with an HTTP status; the server turns it into ``{"error": {type, message}}``."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


@contextmanager
def os_errors(what: str) -> Iterator[None]:
    """Turn an OSError into an ApiError by its errno; the message omits the server's paths."""
    try:
        yield
    except OSError as exc:
        status, kind = _ERRNO_STATUS.get(exc.errno or 0, (400, "os_error"))
        raise ApiError(status, kind, f"{what}: {exc.strerror or type(exc).__name__}") from None


# ------------------------------------------------------------------------------------------------
# paths
# ------------------------------------------------------------------------------------------------
def check_part(part: str, what: str) -> None:
    """Refuse a client-supplied path piece that could name something outside its root."""
    if not isinstance(part, str):
        raise ApiError(400, "invalid_path", f"{what} must be a string")
    if any(ord(c) < 32 or ord(c) == 127 for c in part):
        raise ApiError(400, "invalid_path", f"{what} contains control characters")
    if "\\" in part or _DRIVE.match(part) or part.startswith("/") or part.startswith("~"):
        raise ApiError(400, "invalid_path", f"{what} must be a relative path with '/' separators")
    if any(p in ("..", ".") for p in part.split("/")):
        raise ApiError(400, "invalid_path", f"{what} must not contain '.' or '..' components")
    if "%" in part and re.search(r"%[0-9A-Fa-f]{2}", part):
        raise ApiError(400, "invalid_path", f"{what} contains percent-encoded characters")
    problem = length_problem(part)
    if problem:
        raise ApiError(400, "invalid_path", f"{what}: {problem}")


def file_root(paths: Any, kind: str) -> Path:
    """The directory for ``type=output|input|temp``."""
    if kind not in FILE_TYPES:
        raise ApiError(400, "invalid_type", f"type must be one of {', '.join(FILE_TYPES)}")
    return Path(getattr(paths, f"{kind}_dir"))


def _safe_join(root: Path, *parts: str) -> Path:
    """engine.paths.safe_join, with its refusal mapped to 403 (400 for a path the OS cannot take)."""
    parts = tuple(p for p in parts if p)
    problem = length_problem(root.joinpath(*parts))
    if problem:
        raise ApiError(400, "invalid_path", problem)
    try:
        return Path(safe_join(root, *parts))
    except PathRefused as exc:
        raise ApiError(403, "path_refused", str(exc)) from None
    except (ValueError, OSError) as exc:
        raise ApiError(400, "invalid_path", str(exc)) from None


def resolve_file(paths: Any, kind: str, subfolder: str, filename: str) -> Path:
    """Checked absolute path of ``<root of kind>/<subfolder>/<filename>`` (may not exist yet)."""
    check_part(subfolder, "subfolder")
    check_part(filename, "filename")
    if not filename:
        raise ApiError(400, "invalid_path", "filename is required")
    root = file_root(paths, kind)
    return _safe_join(root, *subfolder.split("/"), *filename.split("/"))


def refuse_traversal(name: str) -> None:
    """An upload name trying to climb out (``..``, absolute, backslash, drive, NUL) is an attack."""
    if ("\x00" in name or "\\" in name or name.startswith("/") or _DRIVE.match(name)
            or ".." in name.split("/")):
        raise ApiError(400, "invalid_filename", "upload filename must be a plain file name")


def sanitize_filename(name: str, default: str = "upload") -> str:
    """A safe basename: last path piece, no control characters, no leading dots, at most 200 bytes
    in UTF-8 (room for a ``" (n)"`` suffix under the OS's 255-byte limit)."""
    name = unicodedata.normalize("NFC", str(name or ""))
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(c for c in name if ord(c) >= 32 and ord(c) != 127 and c not in ':*?"<>|')
    name = name.strip().lstrip(".").strip()
    if len(name.encode("utf-8", "surrogatepass")) > 200:
        stem, ext = os.path.splitext(name)
        ext = ext[:16]
        while stem and len((stem + ext).encode("utf-8", "surrogatepass")) > 200:
            stem = stem[:-1]
        name = stem + ext
    name = name.encode("utf-8", "ignore").decode("utf-8")  # lone surrogates cannot be stored
    return name or default


# ------------------------------------------------------------------------------------------------
# GET /view
# ------------------------------------------------------------------------------------------------
def _preview_response(path: Path, preview: str, channel: str) -> Response:
    """Re-encode an image: ``preview=webp;90`` / ``jpeg;80`` and/or ``channel=rgb|a``."""
    try:
        with Image.open(path) as img:
            img.load()
            if channel == "a":
                alpha = img.getchannel("A") if "A" in img.getbands() else Image.new("L", img.size, 255)
                img = Image.new("RGBA", img.size, (0, 0, 0, 0))
                img.putalpha(alpha)
            elif channel == "rgb":
                img = img.convert("RGB")
            elif img.mode not in ("RGB", "RGBA", "L"):
                img = img.convert("RGBA")
            fmt, quality = "png", 90
            if preview:
                fmt, _, q = preview.partition(";")
                fmt = fmt.strip().lower()
                if fmt not in ("webp", "jpeg", "jpg", "png"):
                    raise ApiError(400, "invalid_preview", "preview format must be webp, jpeg or png")
                quality = max(1, min(100, int(q))) if q.strip().isdigit() else 90
            fmt = "jpeg" if fmt == "jpg" else fmt
            if fmt == "jpeg" and img.mode != "RGB":
                img = img.convert("RGB")
            buf = io.BytesIO()
            img.save(buf, format=fmt.upper(), quality=quality)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ApiError(415, "not_an_image", f"cannot re-encode this file: {exc}") from None
    return Response(buf.getvalue(), media_type=f"image/{fmt}")


def _disposition(kind: str, name: str) -> str:
    """A Content-Disposition value (headers are Latin-1): ASCII fallback + RFC 5987 UTF-8 name."""
    name = sanitize_filename(name)
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace('"', "_")
    if ascii_name == name:
        return f'{kind}; filename="{name}"'
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def view_file(paths: Any, params: dict[str, str]) -> Response:
    """The ``/view`` handler body: a file of output/input/temp, optionally re-encoded."""
    filename = params.get("filename", "")
    path = resolve_file(paths, params.get("type") or "output", params.get("subfolder", ""), filename)
    if not path.is_file():
        raise ApiError(404, "not_found", "file not found")
    # Open once now: an unreadable file must be a 403 here, not an error mid-response.
    os.close(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)))
    preview = params.get("preview", "") or ""
    channel = (params.get("channel") or "rgba").lower()
    if channel not in ("rgba", "rgb", "a"):
        raise ApiError(400, "invalid_channel", "channel must be rgba, rgb or a")
    if preview or channel != "rgba":
        return _preview_response(path, preview, channel)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    headers = {"X-Content-Type-Options": "nosniff"}
    if media in _ACTIVE_TYPES:
        media = "application/octet-stream"
        headers["Content-Disposition"] = _disposition("attachment", path.name)
    else:
        headers["Content-Disposition"] = _disposition("inline", path.name)
    return FileResponse(path, media_type=media, headers=headers)


# ------------------------------------------------------------------------------------------------
# uploads
# ------------------------------------------------------------------------------------------------
def decode_image(data: bytes) -> Image.Image:
    """Identify, verify and fully decode uploaded bytes; refuse non-images, bombs, broken files."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "too_large", f"upload exceeds {MAX_UPLOAD_BYTES} bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                fmt, (w, h) = probe.format, probe.size
                if fmt not in IMAGE_FORMATS:
                    raise ApiError(415, "unsupported_image", f"image format {fmt} is not accepted")
                if w * h > MAX_PIXELS or w <= 0 or h <= 0:
                    raise ApiError(413, "too_many_pixels", f"image of {w}x{h} exceeds {MAX_PIXELS} pixels")
                probe.verify()
            img = Image.open(io.BytesIO(data))
            img.load()
        except ApiError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ApiError(413, "too_many_pixels", str(exc)) from None
        except Exception as exc:  # Pillow raises many types for malformed data
            raise ApiError(400, "invalid_image", f"not a valid image: {exc}") from None
    return img


def _fix_extension(name: str, fmt: str) -> str:
    """Make the name's extension match the decoded format (a PNG never gets stored as .html)."""
    stem, ext = os.path.splitext(name)
    allowed = IMAGE_FORMATS[fmt]
    return name if ext.lower() in allowed else (stem or "image") + allowed[0]


def _store_bytes(folder: Path, name: str, data: bytes, overwrite: bool) -> str:
    """Write atomically; without overwrite pick ``name (1).ext``-style free names (no clobbering)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if overwrite:
            os.replace(tmp, folder / name)
            return name
        stem, ext = os.path.splitext(name)
        for i in range(0, 10000):
            candidate = name if i == 0 else f"{stem} ({i}){ext}"
            try:
                os.link(tmp, folder / candidate)  # fails if the name exists: atomic no-clobber
                return candidate
            except FileExistsError:
                continue
        raise ApiError(409, "name_exhausted", "too many files with this name")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _form_text(form: Any, key: str, default: str = "") -> str:
    value = form.get(key)
    return default if value is None or not isinstance(value, str) else value


_ANNOTATED = re.compile(r"^(?P<name>.+) \[(?P<type>input|output|temp)\]$")


def _original_of(ref: Any) -> tuple[str, str, str]:
    """(type, subfolder, filename) of a mask's ``original_ref``, as ComfyUI reads it: a filename
    annotated ``"x.png [input]"`` names its folder; otherwise ``type``, which defaults to output."""
    if not isinstance(ref, dict) or not isinstance(ref.get("filename"), str):
        raise ApiError(400, "invalid_original_ref", "original_ref needs filename, subfolder, type")
    filename, kind = ref["filename"], ref.get("type", "output")
    annotated = _ANNOTATED.match(filename)
    if annotated:
        filename, kind = annotated["name"], annotated["type"]
    if not isinstance(kind, str) or not kind:
        raise ApiError(400, "invalid_original_ref", "original_ref type must be input, output or temp")
    return kind, ref.get("subfolder") or "", filename


def _merge_mask(paths: Any, ref_text: str, mask: Image.Image) -> bytes:
    """The referenced original image with the mask's alpha channel as its alpha (ComfyUI's mask
    editor sends the painted mask as the alpha of a PNG); the original's PNG text chunks (its
    prompt/workflow) are kept. Returns the PNG bytes."""
    try:
        ref = parse_json(ref_text)  # depth- and integer-bounded: the text comes from the client
    except FormatError as exc:
        raise ApiError(400, "invalid_original_ref", f"original_ref must be JSON: {exc}") from None
    src = resolve_file(paths, *_original_of(ref))
    if not src.is_file():
        raise ApiError(404, "not_found", "original image not found")
    decoded = decode_image(src.read_bytes())
    text = {k: v for k, v in (getattr(decoded, "text", None) or {}).items() if isinstance(v, str)}
    original = decoded.convert("RGBA")
    alpha = mask.convert("RGBA").getchannel("A")
    if alpha.size != original.size:
        alpha = alpha.resize(original.size, Image.Resampling.LANCZOS)
    original.putalpha(alpha)
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    original.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


async def handle_upload(request: Request, paths: Any, is_mask: bool) -> dict:
    """Body of ``/upload/image`` and ``/upload/mask`` → ``{name, subfolder, type}``."""
    try:
        form = await request.form(max_files=2, max_fields=20, max_part_size=1024 * 1024)
    except Exception as exc:
        raise ApiError(400, "invalid_form", f"expected multipart/form-data: {exc}") from None
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        raise ApiError(400, "missing_image", "multipart field 'image' (a file) is required")
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    fields = {k: _form_text(form, k) for k in ("type", "subfolder", "overwrite", "original_ref")}
    return await run_in_threadpool(_process_upload, paths, data, upload.filename or "", fields, is_mask)


def _process_upload(paths: Any, data: bytes, filename: str, fields: dict[str, str],
                    is_mask: bool) -> dict:
    """Validate, decode and store one upload (runs in a worker thread: decoding is CPU work)."""
    kind = fields.get("type") or "input"
    subfolder = fields.get("subfolder") or ""
    overwrite = (fields.get("overwrite") or "false").lower() in ("true", "1", "yes")
    check_part(subfolder, "subfolder")
    root = file_root(paths, kind)
    refuse_traversal(filename)
    img = decode_image(data)
    name = sanitize_filename(filename, default=f"upload-{uuid.uuid4().hex[:8]}")
    if is_mask:
        data = _merge_mask(paths, fields.get("original_ref") or "{}", img)
        name = _fix_extension(name, "PNG")
    else:
        name = _fix_extension(name, img.format or "PNG")
    folder = _safe_join(root, *subfolder.split("/")) if subfolder else root
    stored = _store_bytes(folder, name, data, overwrite)
    return {"name": stored, "subfolder": subfolder, "type": kind}


def file_router(paths: Any) -> APIRouter:
    """Routes ``/view``, ``/upload/image``, ``/upload/mask``, ``/lg/models/{folder}`` (included at
    ``/`` and ``/api``)."""
    router = APIRouter()

    @router.get("/view")
    def view(request: Request) -> Response:
        with os_errors("cannot read the file"):
            return view_file(paths, dict(request.query_params))

    @router.post("/upload/image")
    async def upload_image(request: Request) -> dict:
        with os_errors("cannot store the upload"):
            return await handle_upload(request, paths, is_mask=False)

    @router.post("/upload/mask")
    async def upload_mask(request: Request) -> dict:
        with os_errors("cannot store the upload"):
            return await handle_upload(request, paths, is_mask=True)

    @router.get("/lg/models/{folder}")
    def lg_models(folder: str) -> list[dict]:
        """``[{name, size, sha256|null}]``; ComfyUI's ``/models/{folder}`` keeps its list of names.
        sha256 is null until the background hashing (or ``verify-models``) has reached the file."""
        from engine.model_hashes import HASH_FOLDERS, HashRecords, model_list

        if folder not in HASH_FOLDERS:
            raise ApiError(404, "not_found", f"unknown model folder {folder!r}")
        return model_list(paths, HashRecords.for_paths(paths), folder)

    return router
