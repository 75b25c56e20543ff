"""Model file hashes and integrity checks: verify-models, the safetensors header checker, /lg/models."""
from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from engine.model_hashes import (CACHE_NAME, HashRecords, hash_missing, safetensors_problems,
                                 start_background_hashing, zip_problems)
from engine.paths import Paths

ROOT = Path(__file__).resolve().parent.parent


def _paths(base: Path) -> Paths:
    paths = Paths(base / "models", base / "in", base / "out", base / "tmp", base / "user")
    paths.ensure_dirs()
    return paths


@pytest.fixture
def models(tmp_path) -> Paths:
    """A tiny SD1 checkpoint, a LoRA-sized safetensors in a subfolder and a zip-based .pt."""
    import torch

    from ldm.tiny import write_tiny_checkpoint

    paths = _paths(tmp_path)
    write_tiny_checkpoint("tiny_sd1", paths.models_dir / "checkpoints" / "tiny_sd1.safetensors")
    (paths.models_dir / "loras" / "sub").mkdir()
    save_file({"w": np.arange(12, dtype=np.float32).reshape(3, 4)}, str(paths.models_dir / "loras" / "sub" / "l.safetensors"))
    torch.save({"w": torch.arange(64, dtype=torch.float32)}, paths.models_dir / "vae" / "v.pt")
    return paths


def verify_cli(paths: Paths) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "verify-models", "--json",
                           "--models-dir", str(paths.models_dir), "--user-dir", str(paths.user_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proc.returncode, json.loads(proc.stdout)


def _flip_byte_keeping_stat(path: Path, offset_from_end: int = 100) -> None:
    """Silent corruption: one byte of tensor data changes, size and mtime stay the same."""
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(st.st_size - offset_from_end)
        byte = fh.read(1)
        fh.seek(st.st_size - offset_from_end)
        fh.write(bytes([byte[0] ^ 0x10]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_a_good_set_passes_and_is_recorded(models):
    code, report = verify_cli(models)
    assert code == 0 and report["ok"] is True
    assert report["summary"] == {"new": 3}
    ckpt = models.models_dir / "checkpoints" / "tiny_sd1.safetensors"
    item = next(it for it in report["files"] if it["name"] == "tiny_sd1.safetensors")
    assert item["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert {it["name"] for it in report["files"]} == {"tiny_sd1.safetensors", "sub/l.safetensors", "v.pt"}
    code, again = verify_cli(models)
    assert code == 0 and again["summary"] == {"ok": 3}


def test_a_flipped_bit_with_same_size_and_mtime_is_reported(models):
    assert verify_cli(models)[0] == 0
    _flip_byte_keeping_stat(models.models_dir / "checkpoints" / "tiny_sd1.safetensors")
    code, report = verify_cli(models)
    assert code == 1 and report["ok"] is False
    bad = [it for it in report["files"] if it["status"] != "ok"]
    assert [it["name"] for it in bad] == ["tiny_sd1.safetensors"] and bad[0]["status"] == "corrupted"
    assert "without a change of size or mtime" in bad[0]["problems"][0]
    assert verify_cli(models)[0] == 1  # the record is kept: still reported on the next run


def test_a_replaced_file_is_re_recorded_not_an_error(models):
    assert verify_cli(models)[0] == 0
    lora = models.models_dir / "loras" / "sub" / "l.safetensors"
    save_file({"w": np.ones((3, 4), dtype=np.float32)}, str(lora))
    os.utime(lora, ns=(lora.stat().st_atime_ns, lora.stat().st_mtime_ns + 10**9))
    code, report = verify_cli(models)
    assert code == 0 and report["summary"] == {"ok": 2, "changed": 1}


def test_a_truncated_safetensors_and_a_broken_zip_are_reported(models):
    ckpt = models.models_dir / "checkpoints" / "tiny_sd1.safetensors"
    data = ckpt.read_bytes()
    (models.models_dir / "checkpoints" / "cut.safetensors").write_bytes(data[: len(data) // 2])
    pt = models.models_dir / "vae" / "v.pt"
    _flip_byte_keeping_stat(pt, offset_from_end=pt.stat().st_size // 2)
    code, report = verify_cli(models)
    assert code == 1
    by_name = {it["name"]: it for it in report["files"]}
    assert by_name["cut.safetensors"]["status"] == "damaged"
    assert "truncated" in " ".join(by_name["cut.safetensors"]["problems"])
    assert by_name["v.pt"]["status"] == "damaged" and "CRC" in by_name["v.pt"]["problems"][0]
    assert by_name["tiny_sd1.safetensors"]["status"] == "new"


def _safetensors(header: dict, data: bytes, declared_len: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if declared_len is None else declared_len) + raw + data


T = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
HEADER_CASES = [
    ("sound", _safetensors({"a": T, "__metadata__": {"k": "v"}}, b"\0" * 8), None),
    ("too short", b"\1\0\0", "too short"),
    ("header length past the end", _safetensors({"a": T}, b"\0" * 8, declared_len=10**6), "does not fit"),
    ("not JSON", struct.pack("<Q", 4) + b"{{{{" + b"\0" * 8, "not valid UTF-8 JSON"),
    ("not an object", _safetensors([1, 2], b""), "not a JSON object"),  # type: ignore[arg-type]
    ("unknown dtype", _safetensors({"a": {**T, "dtype": "Q7"}}, b"\0" * 8), "unknown dtype"),
    ("bad shape", _safetensors({"a": {**T, "shape": [-2]}}, b"\0" * 8), "not a list of sizes"),
    ("size mismatch", _safetensors({"a": {**T, "shape": [3]}}, b"\0" * 8), "needs 12 bytes"),
    ("offsets past the data", _safetensors({"a": {**T, "data_offsets": [0, 16]}}, b"\0" * 8), "truncated"),
    ("overlap", _safetensors({"a": T, "b": T}, b"\0" * 8), "overlaps"),
    ("gap", _safetensors({"a": {**T, "data_offsets": [4, 12]}}, b"\0" * 12), "unused bytes"),
    ("trailing bytes", _safetensors({"a": T}, b"\0" * 12), "after the last tensor"),
    ("bad metadata", _safetensors({"a": T, "__metadata__": {"k": 1}}, b"\0" * 8), "__metadata__"),
]


@pytest.mark.parametrize("name,blob,expected", HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_safetensors_header_checks(tmp_path, name, blob, expected):
    path = tmp_path / "x.safetensors"
    path.write_bytes(blob)
    problems = safetensors_problems(path)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_real_writers_pass_the_header_check(tmp_path):
    import torch
    from safetensors.torch import save_file as save_torch

    save_torch({"a": torch.zeros(3, 5, dtype=torch.bfloat16), "b": torch.ones(7, dtype=torch.bool),
                "c": torch.zeros(0, 4)}, str(tmp_path / "t.safetensors"), metadata={"x": "y"})
    assert safetensors_problems(tmp_path / "t.safetensors") == []
    (tmp_path / "legacy.ckpt").write_bytes(b"\x80\x02}q\x00.")  # a bare pickle: nothing to check
    assert zip_problems(tmp_path / "legacy.ckpt") == []


def test_lg_models_lists_size_and_hash_once_recorded(models):
    from fastapi.testclient import TestClient

    from engine.executor import Executor
    from engine.queue import JobQueue
    from nodes.registry import Registry
    from ui.server import create_app

    registry = Registry()
    queue = JobQueue(models.user_dir / "db.sqlite", Executor(registry, models))
    app = create_app(models, queue, registry, editor=False, start_queue=False)
    ckpt = models.models_dir / "checkpoints" / "tiny_sd1.safetensors"
    try:
        with TestClient(app) as c:
            assert c.get("/lg/models/checkpoints").json() == [
                {"name": "tiny_sd1.safetensors", "size": ckpt.stat().st_size, "sha256": None}]
            start_background_hashing(models).join()
            listed = c.get("/api/lg/models/loras").json()
            assert listed[0]["name"] == "sub/l.safetensors" and len(listed[0]["sha256"]) == 64
            assert c.get("/lg/models/checkpoints").json()[0]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
            assert c.get("/models/checkpoints").json() == ["tiny_sd1.safetensors"]  # ComfyUI's shape
            assert c.get("/lg/models/nope").status_code == 404
    finally:
        queue.close()


def test_records_survive_two_writers(tmp_path):
    """A server hashing in the background and a verify-models run must not drop each other's records."""
    paths = _paths(tmp_path)
    for name in ("a", "b"):
        save_file({"w": np.zeros(2, dtype=np.float32)}, str(paths.models_dir / "loras" / f"{name}.safetensors"))
    first, second = HashRecords.for_paths(paths), HashRecords.for_paths(paths)
    a, b = (paths.models_dir / "loras" / f"{n}.safetensors" for n in "ab")
    first.record(a, a.stat(), "1" * 64)
    second.record(b, b.stat(), "2" * 64)
    on_disk = json.loads((paths.user_dir / CACHE_NAME).read_text())
    assert {Path(k).name for k in on_disk} == {"a.safetensors", "b.safetensors"}
    assert hash_missing(paths, HashRecords.for_paths(paths)) == 0
