"""Retake the README's editor screenshots with the real server, the demo model and headless Chromium.

    python -m tools.screenshots [--out docs/screenshots] [--chromium /usr/bin/chromium]

Starts `python main.py` (tests.server_helpers.ServerProcess) on a free port with throw-away
input/output/user folders — the committed models and workflows as a fresh install sees them —
opens the page, and saves:
editor-default-workflow.png (first open), editor-finished-run.png (after one Queue press with the
default workflow) and quickstart-output.png (the picture that run saved).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1700, "height": 1000}


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
    from tests.server_helpers import ServerProcess

    with tempfile.TemporaryDirectory(prefix="lg-shots-run-") as tmp, \
            ServerProcess(Path(tmp), models_dir=ROOT / "models", stubs=False) as srv:
        take(srv.url, args.out, args.chromium)
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
