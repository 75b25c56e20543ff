"""Jump-to-x0 samplers: DDPM's posterior step (Ho et al. 2020) and LCM (Luo et al. 2023)."""
from __future__ import annotations

import torch
from torch import Tensor

from ldm.sampling.steps import Callback, Denoiser, NoiseSampler, report, setup


@torch.no_grad()
def sample_ddpm(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                seed: int | None = None) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, eq. 11) between arbitrary sigmas, in VP space."""
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        sigma, sigma_prev = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, **extra)
        report(callback, x, i, sigma, sigma, denoised)
        eps = (x - denoised) / sigma
        a_cum = 1 / (sigma * sigma + 1)
        a_cum_prev = 1 / (sigma_prev * sigma_prev + 1)
        alpha = a_cum / a_cum_prev
        x_vp = x / (1.0 + sigma ** 2) ** 0.5
        mu = (1.0 / alpha).sqrt() * (x_vp - (1 - alpha) * eps / (1 - a_cum).sqrt())
        if sigma_prev > 0:
            mu = mu + ((1 - alpha) * (1.0 - a_cum_prev) / (1.0 - a_cum)).sqrt() * ns(sigma, sigma_prev)
            mu = mu * (1.0 + sigma_prev ** 2) ** 0.5
        x = mu
    return x


@torch.no_grad()
def sample_lcm(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
               callback: Callback = None, noise_sampler: NoiseSampler | None = None,
               seed: int | None = None) -> Tensor:
    """Latent Consistency Model sampling: jump to x0, re-noise to the next sigma (Luo et al. 2023)."""
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + ns(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
    return x
