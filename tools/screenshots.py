"""Retake the README's editor screenshots with the real server, the demo model and headless Chromium.

    python -m tools.screenshots [--out docs/screenshots] [--chromium /usr/bin/chromium]

Starts `python main.py` on a free port with throw-away user/output folders (the committed models
and workflows are used as a fresh install sees them), opens the page, and saves:
editor-default-workflow.png (first open), editor-finished-run.png (after one Queue press with the
default workflow) and quickstart-output.png (the picture that run saved).
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1700, "height": 1000}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/system_stats", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the server did not answer at {url} within {timeout:.0f} s")


def take(url: str, out: Path, chromium: str) -> None:
    """Drive the page: first open, then one Queue press; screenshots into `out`."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="lg-shots-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(profile, executable_path=chromium, args=FLAGS,
                                                       headless=True, viewport=VIEWPORT)
            page = ctx.new_page()
            page.goto(url + "/")
            page.wait_for_selector(".lg-app[data-ready='1']", timeout=60_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(out / "editor-default-workflow.png"))
            page.locator(".lg-canvas").click(position={"x": 5, "y": 5})
            page.keyboard.press("Control+Enter")
            item = page.locator(".lg-gallery-item").first
            item.wait_for(timeout=120_000)
            page.wait_for_timeout(800)
            page.screenshot(path=str(out / "editor-finished-run.png"))
            name = item.get_attribute("data-filename")
            with urllib.request.urlopen(f"{url}/api/view?filename={name}&type=output&subfolder=") as r:
                (out / "quickstart-output.png").write_bytes(r.read())
            ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    port, scratch = _free_port(), Path(tempfile.mkdtemp(prefix="lg-shots-run-"))
    cmd = [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(port),
           "--user-dir", str(scratch / "user"), "--output-dir", str(scratch / "output"),
           "--temp-dir", str(scratch / "temp")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_up(url, proc)
        take(url, args.out, args.chromium)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
