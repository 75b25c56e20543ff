"""Unreadable workflow files: every one exits 2 with one line, never a traceback (issue 14 item 4).

A table of hostile files goes through the real CLI (`main.py validate` / `run`); a property test
mutates real workflows and checks that loading + validating raises nothing but FormatError.
"""
from __future__ import annotations

import copy
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.formats import FormatError, load_any, to_native
from engine.formats.png import PNG_SIGNATURE
from engine.formats.reading import MAX_DEPTH
from engine.graph import validate
from tests.stub_nodes import make_registry

ROOT = Path(__file__).resolve().parent.parent
API = {"1": {"class_type": "StubInt", "inputs": {"value": 3}},
       "2": {"class_type": "StubSaveText", "inputs": {"value": ["1", 0], "filename_prefix": "x"}}}


def _chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return struct.pack(">I4s", size, kind) + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(*chunks: bytes) -> bytes:
    return PNG_SIGNATURE + b"".join(chunks)


def _api_with(value: str) -> bytes:
    return ('{"1": {"class_type": "StubInt", "inputs": {"value": ' + value + '}}}').encode()


HOSTILE: dict[str, bytes] = {
    "deep_arrays_1000": _api_with("[" * 1000 + "]" * 1000),
    "deep_objects_100000": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "int_5000_digits": _api_with("9" * 5000),
    "negative_int_5000_digits": _api_with("-" + "9" * 5000),
    "float_overflow": _api_with("1e999"),
    "nan": _api_with("NaN"),
    "infinity": _api_with("-Infinity"),
    "invalid_utf8": b'{"1": {"class_type": "\xff\xfe\xfa", "inputs": {}}}',
    "utf16_with_bom": json.dumps(API).encode("utf-16"),
    "empty": b"",
    "truncated": b'{"1": {"class_type": "StubInt", "inp',
    "top_level_array": b"[1, 2, 3]",
    "top_level_string": b'"a workflow"',
    "top_level_number": b"42",
    "top_level_null": b"null",
    "nul_bytes": b"\x00\x00\x00\x00",
    "api_inputs_list": b'{"1": {"class_type": "StubInt", "inputs": [1, 2]}}',
    "api_node_not_object": b'{"1": {"class_type": "StubInt", "inputs": {}}, "2": 7}',
    "ui_nodes_not_list": b'{"nodes": 5, "links": [], "version": 0.4}',
    "ui_widgets_not_list": b'{"nodes": [{"id": 1, "type": "StubInt", "widgets_values": 5}], "links": []}',
    "native_bad_link": b'{"format": "latentgraph", "version": 1, "nodes": [], "links": [{"from": 5}]}',
    "native_nodes_object": b'{"format": "latentgraph", "version": 1, "nodes": {"a": 1}, "links": []}',
    "native_version_string": b'{"format": "latentgraph", "version": "1", "nodes": []}',
    "png_signature_only": PNG_SIGNATURE,
    "png_chunk_length_lies": _png(_chunk(b"tEXt", b"prompt\x00{}", length=2**31)),
    "png_prompt_not_json": _png(_chunk(b"tEXt", b"prompt\x00{not json")),
    "png_prompt_deep": _png(_chunk(b"tEXt", b"prompt\x00" + _api_with("[" * 5000 + "]" * 5000))),
    "png_prompt_array": _png(_chunk(b"tEXt", b"prompt\x00[1]")),
    "png_ztxt_bomb": _png(_chunk(b"zTXt", b"prompt\x00\x00" + zlib.compress(b" " * (80 << 20), 9))),
    "png_ztxt_broken": _png(_chunk(b"zTXt", b"prompt\x00\x00not zlib at all")),
    "png_itxt_truncated": _png(_chunk(b"iTXt", b"prompt\x00\x01")),
}


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LATENTGRAPH_BUILTIN_NODES": "0", "LATENTGRAPH_EXTRA_NODES": "tests.stub_nodes",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_cli_refuses_a_hostile_file_in_one_line(tmp_path, name, command):
    path = tmp_path / (name + (".png" if name.startswith("png") else ".json"))
    path.write_bytes(HOSTILE[name])
    proc = _cli(command, str(path), "--output-dir", str(tmp_path / "out"), "--user-dir", str(tmp_path / "u"),
                "--custom-nodes", str(tmp_path / "none"))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot load {path}: "), proc.stderr


def test_cli_names_a_missing_file_in_one_line(tmp_path):
    proc = _cli("validate", str(tmp_path / "nowhere.json"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "nowhere.json" in proc.stderr


def test_nesting_up_to_the_bound_still_loads():
    reg = make_registry()
    text = _api_with("[" * (MAX_DEPTH - 4) + "]" * (MAX_DEPTH - 4)).decode()
    assert load_any(text, reg).prompt["1"]["inputs"]["value"]  # deep but allowed: read as given
    with pytest.raises(FormatError, match="nested more than"):
        load_any(_api_with("[" * MAX_DEPTH + "]" * MAX_DEPTH), reg)
    with pytest.raises(FormatError, match="nested more than"):  # already parsed: bounded all the same
        deep: list = []
        for _ in range(MAX_DEPTH + 5):
            deep = [deep]
        load_any({"1": {"class_type": "StubInt", "inputs": {"value": deep}}}, reg)


# -- property test: mutated real workflows ------------------------------------------------------
_REG = make_registry()
_UI = {"last_node_id": 2, "last_link_id": 1, "version": 0.4, "links": [[1, 1, 0, 2, 0, "INT"]],
       "nodes": [{"id": 1, "type": "StubInt", "pos": [0, 0], "size": [200, 80], "mode": 0,
                  "inputs": [], "outputs": [{"name": "INT", "type": "INT", "links": [1], "slot_index": 0}],
                  "widgets_values": [3]},
                 {"id": 2, "type": "StubSaveText", "pos": [300, 0], "size": [200, 80], "mode": 0,
                  "inputs": [{"name": "value", "type": "*", "link": 1}], "outputs": [],
                  "widgets_values": ["x"]}]}
_NATIVE = to_native(API, _REG)[0]
_SEEDS = [API, {"prompt": API, "extra_data": {"extra_pnginfo": {"workflow": _UI}}}, _UI, _NATIVE]

_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
_value = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)


def _paths(obj, prefix=()):
    yield prefix
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, child in items:
        yield from _paths(child, prefix + (key,))


@st.composite
def _mutated(draw):
    doc = copy.deepcopy(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(list(_paths(doc))))
        if not where:
            doc = draw(_value)
            continue
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = draw(_value)
        if not isinstance(doc, (dict, list)):
            break
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_workflows_fail_only_with_format_errors(doc):
    text = json.dumps(doc)
    for source in (text, text.encode()):
        try:
            loaded = load_any(source, _REG)
        except FormatError as exc:
            assert "\n" not in str(exc)
            continue
        val = validate(loaded.prompt, _REG, None)
        assert val.ok or val.error or val.node_errors
        assert "internal validation error" not in json.dumps(val.error or {})
    try:
        to_native(text.encode(), _REG)
    except FormatError as exc:
        assert "\n" not in str(exc)
