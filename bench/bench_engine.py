"""Engine overhead: validation, first run and cache-hit resubmit of a large graph of trivial nodes.

    python bench/bench_engine.py [--nodes 1000] [--repeats 5]

Prints one table (medians over the repeats; each repeat uses a fresh executor for the first run).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.executor import Executor  # noqa: E402
from engine.graph import validate  # noqa: E402
from engine.paths import Paths  # noqa: E402
from tests.stub_nodes import make_registry  # noqa: E402


def make_graph(n: int) -> dict:
    """A wide-and-deep DAG: StubAdd nodes each fed by one or two earlier nodes, outputs every 50 nodes."""
    prompt: dict = {"0": {"class_type": "StubInt", "inputs": {"value": 1}}}
    for i in range(1, n - n // 50):
        a = ["%d" % (i - 1), 0]
        b = ["%d" % (i // 2), 0] if i % 3 == 0 else i % 7
        prompt[str(i)] = {"class_type": "StubAdd", "inputs": {"a": a, "b": b}}
    last = n - n // 50
    for k, i in enumerate(range(last, n)):
        prompt[str(i)] = {"class_type": "StubOutput", "inputs": {"value": [str(min(k * 50 + 49, last - 1)), 0]}}
    return prompt


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    reg, prompt = make_registry(), make_graph(args.nodes)
    with tempfile.TemporaryDirectory() as tmp:
        paths = Paths(f"{tmp}/m", f"{tmp}/i", f"{tmp}/o", f"{tmp}/t", f"{tmp}/u")
        val_t, first_t, hit_t = [], [], []
        for _ in range(args.repeats):  # interleaved, medians reported
            val_t.append(_time(lambda: validate(prompt, reg, paths)))
            ex = Executor(reg, paths)
            res = ex.execute(prompt)
            assert res.status == "success" and len(res.ran) == len(prompt), res.error
            ex = Executor(reg, paths)
            first_t.append(_time(lambda: ex.execute(prompt)))
            hit_t.append(_time(lambda: ex.execute(prompt)))
            assert ex.execute(prompt).ran == []
    n = len(prompt)
    med = statistics.median
    print(f"{'measure (' + str(n) + ' nodes)':<34} {'median':>10} {'per node':>10}")
    print(f"{'validate':<34} {med(val_t) * 1e3:>8.1f}ms {med(val_t) / n * 1e6:>8.1f}us")
    print(f"{'execute, first run (incl. validate)':<34} {med(first_t) * 1e3:>8.1f}ms {med(first_t) / n * 1e6:>8.1f}us")
    print(f"{'execute, cache-hit resubmit':<34} {med(hit_t) * 1e3:>8.1f}ms {med(hit_t) / n * 1e6:>8.1f}us")


if __name__ == "__main__":
    main()
