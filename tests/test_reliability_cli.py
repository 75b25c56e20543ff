"""Seeded fuzzing of `main.py validate` (and a few `run`s) over mutated workflow files.

`validate` takes one file per process and a process costs seconds (node modules import torch), so
the bulk of the cases call ``main.main([...])`` in this process with stdout/stderr captured; a
handful of the nastiest files go through real subprocesses too (where a RecursionError or an
int-to-str limit would print a traceback and exit 1). Asserted: exit 0 or 2 only, never a
traceback, a short error on stderr.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import main as cli
from tests.fuzz_cases import SEED, Raw, dumps, workflow_files

ROOT = Path(__file__).resolve().parent.parent
N_CASES = 900
BASES = sorted((ROOT / "workflows").glob("*.json"))[:4] + sorted((ROOT / "workflows" / "api").glob("*.json"))[:3] \
    + sorted((ROOT / "tests" / "fixtures" / "comfy_ui").glob("*.json"))[:4]
FILE_EXTS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".png", ".jpg", ".jpeg", ".webp")


def _file_names(doc: object) -> set[str]:
    """Every string in a workflow that names a model or image file."""
    if isinstance(doc, dict):
        return set().union(*(_file_names(v) for v in doc.values())) if doc else set()
    if isinstance(doc, list):
        return set().union(*(_file_names(v) for v in doc)) if doc else set()
    return {doc} if isinstance(doc, str) and doc.lower().endswith(FILE_EXTS) and ".." not in doc \
        and not doc.startswith(("/", "\\")) else set()


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict:
    """Model and input folders holding (empty) files of every name the base workflows use, so the
    unmutated files validate and mutations reach the deeper checks."""
    base = tmp_path_factory.mktemp("cli_fuzz")
    names = set().union(*(_file_names(json.loads(p.read_bytes())) for p in BASES))
    for folder in ("checkpoints", "loras", "vae", "upscale_models", "embeddings"):
        (base / "models" / folder).mkdir(parents=True)
        for name in names:
            _touch(base / "models" / folder / name)
    for name in names:
        _touch(base / "input" / name)
    (base / "custom_nodes").mkdir()
    return {"base": base, "args": ["--models-dir", str(base / "models"), "--input-dir", str(base / "input"),
                                   "--custom-nodes", str(base / "custom_nodes")]}


def _validate_in_process(path: Path, args: list[str]) -> tuple[object, str]:
    """(exit code or the exception that escaped main(), captured stdout + stderr)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            rc: object = cli.main(["validate", str(path), *args])
        except BaseException as exc:  # noqa: BLE001 — SystemExit included: that is what we look for
            rc = exc
    return rc, out.getvalue()


def test_base_workflows_validate(dirs):
    bad = {}
    for p in BASES:
        rc, text = _validate_in_process(p, dirs["args"])
        if rc != 0:
            bad[p.name] = text[-300:]
    assert not bad, bad


def test_mutated_workflows_exit_0_or_2_without_traceback(dirs):
    bases = [p.read_bytes() for p in BASES]
    work = dirs["base"] / "cases"
    work.mkdir()
    problems, codes = [], {}
    for i, (label, data) in enumerate(workflow_files(SEED, N_CASES, bases)):
        path = work / f"case{i % 7}{'.png' if i % 50 == 49 else '.json'}"
        path.write_bytes(data)
        rc, text = _validate_in_process(path, dirs["args"])
        codes[rc if isinstance(rc, int) else type(rc).__name__] = codes.get(
            rc if isinstance(rc, int) else type(rc).__name__, 0) + 1
        if rc not in (0, 2) or "Traceback" in text:
            problems.append(f"{label}: exit {rc!r}: {text.strip()[-200:]!r}")
    assert not problems, f"{len(problems)} of {N_CASES} cases ({codes}):\n" + "\n".join(problems[:25])
    assert codes.get(2, 0) > N_CASES // 3 and codes.get(0, 0) > 10, codes


def _api_file(value: object) -> bytes:
    """The first API workflow with EmptyLatentImage's width set to ``value`` (raw JSON allowed)."""
    doc = json.loads((ROOT / "workflows" / "api" / "default.json").read_bytes())
    node = next(n for n in doc.values() if n["class_type"] == "EmptyLatentImage")
    node["inputs"]["width"] = value
    return dumps(doc)


NASTY = {
    "deep_list": Raw("[" * 100_000 + "]" * 100_000).encode(),
    "deep_dict": ('{"a": ' * 50_000 + "1" + "}" * 50_000).encode(),
    "huge_int": _api_file(Raw("9" * 5000)),
    "inf": _api_file(Raw("1e999")),
    "nan": _api_file(Raw("NaN")),
    "int_2_70": _api_file(2 ** 70),
    "bad_utf8": b'{"1": {"class_type": "\xff\xfe", "inputs": {}}}',
}


# A process costs seconds: the in-process fuzz covers every file above; these six check what only a
# real process shows (the traceback printed by an exception escaping main, the exit code).
REAL = [("validate", "deep_list"), ("validate", "huge_int"), ("validate", "nan"),
        ("run", "deep_dict"), ("run", "huge_int"), ("run", "inf")]


def test_nasty_files_in_process(dirs, tmp_path):
    problems = []
    for name, data in NASTY.items():
        path = tmp_path / f"{name}.json"
        path.write_bytes(data)
        rc, text = _validate_in_process(path, dirs["args"])
        if rc != 2 or "Traceback" in text:
            problems.append(f"{name}: exit {rc!r}: {text.strip()[-200:]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("command,name", REAL, ids=[f"{c}-{n}" for c, n in REAL])
def test_nasty_files_in_a_real_process(dirs, tmp_path, command, name):
    path = tmp_path / f"{name}.json"
    path.write_bytes(NASTY[name])
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), command, str(path), *dirs["args"],
                           "--output-dir", str(tmp_path / "out")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, (proc.returncode, text[-500:])
    assert "Traceback" not in text, text[-1500:]
    errors = [line for line in proc.stderr.splitlines() + proc.stdout.splitlines() if line.strip()]
    assert 1 <= len(errors) <= 6 and all(len(line) < 2000 for line in errors), errors[:8]
