"""Laplacian-pyramid sampling on the demo model: UNet FLOPs against sampling at full size, and what it
does to quality, measured with the demo model's classifier on its held-out prompts (as eval_demo).

    python bench/bench_pyramid.py [--limit N] [--steps 20] [--levels 2] [--switch 0.5]

Three runs per prompt (same seeds): full size for `--steps` steps; the pyramid for `--steps` steps;
full size with the step count whose FLOPs equal the pyramid's (accuracy at equal FLOPs). FLOPs of one
CFG step at each latent size come from torch's FlopCounterMode; a pyramid run's total is the sum over
its stages (including the steps re-run above the switch sigma).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.eval_demo import DEFAULT_CKPT, score, summarise  # noqa: E402
from tools import demo_classifier as dc  # noqa: E402
from tools.demo_data import IMAGE_SIZE, held_out_scenes  # noqa: E402


def _run(model, clip, vae, prompts, size, steps, seed0, pyramid=None):
    from ldm.pyramid import flops_per_step, sample_pyramid

    neg = [[clip.encode("")[0], {}]]
    f, images, flops = vae.downscale_ratio, [], []
    for i, prompt in enumerate(prompts):
        cond = clip.encode(prompt)[0]
        latent = torch.zeros(1, model.config.latent_channels, size // f, size // f)
        levels, switches = pyramid or (1, [])
        out, stages = sample_pyramid(model, latent=latent, positive=[[cond, {}]], negative=neg, cfg=5.0,
                                     sampler_name="euler", scheduler="normal", steps=steps, seed=seed0 + i,
                                     levels=levels, switches=switches)
        flops.append(sum(s["steps"] * flops_per_step(model, *s["size"], cond) for s in stages))
        px = vae.decode(out)[0].numpy()
        images.append(np.clip(np.rint(px * 255.0), 0, 255).astype(np.uint8))
    return np.stack(images), statistics.mean(flops)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CKPT)
    p.add_argument("--limit", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--switch", default="0.5", help="comma-separated switch points")
    p.add_argument("--classifier-cache", type=Path, default=ROOT / "temp" / "demo_classifier.pt")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from ldm.checkpoint import load_checkpoint, read_metadata

    classifier = dc.load_or_train(args.classifier_cache)
    scenes = held_out_scenes()[:args.limit]
    prompts = [s.caption() for s in scenes]
    model, clip, vae = load_checkpoint(args.checkpoint)
    size = int(read_metadata(args.checkpoint).get("latentgraph.native_resolution", IMAGE_SIZE))
    pyr = (args.levels, [float(v) for v in args.switch.split(",")])
    rows = []
    t0 = time.monotonic()
    full_img, full_flops = _run(model, clip, vae, prompts, size, args.steps, 0)
    pyr_img, pyr_flops = _run(model, clip, vae, prompts, size, args.steps, 0, pyr)
    eq_steps = max(1, round(args.steps * pyr_flops / full_flops))
    eq_img, eq_flops = _run(model, clip, vae, prompts, size, eq_steps, 0)
    for name, img, fl in ((f"full size, {args.steps} steps", full_img, full_flops),
                          (f"pyramid {args.levels} levels @ {args.switch}, {args.steps} steps", pyr_img, pyr_flops),
                          (f"full size, {eq_steps} steps (equal FLOPs)", eq_img, eq_flops)):
        acc = summarise(score(img, scenes, classifier))
        rows.append((name, fl / 1e9, fl / full_flops, acc))
    print(f"demo model, {len(prompts)} held-out prompts, {size}² px, euler/normal, cfg 5 "
          f"({time.monotonic() - t0:.0f} s)\n")
    keys = list(rows[0][3])
    print(f"{'run':<46}{'GFLOP':>8}{'vs full':>9}" + "".join(f"{k[:6]:>8}" for k in keys) + f"{'mean':>8}")
    for name, gf, ratio, acc in rows:
        print(f"{name:<46}{gf:>8.2f}{ratio:>9.2f}" + "".join(f"{acc[k]:>8.2f}" for k in keys)
              + f"{statistics.mean(acc.values()):>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
