"""Oversize work is refused before it is allocated, with an error that names the node.

EmptyLatentImage 16384×16384 (inside ComfyUI's declared range, so validation accepts it) →
KSampler → VAEDecode on the tiny SD1 model would need far more memory than the machine has (the
decoder alone ~100+ GiB). With ``--max-memory 4G`` the job must end as a structured
execution_error naming one of those nodes and saying how much it needs ("~N GiB"), the server's
peak RSS must not jump, and the next normal job must run.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx
import pytest

from tests.server_helpers import ROOT, ServerProcess, peak_rss_mb, tiny_sd_graph, wait_history

HUGE_NODES = {"5": "EmptyLatentImage", "3": "KSampler", "8": "VAEDecode"}
NEEDS_GIB = re.compile(r"\d+(\.\d+)?\s*GiB")


def huge_graph() -> dict:
    g = tiny_sd_graph(seed=3)
    g["5"]["inputs"].update(width=16384, height=16384)
    return g


@pytest.fixture(scope="module")
def server(tiny_dir, tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("mem"), models_dir=tiny_dir, extra_args=["--max-memory", "4G"])
    srv.start()
    yield srv
    srv.stop()


def _refusal(err: dict) -> None:
    assert err.get("node_id") in HUGE_NODES, err
    assert err.get("node_type") == HUGE_NODES[err["node_id"]], err
    message = str(err.get("exception_message", ""))
    assert NEEDS_GIB.search(message) and "avail" in message.lower(), message
    assert "Traceback" not in message


def test_oversize_latent_is_refused_naming_the_node(server):
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        # warm the model cache first so the RSS peak below measures the huge job alone
        ok = c.post("/prompt", json={"prompt": tiny_sd_graph(seed=1)}).json()["prompt_id"]
        assert wait_history(c, ok, timeout=300)["status"]["status_str"] == "success"
        _, peak_before = peak_rss_mb(server.proc.pid)
        r = c.post("/prompt", json={"prompt": huge_graph()})
        if r.status_code == 400:  # refused up front is fine too, as long as it names the node
            errors = r.json()["node_errors"]
            assert set(errors) & set(HUGE_NODES), r.text[:500]
        else:
            assert r.status_code == 200, r.text[:300]
            entry = wait_history(c, r.json()["prompt_id"], timeout=300)
            assert entry["status"]["status_str"] == "error"
            errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
            assert len(errors) == 1, entry["status"]["messages"]
            _refusal(errors[0])
        _, peak_after = peak_rss_mb(server.proc.pid)
        assert peak_after - peak_before < 1024, (peak_before, peak_after)
        again = c.post("/prompt", json={"prompt": tiny_sd_graph(seed=2)}).json()["prompt_id"]
        assert wait_history(c, again, timeout=300)["status"]["status_str"] == "success"
        assert c.get("/system_stats").status_code == 200


def test_cli_run_refuses_oversize_work_in_one_readable_error(tiny_dir, tmp_path):
    wf = tmp_path / "huge.json"
    wf.write_text(json.dumps(huge_graph()))
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "run", str(wf), "--cpu", "--max-memory", "4G",
                           "--models-dir", str(tiny_dir), "--output-dir", str(tmp_path / "out"),
                           "--custom-nodes", str(tmp_path / "none")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode in (1, 2), (proc.returncode, text[-800:])
    assert "Traceback" not in text, text[-1500:]
    named = [line for line in proc.stderr.splitlines() if any(f"({t})" in line or t in line for t in HUGE_NODES.values())]
    assert named and NEEDS_GIB.search(proc.stderr), proc.stderr[-800:]
    assert not list((tmp_path / "out").rglob("*.png"))
