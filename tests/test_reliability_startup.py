"""Start-up cannot be bricked or made unsafe: the public-bind rule and the plugin-import time limit.

- ``serve --listen 0.0.0.0`` without ``--auth-token`` refuses to start (non-zero exit, a message
  naming both ways out); with ``--allow-no-auth`` it starts and refuses a foreign Host (403) unless
  listed in ``--allowed-hosts``; with ``--auth-token`` it starts and wants the token.
- A plugin that never finishes importing, or that calls ``os._exit``, is probed in a child process
  under ``--plugin-timeout``: the server still starts (its other plugins work) and names them.
The servers bind every interface only for the few seconds of each test; all traffic goes to 127.0.0.1.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import httpx
import pytest

from tests.fuzz_cases import response_problem
from tests.server_helpers import ROOT, ServerProcess

PLUGIN_TIMEOUT = 5
MARGIN = 90  # start-up itself (imports, torch) on a loaded 2-core machine


def _end_group(srv: ServerProcess) -> None:
    """Stop the server and whatever it started (plugin probes) by its process group."""
    srv.stop()
    if srv.proc is not None:
        try:
            os.killpg(srv.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def test_public_bind_without_token_is_refused(tmp_path):
    srv = ServerProcess(tmp_path, extra_args=["--listen", "0.0.0.0"])
    try:
        with pytest.raises(RuntimeError, match="exited"):
            srv.start(timeout=MARGIN)
    finally:
        _end_group(srv)
    assert srv.proc.returncode not in (0, None)
    log = srv.log_tail()
    assert "--auth-token" in log and "--allow-no-auth" in log, log[-800:]
    assert "Traceback" not in log, log[-1500:]


def test_public_bind_with_allow_no_auth_checks_the_host(tmp_path):
    srv = ServerProcess(tmp_path, extra_args=["--listen", "0.0.0.0", "--allow-no-auth",
                                              "--allowed-hosts", "studio.lan"])
    try:
        srv.start(timeout=MARGIN)
        with httpx.Client(base_url=srv.url, timeout=30.0) as c:
            assert c.get("/system_stats").status_code == 200
            foreign = c.get("/system_stats", headers={"Host": f"evil.example:{srv.port}"})
            assert foreign.status_code == 403, foreign.text[:300]
            assert response_problem(403, foreign.headers.get("content-type", ""), foreign.content,
                                    prompt_route=False) is None
            assert c.post("/prompt", json={"prompt": {}}, headers={"Host": "evil.example"}).status_code == 403
            listed = c.get("/system_stats", headers={"Host": f"studio.lan:{srv.port}"})
            assert listed.status_code == 200, listed.text[:300]
    finally:
        _end_group(srv)


def test_public_bind_with_token_starts_and_wants_it(tmp_path):
    srv = ServerProcess(tmp_path, auth_token="rel-token", extra_args=["--listen", "0.0.0.0"])
    try:
        srv.start(timeout=MARGIN)
        with httpx.Client(base_url=srv.url, timeout=30.0) as c:
            assert c.get("/system_stats").status_code == 401
            assert c.get("/system_stats", headers=srv.headers()).status_code == 200
    finally:
        _end_group(srv)


PLUGINS = {
    "rel_hangs.py": """
        import time
        for _ in range(600):  # never finishes importing (but ends by itself within 10 minutes)
            time.sleep(1)
    """,
    "rel_exits.py": """
        import os
        os._exit(7)
    """,
    "rel_good.py": """
        class RelGoodNode:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"value": ("INT", {"default": 1, "min": 0, "max": 10})}}
            RETURN_TYPES = ("INT",)
            FUNCTION = "go"
            CATEGORY = "reliability"

            def go(self, value):
                return (value,)

        NODE_CLASS_MAPPINGS = {"RelGoodNode": RelGoodNode}
    """,
}
BAD = ("rel_hangs", "rel_exits")


@pytest.fixture
def plugin_dir(tmp_path):
    d = tmp_path / "custom_nodes"
    d.mkdir()
    for name, code in PLUGINS.items():
        (d / name).write_text(textwrap.dedent(code))
    return d


def _reported(text: str, module: str) -> bool:
    words = ("fail", "error", "time", "exit")
    return any(module in line and any(w in line.lower() for w in words) for line in text.splitlines())


def test_hanging_and_exiting_plugins_do_not_stop_the_server(tmp_path, plugin_dir):
    srv = ServerProcess(tmp_path / "srv", extra_args=["--custom-nodes", str(plugin_dir),
                                                      "--plugin-timeout", str(PLUGIN_TIMEOUT)])
    try:
        srv.start(timeout=PLUGIN_TIMEOUT + MARGIN)
        with httpx.Client(base_url=srv.url, timeout=30.0) as c:
            info = c.get("/object_info/RelGoodNode").json()
            assert "RelGoodNode" in info, "the good plugin next to the bad ones was not loaded"
            assert c.get("/system_stats").status_code == 200
        log = srv.log_tail(20000)
        for module in BAD:
            assert _reported(log, module), f"{module} not reported as failed:\n{log[-1500:]}"
    finally:
        _end_group(srv)


def test_nodes_command_reports_bad_plugins_and_lists_the_good_one(tmp_path, plugin_dir):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", LATENTGRAPH_BUILTIN_NODES="0")
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "nodes", "--custom-nodes", str(plugin_dir),
                             "--plugin-timeout", str(PLUGIN_TIMEOUT)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=PLUGIN_TIMEOUT + MARGIN)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, (proc.returncode, err[-800:])
    assert "RelGoodNode" in out
    for module in BAD:
        assert _reported(err, module), f"{module} not reported:\n{err[-1500:]}"
    assert "Traceback" not in out + err
