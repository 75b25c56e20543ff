"""Laplacian-pyramid sampling (LaDM-style, training-free): the coarse levels first, then the detail.

The latent is sampled at 1/2^k of its size for the first steps (a UNet step there costs about 4^-k
of a full-size one), and at each switch point moved one or more pyramid levels up:

- signal: the denoised estimate x̂0 at the switch sigma σ, upsampled nearest (block-constant), so
  each 2^k×2^k block keeps the coarse value;
- noise: the coarse noise n = x − x̂0 has per-cell std σ. The block means of i.i.d. noise of std σ'
  have std σ'/2^k, so the full-size latent whose block means carry exactly the coarse level's
  signal-to-noise ratio sits at σ' = 2^k·σ: its noise is up(n) plus fresh noise with zero block
  means, σ'·(ε − up(blockmean ε)) — which makes it, given the block means, distributed exactly as
  i.i.d. N(0, σ'²) noise;
- the sampler resumes at σ' (clamped to the schedule's maximum) and continues down the same
  schedule from there.
`flops_per_step` counts a UNet call's floating-point operations with torch's FlopCounterMode, so a
benchmark can compare the pyramid's total against sampling at full size.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ldm.guidance import CFGDenoiser
from ldm.sample import ksampler_sigmas, prepare_noise, sample_sigmas


def block_mean(x: Tensor, k: int) -> Tensor:
    """Average over 2^k×2^k blocks (the Laplacian pyramid's downsampling)."""
    return F.avg_pool2d(x, 2 ** k) if k > 0 else x


def up(x: Tensor, k: int) -> Tensor:
    """Nearest upsampling by 2^k (block-constant)."""
    return F.interpolate(x, scale_factor=2 ** k, mode="nearest") if k > 0 else x


def lift(x0: Tensor, noisy: Tensor, sigma: float, k: int, generator: torch.Generator) -> tuple[Tensor, Tensor, float]:
    """(signal, unit noise, σ') of the finer level: see the module doc. x0/noisy in model space."""
    sigma_up = sigma * (2 ** k)
    eps = torch.randn(up(x0, k).shape, generator=generator, dtype=torch.float32)
    detail = eps - up(block_mean(eps, k), k)  # zero block means
    noise = up(noisy - x0, k) + sigma_up * detail
    return up(x0, k), noise / sigma_up, sigma_up


def _resume_sigmas(sigmas: Tensor, start: float) -> Tensor:
    """The schedule's part below `start`, headed by `start` itself (a finer level resumes at a
    higher sigma than the coarse one stopped at, so it re-runs the steps in between)."""
    tail = sigmas[sigmas < start]
    return torch.cat([torch.tensor([start], dtype=sigmas.dtype), tail])


def switch_steps(steps: int, switches: list[float]) -> list[int]:
    """Step indices where the level changes (fractions of the step count, sorted, inside 1..steps-1)."""
    return sorted({min(steps - 1, max(1, round(f * steps))) for f in switches})


def sample_pyramid(model: Any, *, latent: Tensor, positive: list, negative: list, cfg: float, sampler_name: str,
                   scheduler: str, steps: int, seed: int, levels: int, switches: list[float],
                   resolve: Callable[[list, int, int], list] = lambda c, h, w: c,
                   callback: Callable[[int, int, Tensor], Any] | None = None) -> tuple[Tensor, list[dict]]:
    """(raw latent, one record per stage: level, size, steps, first sigma). `levels` = number of
    pyramid levels (1 = plain sampling); the coarsest runs at 1/2^(levels-1) of the latent size.
    `resolve(conds, h, w)` adapts area conditioning to each stage's latent size."""
    b, c, h, w = latent.shape
    levels = max(1, min(levels, 1 + min(h, w).bit_length() - 1))
    cuts = switch_steps(steps, switches)[: levels - 1]
    levels = len(cuts) + 1
    sigmas = ksampler_sigmas(model.sampling, scheduler, sampler_name, steps)
    fmt, gen = model.latent_format, torch.Generator().manual_seed(int(seed) + 1)
    k = levels - 1
    x_raw = block_mean(latent.float(), k)
    noise = prepare_noise(x_raw, seed)
    bounds, stages, start = cuts + [len(sigmas) - 1], [], 0
    stage_sigmas = sigmas[: bounds[0] + 1]
    for i, end in enumerate(bounds):
        hh, ww = x_raw.shape[-2:]
        pos, neg = resolve(positive, hh, ww), resolve(negative, hh, ww)
        stages.append({"level": k, "size": (hh, ww), "steps": len(stage_sigmas) - 1, "sigma": float(stage_sigmas[0])})
        out = sample_sigmas(model, lambda li, m: CFGDenoiser(model, pos, neg, cfg, latent_image=li, denoise_mask=m),
                            noise=noise, latent=x_raw, sigmas=stage_sigmas, sampler_name=sampler_name, seed=seed + i,
                            callback=_offset(callback, start, steps))
        if i == len(bounds) - 1:
            return out, stages
        sigma = float(stage_sigmas[-1])
        noisy = fmt.process_in(out)
        x0 = CFGDenoiser(model, pos, neg, cfg)(noisy, torch.full((b,), sigma))
        step_up = k - (levels - 2 - i)  # one level per switch, the last switch lands on full size
        k -= step_up
        signal, unit, sigma_up = lift(x0, noisy, sigma, step_up, gen)
        sigma_up = min(sigma_up, float(model.sampling.sigma_max))
        x_raw, noise = fmt.process_out(signal), unit
        start = end
        stage_sigmas = _resume_sigmas(sigmas[: bounds[i + 1] + 1], sigma_up)
    raise AssertionError("unreachable")


def _offset(callback, start: int, total: int):
    if callback is None:
        return None
    return lambda step, _n, x0: callback(min(total - 1, start + step), total, x0)


def flops_per_step(model: Any, h: int, w: int, context: Tensor, cfg_batch: int = 2) -> int:
    """FLOPs of one UNet call on a [cfg_batch, C, h, w] latent (torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(cfg_batch, model.config.latent_channels, h, w)
    ctx = context.expand(cfg_batch, -1, -1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.apply_model(x, torch.ones(cfg_batch), context=ctx)
    return int(counter.get_total_flops())
