"""A new user's first minute: `python main.py` until it answers, then the first Queue of the default
workflow (committed demo model, 128×128, 20 euler steps) until its image is saved.

    python bench/bench_first_run.py [--think 8] [--rounds 3]

`--think` is the pause between the server answering and the Queue press (a person opening the
page); background warm-up work has that long. Each round starts a fresh server process with
throw-away input/output/user folders and the committed models/. Prints seconds (median and spread over the rounds).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.server_helpers import ServerProcess, wait_history  # noqa: E402


def one_round(think: float) -> tuple[float, float]:
    """(seconds until /system_stats answers, seconds from POST /prompt to its history entry)."""
    with tempfile.TemporaryDirectory(prefix="lg-first-run-") as tmp:
        srv = ServerProcess(Path(tmp), models_dir=ROOT / "models", stubs=False)
        t0 = time.monotonic()
        with srv, httpx.Client(base_url=srv.url, timeout=30) as client:  # entering starts it
            up = time.monotonic() - t0
            time.sleep(think)
            prompt = json.loads((ROOT / "workflows" / "api" / "default.json").read_text())
            t1 = time.monotonic()
            r = client.post("/prompt", json={"prompt": prompt})
            r.raise_for_status()
            entry = wait_history(client, r.json()["prompt_id"])
            first = time.monotonic() - t1
            if not entry["status"]["completed"]:
                raise SystemExit(f"the default workflow failed: {entry['status']}")
            return up, first


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
