"""main.py run / validate / nodes through a subprocess, with the stub nodes as the only nodes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LATENTGRAPH_BUILTIN_NODES": "0", "LATENTGRAPH_EXTRA_NODES": "tests.stub_nodes",
           "PYTHONPATH": str(ROOT), **(extra_env or {})}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def dirs(tmp_path: Path) -> list[str]:
    return ["--output-dir", str(tmp_path / "out"), "--input-dir", str(tmp_path / "in"),
            "--models-dir", str(tmp_path / "models"), "--user-dir", str(tmp_path / "user"),
            "--custom-nodes", str(tmp_path / "no_plugins")]


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    prompt = {"1": {"class_type": "StubInt", "inputs": {"value": 3}, "_meta": {"title": "Start"}},
              "2": {"class_type": "StubAdd", "inputs": {"a": ["1", 0], "b": 4}},
              "3": {"class_type": "StubSaveText", "inputs": {"value": ["2", 0], "filename_prefix": "res"}}}
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(prompt))
    return path


def test_run_prints_output_files(workflow, dirs, tmp_path):
    proc = cli("run", str(workflow), *dirs)
    assert proc.returncode == 0, proc.stderr
    out_file = Path(proc.stdout.strip().splitlines()[-1])
    assert out_file == (tmp_path / "out" / "res_00000_.txt").resolve()
    assert out_file.read_text() == "7"


def test_run_set_by_id_and_by_title_with_json_summary(workflow, dirs):
    proc = cli("run", str(workflow), *dirs, "--set", "Start.value=10", "--set", "2.b=5", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "success" and summary["ran"] == ["1", "2", "3"]
    assert Path(summary["files"][0]).read_text() == "15"
    assert summary["outputs"]["3"]["images"][0]["filename"] == "res_00000_.txt"


def test_run_bad_set_is_exit_2(workflow, dirs):
    proc = cli("run", str(workflow), *dirs, "--set", "Nowhere.value=1")
    assert proc.returncode == 2 and "no node with id, title or type 'Nowhere'" in proc.stderr


def test_run_set_of_an_undeclared_input_and_bad_json_are_clear_errors(workflow, dirs, tmp_path):
    typo = cli("run", str(workflow), *dirs, "--set", "2.bb=5")
    assert typo.returncode == 2 and "node 2 (StubAdd) has no input 'bb' (inputs: a, b)" in typo.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"1": {"class_type": "StubInt",}')
    bad = cli("validate", str(broken), *dirs)
    assert bad.returncode == 2 and "invalid JSON at line 1, column 32" in bad.stderr
    assert "Traceback" not in typo.stderr + bad.stderr


def test_run_validation_error_prints_readable_lines(workflow, dirs):
    proc = cli("run", str(workflow), *dirs, "--set", "1.value=-5000")
    assert proc.returncode == 2
    assert "node 1 (StubInt) input 'value': value -5000 is smaller than min -1000" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_runtime_error_names_node_without_traceback(tmp_path, dirs):
    prompt = {"1": {"class_type": "StubInt", "inputs": {"value": 3}},
              "2": {"class_type": "StubFail", "inputs": {"value": ["1", 0], "fail": True}},
              "3": {"class_type": "StubOutput", "inputs": {"value": ["2", 0]}}}
    path = tmp_path / "fail.json"
    path.write_text(json.dumps(prompt))
    proc = cli("run", str(path), *dirs)
    assert proc.returncode == 1
    assert "node 2 (StubFail) failed: ValueError: stub failure requested" in proc.stderr
    assert "inputs: value=3, fail=True" in proc.stderr and "Traceback" not in proc.stderr


def test_validate_exit_codes(workflow, dirs, tmp_path):
    ok = cli("validate", str(workflow), *dirs)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: 3 nodes")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"1": {"class_type": "StubAdd", "inputs": {"a": ["9", 0]}},
                                  "2": {"class_type": "StubOutput", "inputs": {"value": ["1", 0]}}}))
    bad = cli("validate", str(broken), *dirs, "--json")
    assert bad.returncode == 2
    body = json.loads(bad.stdout)
    assert body["ok"] is False and body["node_errors"]["1"]["errors"][0]["type"] == "bad_linked_input"
    missing = cli("validate", str(tmp_path / "nope.json"), *dirs)
    assert missing.returncode == 2 and "cannot load" in missing.stderr


def test_nodes_listing_and_object_info_json(dirs):
    proc = cli("nodes", "--json", *dirs)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["StubAdd"]["input"]["required"]["a"][0] == "INT"
    assert info["StubSaveText"]["output_node"] is True
    listing = cli("nodes", *dirs)
    assert any(line.split()[1] == "StubAdd" for line in listing.stdout.splitlines() if line.strip())


def test_custom_nodes_dir_plugins_load_and_broken_ones_are_reported(tmp_path, dirs):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "good.py").write_text(textwrap.dedent("""
        from nodes.registry import node, Int, Out
        @node(category="plugin")
        class PluginTriple:
            INPUTS = [Int("v", 1)]
            OUTPUTS = [Out("INT")]
            def run(self, ctx, v):
                return (3 * v,)
    """))
    (plugins / "bad.py").write_text("raise RuntimeError('plugin exploded')\n")
    args = [a if a != str(tmp_path / "no_plugins") else str(plugins) for a in dirs]
    proc = cli("nodes", "--json", *args, extra_env={"LATENTGRAPH_EXTRA_NODES": ""})
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["PluginTriple"]["python_module"] == "custom_nodes.good" and "StubAdd" not in info
    assert "custom_nodes.bad failed to load: RuntimeError: plugin exploded" in proc.stderr


def test_run_reads_the_prompt_chunk_of_a_png(tmp_path, dirs):
    from PIL import Image, PngImagePlugin

    prompt = {"1": {"class_type": "StubInt", "inputs": {"value": 20}},
              "2": {"class_type": "StubSaveText", "inputs": {"value": ["1", 0], "filename_prefix": "png"}}}
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    path = tmp_path / "wf.png"
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    proc = cli("run", str(path), *dirs, "--json")
    assert proc.returncode == 0, proc.stderr
    assert Path(json.loads(proc.stdout)["files"][0]).read_text() == "20"
