"""The long reliability campaign against real servers on 127.0.0.1, printed as one table.

    python bench/bench_reliability.py [--quick] [--fuzz N] [--kills N] [--clients N --prompts N]
                                      [--soak N] [--seed S] [--parts fuzz,kill9,concurrent,soak]

Parts (each on its own server started by tests.server_helpers.ServerProcess, stub nodes added):
- fuzz: N seeded hostile POST /prompt bodies (tests/fuzz_cases.py, default 10,000), then a restart
  on the same user dir; jobs lost = accepted prompt ids missing from /history after it.
- kill9: N cycles of (start, queue a slow job + 2 quick ones, SIGKILL while the slow one runs);
  then one last start: every queued job must be in /history.
- concurrent: C client threads × P prompts each (default 50 × 200) of stub graphs, then every
  accepted job must reach /history.
- soak: N runs (default 500) of the tiny txt2img graph alternating two tiny checkpoints (written
  by ``main.py make-tiny-models``); RSS growth shows leaks, failed runs are counted in the notes.
``--quick`` scales everything down (1,000 / 2 / 10 × 20 / 20). RSS is the server's VmRSS from
/proc before and after each part. All loops are bounded in count and time.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.fuzz_cases import SEED, FuzzTally, fire_prompts, prompt_bodies  # noqa: E402
from tests.server_helpers import (ServerProcess, peak_rss_mb, stub_graph, tiny_sd_graph,  # noqa: E402
                                  wait_idle)

SOAK_MODELS = ("tiny_sd1.safetensors", "tiny_sd2v.safetensors")


@dataclass
class Row:
    part: str
    tried: int = 0
    structured: int = 0
    server_errors: int = 0
    crashes: int = 0
    lost: int = 0
    rss_growth: float | None = None
    notes: str = ""


def _rss(srv: ServerProcess) -> float:
    """The server's VmRSS once it stops moving: the start-up warm-up thread imports ~260 MB in
    steps over ~15 s, so it must hold within 2 MB for 5 readings a second apart (at most 90 s)."""
    readings: list[float] = []
    for _ in range(90):
        if not srv.alive():
            return float("nan")
        readings.append(peak_rss_mb(srv.proc.pid)[0])
        last = readings[-5:]
        if len(last) == 5 and max(last) - min(last) < 2:
            return last[-1]
        time.sleep(1)
    return readings[-1]


def _warm_up(srv: ServerProcess) -> float:
    """Run one stub job so first-use imports are not counted as growth; returns the settled RSS."""
    with httpx.Client(base_url=srv.url, timeout=60.0) as c:
        c.post("/prompt", json={"prompt": stub_graph(255, prefix="warm")})
        wait_idle(c, timeout=120)
    return _rss(srv)


def _known_ids(srv: ServerProcess) -> set[str] | None:
    """Every prompt id in /history or /queue, or None when the server cannot list them."""
    try:
        with httpx.Client(base_url=srv.url, timeout=120.0) as c:
            hist, queue = c.get("/history"), c.get("/queue")
            if hist.status_code != 200 or queue.status_code != 200:
                return None
            return set(hist.json()) | {i[1] for items in queue.json().values() for i in items}
    except (httpx.HTTPError, ValueError):
        return None


def _restart(srv: ServerProcess, row: Row) -> bool:
    """Graceful stop + start on the same dirs; a failed start counts as a crash."""
    srv.stop()
    try:
        srv.start()
        return True
    except RuntimeError as exc:
        row.crashes += 1
        row.notes += f" restart failed: {str(exc).splitlines()[-1][:120]}"
        return False


def _count_lost(srv: ServerProcess, ids: list[str], row: Row, drain_s: float) -> None:
    try:
        with httpx.Client(base_url=srv.url, timeout=60.0) as c:
            wait_idle(c, timeout=drain_s)
    except (TimeoutError, httpx.HTTPError) as exc:
        row.notes += f" not drained ({type(exc).__name__})"
    known = _known_ids(srv)
    if known is None:
        row.lost = len(ids)
        row.notes += " /history unreadable"
    else:
        row.lost = sum(1 for pid in ids if pid not in known)


def part_fuzz(base: Path, n: int, seed: int) -> Row:
    row = Row("fuzz /prompt")
    with ServerProcess(base / "fuzz") as srv:
        before = _warm_up(srv)
        t0 = time.perf_counter()
        tally: FuzzTally = fire_prompts(srv, prompt_bodies(seed, n))
        row.notes = f"{n / (time.perf_counter() - t0):.0f} cases/s, {len(tally.accepted)} accepted;"
        row.tried, row.structured = tally.tried, tally.structured
        row.server_errors, row.crashes = tally.server_errors, tally.crashes
        bad_shape = len(tally.problems) - tally.server_errors - tally.crashes
        row.notes += f" {bad_shape} other problems" if bad_shape else ""
        with httpx.Client(base_url=srv.url, timeout=60.0) as c:
            try:
                wait_idle(c, timeout=300)
            except (TimeoutError, httpx.HTTPError):
                row.notes += " queue not drained;"
        row.rss_growth = _rss(srv) - before
        if _restart(srv, row):
            _count_lost(srv, tally.accepted, row, 120)
        else:
            row.lost = len(tally.accepted)
    return row


def part_kill9(base: Path, cycles: int) -> Row:
    row = Row("kill -9 mid-job")
    ids: list[str] = []
    srv = ServerProcess(base / "kill9")
    try:
        for cycle in range(cycles):
            row.tried += 1
            try:
                srv.start()
            except RuntimeError:
                row.crashes += 1
                continue
            with httpx.Client(base_url=srv.url, timeout=30.0) as c:
                slow = c.post("/prompt", json={"prompt": stub_graph(cycle, seconds=30.0, steps=300)})
                quick = [c.post("/prompt", json={"prompt": stub_graph(100 + 2 * cycle + k)}) for k in range(2)]
                for r in [slow, *quick]:
                    row.server_errors += r.status_code >= 500
                    if r.status_code == 200:
                        ids.append(r.json()["prompt_id"])
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not c.get("/queue").json()["queue_running"]:
                    time.sleep(0.05)
            srv.kill()
        srv.start()
        _count_lost(srv, ids, row, 120)
        row.notes = f"{len(ids)} jobs queued over {cycles} crashes"
    except RuntimeError:
        row.crashes += 1
        row.lost = len(ids)
    finally:
        srv.stop()
    return row


def part_concurrent(base: Path, clients: int, prompts: int) -> Row:
    row = Row(f"{clients} clients x {prompts}")

    def client(k: int) -> tuple[list[str], int, int, int]:
        ids, structured, errors, dropped = [], 0, 0, 0
        with httpx.Client(base_url=srv.url, timeout=120.0) as c:
            for i in range(prompts):
                try:
                    r = c.post("/prompt", json={"prompt": stub_graph((k * prompts + i) % 256, prefix=f"c{k}"),
                                                "client_id": f"client-{k}"})
                except httpx.HTTPError:
                    dropped += 1
                    continue
                if r.status_code == 200:
                    ids.append(r.json()["prompt_id"])
                structured += 400 <= r.status_code < 500
                errors += r.status_code >= 500
        return ids, structured, errors, dropped

    with ServerProcess(base / "concurrent") as srv:
        before = _warm_up(srv)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(client, range(clients)))
        elapsed = time.perf_counter() - t0
        ids = [pid for r in results for pid in r[0]]
        row.tried = clients * prompts
        row.structured = sum(r[1] for r in results)
        row.server_errors = sum(r[2] for r in results)
        dropped = sum(r[3] for r in results)
        _count_lost(srv, ids, row, 900)
        row.crashes = 0 if srv.alive() else 1
        row.rss_growth = _rss(srv) - before
        row.notes = f"{row.tried / elapsed:.0f} POST/s" + (f", {dropped} unanswered" if dropped else "")
    return row


def _tiny_models(base: Path) -> Path:
    models = base / "tiny_models"
    subprocess.run([sys.executable, str(ROOT / "main.py"), "make-tiny-models", str(models)], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL, timeout=600)
    return models


def part_soak(base: Path, runs: int) -> Row:
    row = Row(f"soak {'/'.join(m.split('.')[0] for m in SOAK_MODELS)}")
    with ServerProcess(base / "soak", models_dir=_tiny_models(base)) as srv, \
            httpx.Client(base_url=srv.url, timeout=120.0) as c:
        for warm in SOAK_MODELS:  # both models loaded before the first RSS reading
            c.post("/prompt", json={"prompt": tiny_sd_graph(0, ckpt=warm)})
        wait_idle(c, timeout=300)
        before, ids = _rss(srv), []
        for i in range(runs):
            row.tried += 1
            r = c.post("/prompt", json={"prompt": tiny_sd_graph(i + 1, ckpt=SOAK_MODELS[i % 2])})
            row.structured += 400 <= r.status_code < 500
            row.server_errors += r.status_code >= 500
            if r.status_code == 200:
                ids.append(r.json()["prompt_id"])
            if i % 20 == 19:  # keep the queue short so RSS reflects steady state, not backlog
                wait_idle(c, timeout=600)
        _count_lost(srv, ids, row, 1800)
        row.rss_growth = _rss(srv) - before
        hist = c.get("/history").json()
        failed = sum(1 for pid in ids if pid in hist and hist[pid]["status"]["status_str"] != "success")
        row.crashes = 0 if srv.alive() else 1
        row.notes = f"{failed} runs failed" if failed else "all runs succeeded"
    return row


def print_table(rows: list[Row]) -> None:
    head = ("part", "tried", "4xx structured", "5xx", "crashes", "jobs lost", "RSS growth MB", "notes")
    cells = [head] + [(r.part, str(r.tried), str(r.structured), str(r.server_errors), str(r.crashes),
                       str(r.lost), "-" if r.rss_growth is None else f"{r.rss_growth:+.0f}", r.notes.strip())
                      for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    for k, row in enumerate(cells):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if k == 0:
            print("-+-".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1,000 fuzz cases, 2 kills, 10x20 clients, 20 soak runs")
    p.add_argument("--fuzz", type=int)
    p.add_argument("--kills", type=int)
    p.add_argument("--clients", type=int)
    p.add_argument("--prompts", type=int)
    p.add_argument("--soak", type=int)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--parts", default="fuzz,kill9,concurrent,soak")
    a = p.parse_args(argv)
    full = {"fuzz": 10_000, "kills": 10, "clients": 50, "prompts": 200, "soak": 500}
    quick = {"fuzz": 1000, "kills": 2, "clients": 10, "prompts": 20, "soak": 20}
    n = {k: getattr(a, k) if getattr(a, k) is not None else (quick if a.quick else full)[k] for k in full}
    parts = {"fuzz": lambda b: part_fuzz(b, n["fuzz"], a.seed), "kill9": lambda b: part_kill9(b, n["kills"]),
             "concurrent": lambda b: part_concurrent(b, n["clients"], n["prompts"]),
             "soak": lambda b: part_soak(b, n["soak"])}
    rows = []
    with tempfile.TemporaryDirectory(prefix="lg-bench-rel-") as tmp:
        for name in a.parts.split(","):
            t0 = time.perf_counter()
            try:
                row = parts[name.strip()](Path(tmp))
            except (RuntimeError, TimeoutError, httpx.HTTPError, subprocess.SubprocessError) as exc:
                row = Row(name, notes=f"aborted: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}")
            row.notes += f" ({time.perf_counter() - t0:.0f} s)"
            rows.append(row)
            print(f"done: {name}", file=sys.stderr, flush=True)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
