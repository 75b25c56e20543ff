"""Sampler accuracy vs cost on the exact Gaussian denoiser, one table.

For data ~ N(mu, s²I) the ideal denoiser and the probability-flow ODE solution are known, so each
deterministic sampler's error at 10/20/40 Karras steps and its number of denoiser evaluations
(NFE) can be printed side by side; stochastic samplers show the std of their output (target s).
Run: `python bench/bench_samplers.py` (a few seconds; no model weights needed).
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ldm.sampling import SAMPLER_NAMES, SAMPLER_TABLE, get_sampler  # noqa: E402
from ldm.schedules import karras_sigmas  # noqa: E402

MU, S = 0.5, 0.7
SMIN, SMAX = 0.0292, 14.6146
STOCHASTIC = {spec.name for spec in SAMPLER_TABLE if spec.stochastic}
ENDS_EARLY = {"dpm_fast": "last", "dpm_adaptive": "last", "uni_pc": 1e-3, "uni_pc_bh2": 1e-3}


class Counted:
    """The exact denoiser of N(MU, S²) data, counting its evaluations."""

    def __init__(self) -> None:
        self.nfe = 0

    def __call__(self, x, sigma, **_):
        self.nfe += 1
        sg = sigma.reshape(-1, 1, 1, 1).to(x.dtype)
        return (S * S * x + sg * sg * MU) / (S * S + sg * sg)


def error(name: str, steps: int) -> tuple[float, int, float]:
    sig = karras_sigmas(steps, SMIN, SMAX).double()
    x_t = MU + torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * math.sqrt(
        S * S + SMAX ** 2)
    den = Counted()
    t0 = time.perf_counter()
    out = get_sampler(name)(den, x_t.clone(), sig, seed=7)
    elapsed = time.perf_counter() - t0
    if name in STOCHASTIC:
        return float(out.std()), den.nfe, elapsed
    end = ENDS_EARLY.get(name, 0.0)
    end = float(sig[-2]) if end == "last" else end
    target = MU + (x_t - MU) * math.sqrt((S * S + end ** 2) / (S * S + SMAX ** 2))
    return float((out - target).abs().max()), den.nfe, elapsed


def main() -> None:
    print(f"{'sampler':26s} {'err@10':>9s} {'err@20':>9s} {'err@40':>9s} {'NFE@20':>7s} {'ms@20':>7s}")
    for name in SAMPLER_NAMES:
        cols, nfe20, times = [], 0, []
        for steps in (10, 20, 40):
            val, nfe, _ = error(name, steps)
            cols.append(val)
            if steps == 20:
                nfe20 = nfe
                times = [error(name, 20)[2] for _ in range(3)]
        kind = " (std, target 0.7)" if name in STOCHASTIC else ""
        print(f"{name:26s} {cols[0]:9.2e} {cols[1]:9.2e} {cols[2]:9.2e} {nfe20:7d} "
              f"{statistics.median(times) * 1000:7.1f}{kind}")


if __name__ == "__main__":
    main()
