"""Server throughput and latency over real loopback HTTP/WebSocket, printed as one table.

    python bench/bench_server.py [--requests 200] [--latency-runs 30] [--threads 4]

Starts ``main.py serve`` in a subprocess (stub test nodes added, as in tests/server_helpers.py) and
measures: GET /object_info requests/s (every registered node, file combos listed per request),
POST /prompt requests/s for a graph whose result is cached (validation + SQLite insert), and the
end-to-end latency of a cached resubmit: POST /prompt → ``executing node=null`` on the WebSocket.
Rounds are interleaved and medians reported, since this machine's timings are noisy.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import websockets  # noqa: E402

from tests.server_helpers import ServerProcess, collect_until_done, stub_graph, wait_history  # noqa: E402


def _rate(url: str, n: int, threads: int, fn) -> float:
    """Requests per second for n calls of fn(client) spread over `threads` keep-alive clients."""
    per = max(1, n // threads)

    def worker(_: int) -> None:
        with httpx.Client(base_url=url, timeout=60.0) as c:
            for _ in range(per):
                fn(c)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return per * threads / (time.perf_counter() - t0)


def _get_object_info(c: httpx.Client) -> None:
    c.get("/object_info").raise_for_status()


def _post_cached(c: httpx.Client) -> None:
    c.post("/prompt", json={"prompt": stub_graph(200)}).raise_for_status()


async def _latency(srv: ServerProcess, runs: int) -> list[float]:
    """Seconds from POST /prompt to executing node=null for an already-cached graph."""
    out = []
    cid = uuid.uuid4().hex
    async with websockets.connect(srv.ws_url(cid)) as ws, httpx.AsyncClient(base_url=srv.url) as c:
        await ws.recv()
        for _ in range(runs):
            pid = uuid.uuid4().hex
            t0 = time.perf_counter()
            r = await c.post("/prompt", json={"prompt": stub_graph(201), "client_id": cid, "prompt_id": pid})
            r.raise_for_status()
            await collect_until_done(ws, pid, 60)
            out.append(time.perf_counter() - t0)
    return out


def _drain(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60.0) as c:
        deadline = time.monotonic() + 120
        while c.get("/prompt").json()["exec_info"]["queue_remaining"] and time.monotonic() < deadline:
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--latency-runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "srv") as srv:
        with httpx.Client(base_url=srv.url, timeout=60.0) as c:
            n_nodes = len(c.get("/object_info").json())
            size = len(c.get("/object_info").content)
            for value in (200, 201):  # warm the cache for the resubmitted graphs
                pid = c.post("/prompt", json={"prompt": stub_graph(value)}).json()["prompt_id"]
                wait_history(c, pid)
        info, post, lat = [], [], []
        for _ in range(args.rounds):
            info.append(_rate(srv.url, args.requests, args.threads, _get_object_info))
            post.append(_rate(srv.url, args.requests, args.threads, _post_cached))
            _drain(srv.url)
            lat += asyncio.run(_latency(srv, max(1, args.latency_runs // args.rounds)))
    lat_ms = sorted(x * 1000 for x in lat)
    rows = [
        (f"GET /object_info ({n_nodes} nodes, {size // 1024} KiB)", f"{statistics.median(info):.1f} req/s",
         f"min {min(info):.1f} / max {max(info):.1f}"),
        ("POST /prompt (cached graph)", f"{statistics.median(post):.1f} req/s", f"min {min(post):.1f} / max {max(post):.1f}"),
        ("cached resubmit POST → executing null", f"{statistics.median(lat_ms):.1f} ms median",
         f"p90 {lat_ms[int(0.9 * (len(lat_ms) - 1))]:.1f} ms, n={len(lat_ms)}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>20}  spread   ({args.threads} client threads, {args.rounds} rounds)")
    for name, value, spread in rows:
        print(f"{name:<{width}}  {value:>20}  {spread}")
    print(json.dumps({"object_info_rps": info, "post_prompt_rps": post, "latency_ms": lat_ms}))


if __name__ == "__main__":
    main()
