"""Import each plugin once in a throw-away child process before importing it for real.

An in-process import cannot be abandoned: a plugin that hangs at import (a network call, a
`sleep`, a deadlock) blocks start-up forever, and one that calls `os._exit` or crashes the
interpreter takes the whole server with it. So each plugin is first imported by
``python -c`` with the same ``sys.path``, under a time limit; only when that child finishes
(the import succeeded, or raised an ordinary exception) does the in-process import follow. A
plugin whose child hangs, exits or dies is reported as a load error and never imported here.

A raised exception is not a refusal: the in-process import runs and reports it with its
traceback, exactly as without the probe (and if the two environments differ, the real one
decides). Verdicts are cached in ``<user dir>/plugin_probe.json`` by (plugin path, size and mtime
of each of its files, interpreter, sys.path), so a restart probes only what changed; a time-out
verdict is retried when the time limit is raised.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from engine.paths import write_json_atomic

CACHE_NAME = "plugin_probe.json"
DEFAULT_TIMEOUT = 60.0
_STDERR_TAIL = 1500  # characters of the child's stderr quoted in a refusal

# The child: same sys.path, the node API imported as in the server (so `@node` works), then the
# plugin imported under the same module name. The verdict goes to a file, not stdout (plugins print),
# and os._exit skips waiting for threads the plugin may have started.
_CHILD = r"""
import json, os, sys
result_path, name, path, is_pkg, sys_path = sys.argv[1:6]
sys.path[:] = json.loads(sys_path)
try:
    import importlib.util
    import nodes.registry
    import nodes.plugin_env; nodes.plugin_env.prepare()
    mod_name = "custom_nodes." + name
    spec = importlib.util.spec_from_file_location(
        mod_name, path, submodule_search_locations=[os.path.dirname(path)] if is_pkg == "1" else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    verdict = {"ok": True}
except BaseException as exc:
    verdict = {"ok": False, "raised": type(exc).__name__ + ": " + str(exc)[:500]}
with open(result_path, "w") as fh:
    json.dump(verdict, fh)
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""


def _tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    return ("\n" + text[-_STDERR_TAIL:]) if text else ""


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def probe(path: str | Path, sys_path: Sequence[str], timeout: float, *, name: str | None = None,
          is_pkg: bool | None = None) -> str | None:
    """Import the plugin at `path` in a child process; the reason to refuse it, or None.

    `path` is a plugin module file or a package's ``__init__.py`` (a package directory is accepted
    too). Refused (a message is returned) when the import does not finish within `timeout`
    seconds (the child's process group is killed), ends the process (``os._exit``, ``sys.exit``
    from a thread...) or kills it (a signal: segfault, abort). None when the import finished,
    whether it succeeded or raised.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "__init__.py"
    is_pkg = path.name == "__init__.py" if is_pkg is None else is_pkg
    name = name or (path.parent.name if is_pkg else path.stem)
    with tempfile.TemporaryDirectory(prefix="lg-probe-") as tmp:
        result, errlog = Path(tmp) / "result.json", Path(tmp) / "stderr.txt"
        with open(errlog, "wb") as err:
            # stderr to a file, not a pipe: a grandchild holding a pipe open cannot block us.
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(result), name, str(path), "1" if is_pkg else "0",
                 json.dumps([os.path.abspath(p) for p in sys_path])],  # "" / relative: our cwd
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return (f"import did not finish within {timeout:g} s (--plugin-timeout); not loaded")
        _kill_group(proc)  # whatever the plugin left running in its session goes too
        if code < 0:
            return f"import crashed the interpreter ({_signal_name(-code)}); not loaded{_tail(errlog)}"
        if not result.is_file():
            return f"import ended the process (exit code {code}, e.g. os._exit); not loaded{_tail(errlog)}"
    return None


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the probe child's process group (its own session, started by us) and reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _plugin_files(path: Path, is_pkg: bool) -> list[Path]:
    if not is_pkg:
        return [path]
    files = []
    for dirpath, dirnames, filenames in os.walk(path.parent):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.endswith((".pyc", ".pyo")))
    return files


def fingerprint(path: Path, is_pkg: bool, sys_path: Sequence[str]) -> str:
    """Hash of what decides an import's outcome: the plugin's files (size, mtime), the interpreter."""
    h = hashlib.sha256(json.dumps([sys.executable, list(sys_path)]).encode())
    for f in _plugin_files(path, is_pkg):
        try:
            st = f.stat()
        except OSError:
            continue
        h.update(f"{f.relative_to(path.parent)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "replace"))
    return h.hexdigest()


class PluginProbe:
    """`probe` with a verdict cache: call it with a plugin entry, get a load-error entry or None.

    Built once by main.py (`PluginProbe.for_user_dir`) and passed to the plugin loader.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, cache_path: str | Path | None = None,
                 sys_path: Sequence[str] | None = None) -> None:
        self.timeout = float(timeout)
        self.cache_path = Path(cache_path) if cache_path else None
        self.sys_path = list(sys.path if sys_path is None else sys_path)
        self._cache = self._read_cache()

    @classmethod
    def for_user_dir(cls, user_dir: str | Path, timeout: float) -> "PluginProbe | None":
        """The probe main.py uses; None (no probing) when `timeout` <= 0."""
        return cls(timeout, Path(user_dir) / CACHE_NAME) if timeout > 0 else None

    def __call__(self, name: str, path: Path, is_pkg: bool) -> dict | None:
        """A load-error entry ``{module, error, traceback}`` for a refused plugin, else None."""
        path = Path(path)
        key = str(path.resolve())
        fp = fingerprint(path, is_pkg, self.sys_path)
        cached = self._cache.get(key)
        if cached and cached.get("fingerprint") == fp and not self._retry(cached):
            error = cached.get("error")
        else:
            started = time.monotonic()
            error = probe(path, self.sys_path, self.timeout, name=name, is_pkg=is_pkg)
            timed_out = error is not None and time.monotonic() - started >= self.timeout
            self._cache[key] = {"fingerprint": fp, "error": error,
                                "timeout": self.timeout if timed_out else None}
            self._write_cache()
        if error is None:
            return None
        return {"module": f"custom_nodes.{name}", "error": f"PluginProbe: {error}", "traceback": ""}

    def _retry(self, cached: dict) -> bool:
        """A time-out verdict is retried when the limit is now higher than when it was reached."""
        limit = cached.get("timeout")
        return isinstance(limit, (int, float)) and self.timeout > limit

    def _read_cache(self) -> dict[str, Any]:
        if self.cache_path is None:
            return {}
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_cache(self) -> None:
        if self.cache_path is None:
            return
        try:
            write_json_atomic(self.cache_path, self._cache)
        except OSError:
            pass  # a read-only user dir only costs a re-probe next time
