"""Runs ComfyUI's own execution test suite against Latentgraph's server and prints pass/fail per test.

    python tools/run_comfy_execution_suite.py PATH_TO_COMFYUI_CHECKOUT [--port 8299] [-k EXPR]
                                              [--skip-timing-checks]

ComfyUI's tests/execution/test_execution.py and test_async_nodes.py are used unmodified: they
start `python main.py --output-directory D --listen A --port P --extra-model-paths-config
tests/execution/extra_model_paths.yaml --cpu [--cache-lru N]` from the current directory, load
their testing-pack through that yaml's `custom_nodes:` entry and import
comfy_execution.graph_utils (ours, from comfy_compat/). The files are copied into a temporary
folder whose `main.py` starts OUR main.py (with folders kept inside the temporary folder, no plugin
probe and no Gradio editor: the tests wait at most ~20 s for the server); nothing of ComfyUI's is
written into this repository.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUITE = ["tests/execution/test_execution.py", "tests/execution/test_async_nodes.py"]

SHIM = '''"""Starts Latentgraph's server with the arguments ComfyUI's tests pass (written by
tools/run_comfy_execution_suite.py)."""
import os
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, {repo!r})
# ComfyUI keeps history in memory, so each server of the suite starts with none; ours gets a fresh
# user folder (our history database survives restarts by design).
USER = HERE / "base" / f"user-{{os.getpid()}}"
sys.argv = [{main!r}, *sys.argv[1:], "--base-directory", str(HERE / "base"), "--plugin-timeout", "0",
            "--no-editor", "--user-directory", str(USER)]
runpy.run_path({main!r}, run_name="__main__")
'''


def stage(comfy: Path, work: Path) -> None:
    """Copies ComfyUI's tests/ pieces the suite needs and writes the main.py shim."""
    tests = work / "tests"
    tests.mkdir(parents=True)
    for name in ("__init__.py", "conftest.py"):
        shutil.copy2(comfy / "tests" / name, tests / name)
    shutil.copytree(comfy / "tests" / "execution", tests / "execution")
    (work / "main.py").write_text(SHIM.format(repo=str(REPO), main=str(REPO / "main.py")))
    (work / "pytest.ini").write_text("[pytest]\nmarkers =\n  execution: execution test\n")
    (work / "base" / "custom_nodes").mkdir(parents=True)


def run(work: Path, port: int, extra: list[str]) -> tuple[int, Path]:
    report = work / "report.xml"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "comfy_compat"), str(REPO), str(work),
                                         env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, "-m", "pytest", *SUITE, "-p", "no:cacheprovider", "-q",
           "--port", str(port), "--output_dir", str(work / "out"), f"--junitxml={report}", *extra]
    code = subprocess.call(cmd, cwd=work, env=env)
    return code, report


def table(report: Path) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    """(test id, outcome, first line of the failure) per test case, and the counts."""
    rows, counts = [], {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for case in ET.parse(report).getroot().iter("testcase"):
        outcome, why = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = "failed" if kind == "failure" else kind
                why = (found.get("message") or "").splitlines()[0][:150] if found.get("message") else ""
                break
        counts[outcome] += 1
        rows.append((f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}", outcome, why))
    return rows, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comfyui", type=Path, help="a ComfyUI checkout (its tests/execution is used)")
    parser.add_argument("--port", type=int, default=8299)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args, extra = parser.parse_known_args(argv)
    if not (args.comfyui / "tests" / "execution" / "test_execution.py").is_file():
        print(f"error: {args.comfyui} has no tests/execution/test_execution.py", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="lg-comfy-suite-"))
    try:
        stage(args.comfyui, work)
        code, report = run(work, args.port, extra)
        if not report.is_file():
            print("error: pytest wrote no report", file=sys.stderr)
            return code or 1
        rows, counts = table(report)
        for test_id, outcome, why in rows:
            print(f"{outcome.upper():7} {test_id}" + (f"  -- {why}" if why else ""))
        print(" ".join(f"{k}={v}" for k, v in counts.items()))
        return 0 if counts["failed"] == counts["error"] == 0 else 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
