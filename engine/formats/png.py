"""PNG files with workflow text chunks: atomic writes, and reading every text chunk kind.

SaveImage stores the executable prompt and the editor workflow as text chunks (ComfyUI's layout:
one chunk `prompt`, one per key of `extra_pnginfo`). Reading understands tEXt, zTXt and iTXt so
files from ComfyUI, A1111 (`parameters`) and other tools all load.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Mapping

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine.paths import write_bytes_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_BYTES = 64 << 20  # largest text chunk read after decompression

__all__ = ["PNG_SIGNATURE", "write_png", "png_bytes", "read_png_text", "read_png_chunks"]


def _pnginfo(text: Mapping[str, str]) -> PngInfo:
    """tEXt when the value is Latin-1 (as the PNG spec requires), iTXt (UTF-8) otherwise."""
    info = PngInfo()
    for key, value in text.items():
        value = str(value)
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            info.add_itxt(str(key), value, zip=False)
        else:
            info.add_text(str(key), value)
    return info


def png_bytes(image: Image.Image, text: Mapping[str, str] | None = None, compress_level: int = 4) -> bytes:
    """Encode ``image`` as PNG bytes carrying ``text`` chunks."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=_pnginfo(text or {}), compress_level=compress_level)
    return buf.getvalue()


def write_png(path: str | Path, image: Image.Image, text: Mapping[str, str] | None = None,
              compress_level: int = 4) -> Path:
    """Write ``image`` with text chunks atomically: temp file in the same folder, fsync, os.replace.

    A reader (the /view route, a file browser) never sees a half-written PNG, and a crash leaves
    either the old file or the new one.
    """
    path = Path(path)
    write_bytes_atomic(path, png_bytes(image, text, compress_level))
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _decode_latin_or_utf8(raw: bytes) -> str:
    """tEXt is Latin-1 by the spec, but some writers put UTF-8 there; prefer UTF-8 when it decodes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _inflate(data: bytes) -> bytes:
    """A compressed text chunk, refused (zlib.error) beyond MAX_TEXT_BYTES: a few kilobytes of
    zlib can expand to gigabytes, and a workflow is never that large."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_TEXT_BYTES)
    if inflater.unconsumed_tail:
        raise zlib.error(f"text chunk inflates beyond {MAX_TEXT_BYTES} bytes")
    return out


def _text_chunk(kind: bytes, body: bytes) -> tuple[str, str] | None:
    """Decode one tEXt / zTXt / iTXt body into (keyword, text); None if it is malformed."""
    key, sep, rest = body.partition(b"\x00")
    if not sep:
        return None
    keyword = key.decode("latin-1")
    if kind == b"tEXt":
        return keyword, _decode_latin_or_utf8(rest)
    if kind == b"zTXt":
        return keyword, _decode_latin_or_utf8(_inflate(rest[1:]))
    if len(rest) < 2:  # iTXt: compression flag, method, language\0, translated keyword\0, text
        return None
    compressed, after = rest[0], rest[2:]
    _lang, _, after = after.partition(b"\x00")
    _tkey, _, text = after.partition(b"\x00")
    if compressed:
        text = _inflate(text)
    return keyword, text.decode("utf-8", errors="replace")


def read_png_text(source: str | Path | bytes) -> dict[str, str]:
    """All text chunks of a PNG (path or bytes) as {keyword: text}; later chunks win on duplicates.

    Raises ValueError when the data is not a PNG. Reads the chunk list directly so a truncated
    image body still yields the text chunks found before the damage.
    """
    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    out: dict[str, str] = {}
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) < length:
            break
        pos += 12 + length
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            try:
                item = _text_chunk(kind, body)
            except (zlib.error, IndexError):
                item = None
            if item is not None:
                out[item[0]] = item[1]
        elif kind == b"IEND":
            break
    return out


# The name ARCHITECTURE.md §3 uses.
read_png_chunks = read_png_text
