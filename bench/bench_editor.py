"""Render time of the graph editor for a large workflow, in headless Chromium (not asserted).

Starts ``main.py serve`` on a free port (empty model folders: rendering needs only /object_info),
opens the editor, loads a generated workflow of N nodes (default 300: 50 txt2img chains, wired)
through ``window.latentgraph.loadGraph`` and prints one table: load + first render (DOM built,
layout done, links drawn), a full link redraw, and dragging one node (move + link redraw).

    python bench/bench_editor.py [--nodes 300] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHAIN = ["CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode"]


def big_workflow(n_nodes: int) -> dict:
    """A native document of ceil(n/6) txt2img chains laid out in a grid, fully wired."""
    nodes, links = [], []

    def link(src, slot, dst, name, typ):
        links.append({"id": len(links) + 1, "from": [src, slot], "to": [dst, name], "type": typ})

    for c in range((n_nodes + len(CHAIN) - 1) // len(CHAIN)):
        base, y = c * len(CHAIN), (c % 25) * 420
        x0 = (c // 25) * 1800
        ids = [str(base + i + 1) for i in range(len(CHAIN))]
        for i, (nid, typ) in enumerate(zip(ids, CHAIN)):
            if len(nodes) >= n_nodes:
                break
            nodes.append({"id": nid, "type": typ, "title": typ, "pos": [x0 + i * 290, y], "size": [260, 0],
                          "color": None, "mode": "normal", "widgets": {}, "controls": {}, "converted": []})
        if len(nodes) < base + len(CHAIN):
            break
        ck, pos, neg, lat, ks, dec = ids
        link(ck, 1, pos, "clip", "CLIP"); link(ck, 1, neg, "clip", "CLIP"); link(ck, 0, ks, "model", "MODEL")
        link(pos, 0, ks, "positive", "CONDITIONING"); link(neg, 0, ks, "negative", "CONDITIONING")
        link(lat, 0, ks, "latent_image", "LATENT"); link(ks, 0, dec, "samples", "LATENT")
        link(ck, 2, dec, "vae", "VAE")
    return {"format": "latentgraph", "version": 1, "nodes": nodes, "links": links, "groups": [],
            "view": {"scale": 0.5, "offset": [0, 0]}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(base: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    cmd = [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(port), "--cpu"]
    for name in ("models", "input", "output", "temp", "user"):
        (base / name).mkdir(parents=True, exist_ok=True)
        cmd += [f"--{name}-dir", str(base / name)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    log = open(base / "server.log", "ab")
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((base / "server.log").read_text()[-3000:])
        try:
            if httpx.get(url + "/system_stats", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start")


MEASURE_LOAD = """(doc) => new Promise((done) => {
  const t0 = performance.now();
  window.latentgraph.loadGraph(doc);
  void document.body.offsetHeight;
  requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)));
})"""
MEASURE_LINKS = """() => { const t0 = performance.now(); window.latentgraph.editor.renderer.drawLinks();
  void document.body.offsetHeight; return performance.now() - t0; }"""
MEASURE_MOVE = """() => { const ed = window.latentgraph.editor, n = ed.graph.nodes.get('5');
  const t0 = performance.now(); n.pos = [n.pos[0] + 7, n.pos[1] + 3]; ed.renderer.moveNode('5');
  ed.renderer.drawLinks(); void document.body.offsetHeight; return performance.now() - t0; }"""


def run(n_nodes: int, repeat: int) -> None:
    from playwright.sync_api import sync_playwright

    base = Path(tempfile.mkdtemp(prefix="lg-bench-editor-"))
    proc, url = start_server(base)
    try:
        doc = big_workflow(n_nodes)
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(str(base / "profile"), executable_path=CHROMIUM,
                                                       args=FLAGS, headless=True,
                                                       viewport={"width": 1600, "height": 1000})
            page = ctx.new_page()
            page.goto(url + "/")
            page.wait_for_selector(".lg-app[data-ready='1']", timeout=60_000)
            rows = {"load + render": [], "redraw links": [], "drag one node": []}
            for _ in range(repeat):
                rows["load + render"].append(page.evaluate(MEASURE_LOAD, doc))
                rows["redraw links"].append(page.evaluate(MEASURE_LINKS))
                rows["drag one node"].append(page.evaluate(MEASURE_MOVE))
            shown = page.locator(".lg-node").count()
            ctx.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)
    print(f"editor render, {shown} nodes / {len(doc['links'])} links, median of {repeat} (ms)")
    print(f"{'operation':<16} {'median':>8} {'min':>8} {'max':>8}")
    for name, values in rows.items():
        print(f"{name:<16} {statistics.median(values):8.1f} {min(values):8.1f} {max(values):8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    run(args.nodes, args.repeat)


if __name__ == "__main__":
    main()
