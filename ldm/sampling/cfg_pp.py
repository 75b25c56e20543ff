"""CFG++ samplers (Chung et al. 2024): step along the unguided (uncond) prediction and put the
guided x0 back, so high guidance does not push the trajectory off the data manifold. The denoiser
hands out the uncond x0 through `capture` (steps.guided_and_uncond)."""
from __future__ import annotations

import torch
from torch import Tensor

from ldm.sampling.steps import (Callback, Denoiser, NoiseSampler, get_ancestral_step, guided_and_uncond, lam,
                                report, setup, to_d)


@torch.no_grad()
def sample_euler_cfg_pp(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                        callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                        seed: int | None = None) -> Tensor:
    """Euler with CFG++: renoise the guided x0 along the uncond direction (Chung et al. 2024)."""
    return sample_euler_ancestral_cfg_pp(denoiser, x, sigmas, extra_args=extra_args, callback=callback,
                                         noise_sampler=noise_sampler, seed=seed, eta=0.0, s_noise=0.0)


@torch.no_grad()
def sample_euler_ancestral_cfg_pp(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                                  callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                                  seed: int | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral Euler with CFG++ (Chung et al. 2024), DDIM-style in α/σ (α = σ·e^{λ} ≈ 1 here)."""
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised, uncond = guided_and_uncond(denoiser, x, sigmas[i] * s_in, extra)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        alpha_s = sigmas[i] * lam(sigmas[i]).exp()
        alpha_t = sigmas[i + 1] * lam(sigmas[i + 1]).exp()
        d = to_d(x, sigmas[i], alpha_s * uncond)
        down, up = get_ancestral_step(sigmas[i] / alpha_s, sigmas[i + 1] / alpha_t, eta)
        x = alpha_t * denoised + (alpha_t * down) * d
        if eta > 0 and s_noise > 0:
            x = x + alpha_t * ns(sigmas[i], sigmas[i + 1]) * s_noise * up
    return x


@torch.no_grad()
def sample_dpmpp_2m_cfg_pp(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                           callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                           seed: int | None = None) -> Tensor:
    """DPM-Solver++(2M) with CFG++: the multistep correction uses the uncond history."""
    extra, _, s_in = setup(x, extra_args, noise_sampler, seed)
    old_uncond = None
    for i in range(len(sigmas) - 1):
        denoised, uncond = guided_and_uncond(denoiser, x, sigmas[i] * s_in, extra)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = lam(sigmas[i]), lam(sigmas[i + 1])
        h = t_next - t
        mix = -torch.exp(-h) * uncond
        if old_uncond is not None and sigmas[i + 1] != 0:
            r = (t - lam(sigmas[i - 1])) / h
            mix = mix - torch.expm1(-h) * (1 / (2 * r)) * (denoised - old_uncond)
        x = denoised + mix + torch.exp(-h) * x
        old_uncond = uncond
    return x


@torch.no_grad()
def sample_dpmpp_2s_ancestral_cfg_pp(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                                     callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                                     seed: int | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """DPM-Solver++(2S) ancestral stepping along the uncond prediction (the second stage uses the
    midpoint's uncond), the guidance vector guided − uncond from the step's start added back after
    every step (CFG++)."""
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised, uncond = guided_and_uncond(denoiser, x, sigmas[i] * s_in, extra)
        guidance = denoised - uncond
        down, up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if down == 0:
            x = x + to_d(x, sigmas[i], uncond) * (down - sigmas[i])
        else:
            t, t_next = lam(sigmas[i]), lam(down)
            h = t_next - t
            s = t + 0.5 * h
            x_2 = (s.neg().exp() / t.neg().exp()) * x - (-h * 0.5).expm1() * uncond
            _, uncond_2 = guided_and_uncond(denoiser, x_2, s.neg().exp() * s_in, extra)
            x = (t_next.neg().exp() / t.neg().exp()) * x - (-h).expm1() * uncond_2
        if sigmas[i + 1] > 0:
            x = x + ns(sigmas[i], sigmas[i + 1]) * s_noise * up
        x = x + guidance
    return x
