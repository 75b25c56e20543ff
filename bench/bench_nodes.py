"""Wall time of the default txt2img workflow (workflows/api/default.json) on the tiny SD1 checkpoint.

For each size: "first run" (a fresh Executor: empty output and model caches, so the checkpoint is
loaded), "seed change" (same Executor, new seed: sampler + decode + save rerun, loader and text
encoders cached) and "identical resubmit" (everything cached). Runs are interleaved across sizes and
repeated; the table shows medians. Usage: python bench/bench_nodes.py [--repeats 3] [--steps 20]
(run under tcmalloc for steadier numbers, see ../shared/TESTING.md).
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

from engine.executor import Executor  # noqa: E402
from engine.paths import Paths  # noqa: E402
from ldm.tiny import make_tiny_models  # noqa: E402
from nodes.plugins import load_all  # noqa: E402
from nodes.registry import REGISTRY  # noqa: E402

SIZES = (64, 256)
CASES = ("first run", "seed change", "identical resubmit")


def default_prompt(size: int, steps: int, seed: int) -> dict:
    prompt = json.loads((ROOT / "workflows" / "api" / "default.json").read_text())
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "CheckpointLoaderSimple":
            inputs["ckpt_name"] = "tiny_sd1.safetensors"
        elif node["class_type"] == "EmptyLatentImage":
            inputs["width"] = inputs["height"] = size
        elif node["class_type"] == "KSampler":
            inputs["steps"], inputs["seed"] = steps, seed
    return prompt


def _timed(ex: Executor, prompt: dict, pid: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    res = ex.execute(prompt, prompt_id=pid)
    dt = time.perf_counter() - t0
    if res.status != "success":
        raise SystemExit(f"{pid}: {res.error}")
    return dt, len(res.ran)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch intra-op threads (0 = torch's default). On a shared 2-core VM, 1 thread "
                         "made the tiny UNet forward ~8x faster than 2 (spinning threads contend).")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    load_all()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        make_tiny_models(base / "models")
        paths = Paths(base / "models", base / "input", base / "output", base / "temp", base / "user")
        paths.ensure_dirs()
        times = {(s, c): [] for s in SIZES for c in CASES}
        ran = {}
        warm = Executor(REGISTRY, paths)  # import/first-call costs are not part of any case
        _timed(warm, default_prompt(64, 2, 0), "warmup")
        for rep in range(args.repeats):
            for size in SIZES:
                ex = Executor(REGISTRY, paths)
                runs = [("first run", default_prompt(size, args.steps, 42)),
                        ("seed change", default_prompt(size, args.steps, 43 + rep)),
                        ("identical resubmit", default_prompt(size, args.steps, 43 + rep))]
                for case, prompt in runs:
                    dt, n = _timed(ex, prompt, f"{rep}-{size}-{case}")
                    times[(size, case)].append(dt)
                    ran[(size, case)] = n
    import torch

    print(f"default txt2img, tiny_sd1, euler/normal {args.steps} steps, cfg 5; "
          f"median of {args.repeats} interleaved runs; torch threads {torch.get_num_threads()}")
    print(f"{'case':<20} {'size':>6} {'median s':>9} {'min s':>8} {'max s':>8} {'nodes run':>10}")
    for size in SIZES:
        for case in CASES:
            v = times[(size, case)]
            print(f"{case:<20} {size:>4}px {statistics.median(v):>9.3f} {min(v):>8.3f} {max(v):>8.3f} "
                  f"{ran[(size, case)]:>10}")


if __name__ == "__main__":
    main()
