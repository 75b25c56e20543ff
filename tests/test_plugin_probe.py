"""Plugins that hang, exit or crash at import: probed in a child process, reported, never fatal."""
from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from nodes.plugin_probe import CACHE_NAME, PluginProbe, probe
from tests.server_helpers import ServerProcess

GOOD = """
from nodes.registry import node, Int, Out

@node(category="plugin")
class ProbeGoodNode:
    \"\"\"A plugin node that loads.\"\"\"
    INPUTS = [Int("v", 1)]
    OUTPUTS = [Out("INT")]

    def run(self, ctx, v):
        return (2 * v,)
"""
PLUGINS = {
    "good.py": GOOD,
    "hangs.py": "import time\ntime.sleep(1000)\n",
    "exits.py": "import os\nprint('bye', flush=True)\nos._exit(3)\n",
    "raises.py": "raise RuntimeError('plugin exploded at import')\n",
    "segfaults.py": "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n",
}


def _write_plugins(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(textwrap.dedent(PLUGINS[name]))
    return folder


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    return _write_plugins(tmp_path_factory.mktemp("plugins"), list(PLUGINS))


@pytest.mark.parametrize("name,expected", [
    ("good.py", None), ("raises.py", None),  # a raise is reported by the in-process import
    ("hangs.py", "did not finish within 3 s"), ("exits.py", "exit code 3"), ("segfaults.py", "SIGSEGV"),
])
def test_probe_verdicts(plugin_dir, name, expected):
    error = probe(plugin_dir / name, sys.path, timeout=3)
    if expected is None:
        assert error is None
    else:
        assert error is not None and expected in error and "not loaded" in error


def test_probe_of_a_package_and_of_a_grandchild_left_running(tmp_path):
    pkg = tmp_path / "mypack"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .impl import VALUE\n")
    (pkg / "impl.py").write_text("VALUE = 1\n")
    assert probe(pkg, sys.path, timeout=30) is None
    # a plugin starting a long-lived subprocess and then hanging: its whole session is killed
    pid_file = tmp_path / "pid"
    (tmp_path / "spawns.py").write_text(textwrap.dedent(f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"])
        open({str(pid_file)!r}, "w").write(str(p.pid))
        time.sleep(1000)
    """))
    assert "did not finish" in probe(tmp_path / "spawns.py", sys.path, timeout=3)
    assert _gone(int(pid_file.read_text()))


def _gone(pid: int) -> bool:
    """The process no longer runs: no /proc entry, or a zombie waiting for its new parent to reap it."""
    for _ in range(100):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)  # SIGKILL is delivered asynchronously
    return False


def test_verdicts_are_cached_until_the_plugin_changes(tmp_path, monkeypatch):
    import nodes.plugin_probe as pp

    folder = _write_plugins(tmp_path / "plugins", ["good.py", "exits.py"])
    calls: list[str] = []
    real = pp.probe

    def counting(path, *args, **kwargs):
        calls.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pp, "probe", counting)
    user = tmp_path / "user"
    first = PluginProbe.for_user_dir(user, 30)
    assert first("good", folder / "good.py", False) is None
    refused = first("exits", folder / "exits.py", False)
    assert refused["module"] == "custom_nodes.exits" and "exit code 3" in refused["error"]
    assert calls == ["good.py", "exits.py"]
    cache = json.loads((user / CACHE_NAME).read_text())
    assert len(cache) == 2

    again = PluginProbe.for_user_dir(user, 30)  # a restart: nothing re-probed
    assert again("good", folder / "good.py", False) is None
    assert "exit code 3" in again("exits", folder / "exits.py", False)["error"]
    assert calls == ["good.py", "exits.py"]

    (folder / "exits.py").write_text("X = 1\n")  # fixed: size and mtime change
    assert PluginProbe.for_user_dir(user, 30)("exits", folder / "exits.py", False) is None
    assert calls == ["good.py", "exits.py", "exits.py"]
    assert PluginProbe.for_user_dir(user, 0) is None


def test_a_timeout_verdict_is_retried_with_a_higher_limit(tmp_path, monkeypatch):
    import nodes.plugin_probe as pp

    folder = _write_plugins(tmp_path / "plugins", ["hangs.py"])
    calls: list[float] = []
    monkeypatch.setattr(pp, "probe", lambda path, sys_path, timeout, **kw: calls.append(timeout) or "late")
    monkeypatch.setattr(pp.time, "monotonic", iter([0.0, 5.0, 0.0, 5.0, 0.0, 50.0]).__next__)
    user = tmp_path / "user"
    for limit in (5, 5, 60):
        assert PluginProbe.for_user_dir(user, limit)("hangs", folder / "hangs.py", False) is not None
    assert calls == [5.0, 60.0]


def test_server_starts_despite_hanging_and_exiting_plugins(plugin_dir, tmp_path):
    srv = ServerProcess(tmp_path / "srv", extra_args=["--custom-nodes", str(plugin_dir),
                                                      "--plugin-timeout", "5"])
    with srv:
        with httpx.Client(base_url=srv.url, timeout=30.0) as c:
            info = c.get("/object_info").json()
        assert info["ProbeGoodNode"]["python_module"] == "custom_nodes.good"
        log = srv.log_tail(20000)
    for module, reason in [("hangs", "did not finish within 5 s"), ("exits", "exit code 3"),
                           ("segfaults", "SIGSEGV"), ("raises", "RuntimeError: plugin exploded at import")]:
        line = next((ln for ln in log.splitlines() if f"custom_nodes.{module} failed to load" in ln), "")
        assert reason in line, (module, log[-3000:])
    assert (srv.dirs["user"] / CACHE_NAME).is_file()


def test_cli_nodes_reports_probe_refusals(plugin_dir, tmp_path):
    import subprocess

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "LATENTGRAPH_BUILTIN_NODES": "0", "LATENTGRAPH_EXTRA_NODES": "", "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, str(root / "main.py"), "nodes", "--json", "--custom-nodes",
                           str(plugin_dir), "--plugin-timeout", "3", "--user-dir", str(tmp_path / "u"),
                           "--models-dir", str(tmp_path / "m")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads(proc.stdout)) == ["ProbeGoodNode"]
    assert "custom_nodes.hangs failed to load: PluginProbe: import did not finish within 3 s" in proc.stderr
    assert "custom_nodes.exits failed to load" in proc.stderr
