"""Model file integrity: each file's sha256, recorded once, and structural checks (no torch).

A checkpoint with flipped bits loads and samples "successfully" — only a hash notices. Each model
file's sha256 is computed once and kept in ``<user dir>/model_hashes.json`` (written atomically)
keyed by absolute path with the file's size and mtime, as ComfyUI-Manager and A1111 do: a record
whose size and mtime still match is trusted, so listings cost a ``stat`` per file. Hashing is lazy:
a background thread after ``serve`` starts (lowest CPU priority, never in a job's way), or
``main.py verify-models``, which re-hashes everything and compares with the records: new content
under the same size and mtime is corruption (a legitimate replacement changes the mtime).
``verify-models`` also checks each safetensors header against the file (lengths, JSON, dtypes,
shapes, offsets) and the CRCs of zip-based ``.ckpt/.pt`` files.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from engine.paths import MODEL_FOLDERS, write_json_atomic

log = logging.getLogger("latentgraph.model_hashes")

CACHE_NAME = "model_hashes.json"
HASH_FOLDERS = tuple(f for f in MODEL_FOLDERS if f != "configs")  # configs are YAML, not weights
_CHUNK = 4 << 20
MAX_HEADER_BYTES = 100 << 20  # the safetensors library's own limit
# safetensors dtype -> bits per element (sub-byte float formats included)
SAFETENSORS_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16,
    "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}


def sha256_file(path: str | Path, stop: threading.Event | None = None) -> str | None:
    """Hex sha256 of a file, read in 4 MB chunks; None when `stop` is set midway."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            if stop is not None and stop.is_set():
                return None
            h.update(chunk)
    return h.hexdigest()


class HashRecords:
    """The recorded hashes: ``{absolute path: {size, mtime_ns, sha256}}`` in one JSON file.

    Thread-safe; each write merges with what is on disk first, so a server hashing in the
    background and a ``verify-models`` run do not erase each other's records.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._data = self._read()
        self._mine: set[str] = set()  # keys recorded through this instance

    @classmethod
    def for_paths(cls, paths: Any) -> "HashRecords":
        return cls(Path(paths.user_dir) / CACHE_NAME)

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def get(self, file: Path) -> dict | None:
        with self._lock:
            return self._data.get(str(file))

    def lookup(self, file: Path, st: os.stat_result) -> str | None:
        """The recorded sha256 if the record still matches the file's size and mtime."""
        rec = self.get(file)
        if rec and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
            return rec.get("sha256")
        return None

    def record(self, file: Path, st: os.stat_result, sha256: str) -> None:
        entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
        with self._lock:
            self._mine.add(str(file))
            self._data[str(file)] = entry
            self._data = {**self._read(), **{k: self._data[k] for k in self._mine}}
            try:
                write_json_atomic(self.path, self._data)
            except OSError as exc:  # a read-only user dir: the hash is still known in memory
                log.warning("cannot write %s: %s", self.path, exc.strerror or exc)


# ------------------------------------------------------------------------------------------------
# listing and background hashing
# ------------------------------------------------------------------------------------------------
def model_files(paths: Any, folders: tuple[str, ...] = HASH_FOLDERS) -> Iterator[tuple[str, str, Path]]:
    """(folder, name, absolute path) of every model file, as the loaders would resolve the name."""
    for folder in folders:
        for name in paths.list_files(folder):
            try:
                yield folder, name, Path(paths.model_path(folder, name)).absolute()
            except (OSError, ValueError):  # vanished or refused since listing
                continue


def model_list(paths: Any, records: HashRecords, folder: str) -> list[dict]:
    """``[{name, size, sha256|None}]`` for one folder; sha256 is None until it has been hashed."""
    items = []
    for _, name, file in model_files(paths, (folder,)):
        try:
            st = file.stat()
        except OSError:
            continue
        items.append({"name": name, "size": st.st_size, "sha256": records.lookup(file, st)})
    return items


def hash_missing(paths: Any, records: HashRecords, stop: threading.Event | None = None) -> int:
    """Hash every model file without a matching record; the number hashed. Errors are logged."""
    done = 0
    for folder, name, file in model_files(paths):
        if stop is not None and stop.is_set():
            break
        try:
            st = file.stat()
            if records.lookup(file, st):
                continue
            sha = sha256_file(file, stop)
        except OSError as exc:
            log.warning("cannot hash %s/%s: %s", folder, name, exc.strerror or exc)
            continue
        if sha is not None:
            records.record(file, st, sha)
            done += 1
    return done


def _lower_thread_priority() -> None:
    """On Linux a thread is a task with its own nice value: let jobs have the CPU first."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


def start_background_hashing(paths: Any, stop: threading.Event | None = None) -> threading.Thread:
    """Hash the files not yet recorded in a daemon thread (``serve`` calls this once at start)."""
    def work() -> None:
        _lower_thread_priority()
        count = hash_missing(paths, HashRecords.for_paths(paths), stop)
        if count:
            log.info("recorded the sha256 of %d model file(s)", count)

    thread = threading.Thread(target=work, name="model-hashes", daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------------------------------------
# structural checks
# ------------------------------------------------------------------------------------------------
def _tensor_problems(name: str, info: Any, data_size: int) -> list[str]:
    """What is wrong with one header entry ``{dtype, shape, data_offsets}``."""
    if not isinstance(info, dict):
        return [f"tensor {name!r}: entry is not an object"]
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in SAFETENSORS_DTYPE_BITS:
        return [f"tensor {name!r}: unknown dtype {dtype!r}"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        return [f"tensor {name!r}: shape {shape!r} is not a list of sizes"]
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets) or not 0 <= offsets[0] <= offsets[1]):
        return [f"tensor {name!r}: data_offsets {offsets!r} are not [begin, end]"]
    if offsets[1] > data_size:
        return [f"tensor {name!r}: data ends at byte {offsets[1]} of a {data_size}-byte data section "
                "(truncated file?)"]
    bits = math.prod(shape) * SAFETENSORS_DTYPE_BITS[dtype]
    if bits != 8 * (offsets[1] - offsets[0]):
        return [f"tensor {name!r}: {dtype}{shape} needs {bits / 8:g} bytes, offsets give "
                f"{offsets[1] - offsets[0]}"]
    return []


def _coverage_problems(spans: list[tuple[int, int, str]], data_size: int) -> list[str]:
    """The tensors must tile the data section exactly: no overlap, no gap, nothing after."""
    problems, pos = [], 0
    for begin, end, name in sorted(spans):
        if begin < pos:
            problems.append(f"tensor {name!r} overlaps the previous tensor's data")
        elif begin > pos:
            problems.append(f"{begin - pos} unused bytes before tensor {name!r}")
        pos = max(pos, end)
    if pos < data_size:
        problems.append(f"{data_size - pos} bytes after the last tensor (appended data?)")
    return problems[:20]


def read_safetensors_header(path: str | Path, limit: int = MAX_HEADER_BYTES) -> tuple[dict, int]:
    """A safetensors file's JSON header and its length in bytes; ValueError saying why when the
    file has none (too short, length over ``limit`` or past the end, not a UTF-8 JSON object)."""
    size = os.path.getsize(path)
    if size < 8:
        raise ValueError(f"file of {size} bytes is too short for a safetensors header")
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > limit or 8 + n > size:
            raise ValueError(f"header length {n} does not fit in the {size}-byte file (truncated or not safetensors)")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"header is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header, n


def safetensors_problems(path: str | Path) -> list[str]:
    """Problems of a safetensors file's header, checked against the file's size ([] = sound)."""
    try:
        header, n = read_safetensors_header(path)
    except ValueError as exc:
        return [str(exc)]
    size = os.path.getsize(path)
    meta = header.pop("__metadata__", {})
    problems = [] if isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values()) \
        else ["__metadata__ is not an object of strings"]
    data_size, spans = size - 8 - n, []
    for name, info in header.items():
        found = _tensor_problems(name, info, data_size)
        problems += found
        if not found:
            spans.append((info["data_offsets"][0], info["data_offsets"][1], name))
    return problems + (_coverage_problems(spans, data_size) if len(spans) == len(header) else [])


def zip_problems(path: str | Path) -> list[str]:
    """CRC check of a zip-based torch file (``torch.save`` since 1.6); [] for legacy pickles."""
    if not zipfile.is_zipfile(path):
        return []
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return [f"broken zip container ({exc})"]
    return [f"zip member {bad!r} fails its CRC check"] if bad else []


def structure_problems(path: Path) -> list[str]:
    """Format checks by extension: safetensors header, zip CRCs for pickled torch files."""
    ext = path.suffix.lower()
    if ext in (".safetensors", ".sft"):
        return safetensors_problems(path)
    if ext in (".ckpt", ".pt", ".pth", ".bin", ".pt2"):
        return zip_problems(path)
    return []


# ------------------------------------------------------------------------------------------------
# verify-models
# ------------------------------------------------------------------------------------------------
@dataclass
class VerifyReport:
    """One entry per model file: ``{folder, name, path, size, sha256, status, problems}``.

    status: ``ok`` (matches its record), ``new`` (first hash, now recorded), ``changed`` (size or
    mtime differ from the record: replaced, re-recorded), ``corrupted`` (same size and mtime,
    different content), ``damaged`` (structure problems), ``unreadable``.
    """

    items: list[dict] = field(default_factory=list)

    @property
    def problems(self) -> list[dict]:
        return [it for it in self.items if it["status"] in ("corrupted", "damaged", "unreadable")]

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for it in self.items:
            counts[it["status"]] = counts.get(it["status"], 0) + 1
        return counts


def verify_file(folder: str, name: str, file: Path, records: HashRecords) -> dict:
    """Hash one file, compare with and update its record, check its structure."""
    item: dict = {"folder": folder, "name": name, "path": str(file), "size": None, "sha256": None,
                  "status": "ok", "problems": []}
    try:
        st = file.stat()
        item["size"], item["sha256"] = st.st_size, sha256_file(file)
        item["problems"] = structure_problems(file)
    except OSError as exc:
        item.update(status="unreadable", problems=[exc.strerror or str(exc)])
        return item
    rec = records.get(file)
    if rec is None:
        item["status"] = "new"
    elif rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
        if rec.get("sha256") != item["sha256"]:
            item["status"] = "corrupted"  # keep the old record: the damage stays reported
            item["problems"].insert(0, f"content changed without a change of size or mtime "
                                       f"(recorded sha256 {rec.get('sha256')})")
    else:
        item["status"] = "changed"
    if item["status"] in ("new", "changed"):
        records.record(file, st, item["sha256"])
    if item["problems"] and item["status"] != "corrupted":
        item["status"] = "damaged"
    return item


def verify_models(paths: Any, records: HashRecords,
                  on_item: Callable[[dict], None] | None = None) -> VerifyReport:
    """Hash and check every model file (see VerifyReport); `on_item` sees each result as it comes."""
    report = VerifyReport()
    for folder, name, file in model_files(paths):
        item = verify_file(folder, name, file, records)
        report.items.append(item)
        if on_item is not None:
            on_item(item)
    return report
