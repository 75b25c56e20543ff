"""A new user's first minute: `python main.py` until it answers, then the first Queue of the default
workflow (committed demo model, 128×128, 20 euler steps) until its image is saved.

    python bench/bench_first_run.py [--think 8] [--rounds 3]

`--think` is the pause between the server answering and the Queue press (a person opening the
page); background warm-up work has that long. Each round starts a fresh server process with
throw-away user/output folders. Prints seconds (median and spread over the rounds).
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def one_round(think: float) -> tuple[float, float]:
    """(seconds until /system_stats answers, seconds from POST /prompt to a finished history entry)."""
    port, scratch = _free_port(), tempfile.mkdtemp(prefix="lg-first-run-")
    cmd = [sys.executable, "main.py", "serve", "--port", str(port), "--user-dir", scratch + "/user",
           "--output-dir", scratch + "/output", "--temp-dir", scratch + "/temp"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                _get(url + "/system_stats")
                break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"the server exited with code {proc.returncode}")
                time.sleep(0.1)
        up = time.monotonic() - t0
        time.sleep(think)
        prompt = json.loads((ROOT / "workflows" / "api" / "default.json").read_text())
        req = urllib.request.Request(url + "/prompt", data=json.dumps({"prompt": prompt}).encode(),
                                     headers={"Content-Type": "application/json"})
        t1 = time.monotonic()
        with urllib.request.urlopen(req, timeout=30) as r:
            pid = json.load(r)["prompt_id"]
        while not _get(f"{url}/history/{pid}").get(pid, {}).get("status", {}).get("completed"):
            time.sleep(0.05)
        return up, time.monotonic() - t1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--think", type=float, default=8.0, help="seconds between the server answering and Queue")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    ups, firsts = zip(*(one_round(args.think) for _ in range(args.rounds)))
    for name, xs in (("server answers after start", ups), ("first Queue -> saved image", firsts)):
        print(f"{name:<28} {statistics.median(xs):6.2f} s   (min {min(xs):.2f}, max {max(xs):.2f})")


if __name__ == "__main__":
    main()
