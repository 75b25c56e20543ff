"""The DPM-Solver++ family (Lu et al. 2022, arXiv 2211.01095): 2S ancestral, SDE, 2M, 2M SDE
(midpoint/heun) and 3M SDE, written in ComfyUI's α/λ form (α = σ·e^{λ}, 1 up to rounding for eps/v
models) so the float operations agree; SDE noise from a Brownian tree seeded with the KSampler seed;
the step to σ = 0 returns the denoised estimate."""
from __future__ import annotations

import torch
from torch import Tensor

from ldm.sampling.steps import (Callback, Denoiser, NoiseSampler, get_ancestral_step, lam, report, sde_setup,
                                setup, sigma_at, to_d)


@torch.no_grad()
def sample_dpmpp_2s_ancestral(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                              callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                              seed: int | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral DPM-Solver++(2S), single-step 2nd order (Lu et al. 2022b)."""
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        denoised = denoiser(x, sigma * s_in, **extra)
        down, up = get_ancestral_step(sigma, sigmas[i + 1], eta)
        report(callback, x, i, sigma, sigma, denoised)
        if down == 0:
            x = x + to_d(x, sigma, denoised) * (down - sigma)
        else:
            t, t_next = lam(sigma), lam(down)
            h = t_next - t
            s = t + 0.5 * h
            x_2 = (sigma_at(s) / sigma_at(t)) * x - (-0.5 * h).expm1() * denoised
            denoised_2 = denoiser(x_2, sigma_at(s) * s_in, **extra)
            x = (sigma_at(t_next) / sigma_at(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + ns(sigma, sigmas[i + 1]) * s_noise * up
    return x


@torch.no_grad()
def sample_dpmpp_sde(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                     callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                     seed: int | None = None, eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5) -> Tensor:
    """DPM-Solver++ (stochastic, 2 stages per step) with Brownian-tree noise (k-diffusion).

    Written with α_s = σ_s·e^{λ_s} (1 up to rounding for eps/v models) as ComfyUI does, so the
    float operations are the same; the step to σ = 0 returns the denoised estimate.
    """
    if len(sigmas) <= 1:
        return x
    extra, ns, s_in = sde_setup(x, sigmas, extra_args, noise_sampler, seed)
    fac = 1 / (2 * r)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, **extra)
        report(callback, x, i, sigma, sigma, denoised)
        if sigma_next == 0:
            x = denoised
            continue
        lam_s, lam_t = lam(sigma), lam(sigma_next)
        h = lam_t - lam_s
        lam_s1 = lam_s + r * h
        sigma_s1 = lam_s1.neg().exp()
        alpha_s = sigma * lam_s.exp()
        alpha_s1 = sigma_s1 * lam_s1.exp()
        alpha_t = sigma_next * lam_t.exp()
        # stage 1: ancestral step to λ_{s1}
        sd, su = get_ancestral_step(lam_s.neg().exp(), lam_s1.neg().exp(), eta)
        h_ = sd.log().neg() - lam_s
        x_2 = (alpha_s1 / alpha_s) * (-h_).exp() * x - alpha_s1 * (-h_).expm1() * denoised
        if eta > 0 and s_noise > 0:
            x_2 = x_2 + alpha_s1 * ns(sigma, sigma_s1) * s_noise * su
        denoised_2 = denoiser(x_2, sigma_s1 * s_in, **extra)
        # stage 2: ancestral step to λ_t with the combined estimate
        sd, su = get_ancestral_step(lam_s.neg().exp(), lam_t.neg().exp(), eta)
        h_ = sd.log().neg() - lam_s
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (alpha_t / alpha_s) * (-h_).exp() * x - alpha_t * (-h_).expm1() * denoised_d
        if eta > 0 and s_noise > 0:
            x = x + alpha_t * ns(sigma, sigma_next) * s_noise * su
    return x


@torch.no_grad()
def sample_dpmpp_2m(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                    callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                    seed: int | None = None) -> Tensor:
    """DPM-Solver++(2M): 2nd-order multistep in data prediction (Lu et al. 2022b)."""
    extra, _, s_in = setup(x, extra_args, noise_sampler, seed)
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = lam(sigmas[i]), lam(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            denoised_d = denoised
        else:
            r = (t - lam(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (sigma_at(t_next) / sigma_at(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                        callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                        seed: int | None = None, eta: float = 1.0, s_noise: float = 1.0,
                        solver_type: str = "midpoint") -> Tensor:
    """DPM-Solver++(2M) SDE (Lu et al. 2022b) with Brownian-tree noise; midpoint (default) or heun."""
    if len(sigmas) <= 1:
        return x
    if solver_type not in ("heun", "midpoint"):
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    extra, ns, s_in = sde_setup(x, sigmas, extra_args, noise_sampler, seed)
    old_denoised, h, h_last = None, None, None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, **extra)
        report(callback, x, i, sigma, sigma, denoised)
        if sigma_next == 0:
            x = denoised
        else:
            lam_s, lam_t = lam(sigma), lam(sigma_next)
            h = lam_t - lam_s
            h_eta = h * (eta + 1)
            alpha_t = sigma_next * lam_t.exp()
            x = sigma_next / sigma * (-h * eta).exp() * x + alpha_t * (-h_eta).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + alpha_t * ((-h_eta).expm1().neg() / (-h_eta) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * alpha_t * (-h_eta).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta > 0 and s_noise > 0:
                x = x + ns(sigma, sigma_next) * sigma_next * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        old_denoised, h_last = denoised, h
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde_heun(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                             callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                             seed: int | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """DPM-Solver++(2M) SDE with the Heun-type correction term."""
    return sample_dpmpp_2m_sde(denoiser, x, sigmas, extra_args=extra_args, callback=callback,
                               noise_sampler=noise_sampler, seed=seed, eta=eta, s_noise=s_noise, solver_type="heun")


@torch.no_grad()
def sample_dpmpp_3m_sde(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                        callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                        seed: int | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """DPM-Solver++(3M) SDE: 3rd-order multistep exponential integrator with Brownian-tree noise."""
    if len(sigmas) <= 1:
        return x
    extra, ns, s_in = sde_setup(x, sigmas, extra_args, noise_sampler, seed)
    den_1 = den_2 = None
    h = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, **extra)
        report(callback, x, i, sigma, sigma, denoised)
        if sigma_next == 0:
            x = denoised
        else:
            lam_s, lam_t = lam(sigma), lam(sigma_next)
            h = lam_t - lam_s
            h_eta = h * (eta + 1)
            alpha_t = sigma_next * lam_t.exp()
            x = sigma_next / sigma * (-h * eta).exp() * x + alpha_t * (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0, d1_1 = (denoised - den_1) / r0, (den_1 - den_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + (alpha_t * phi_2) * d1 - (alpha_t * phi_3) * d2
            elif h_1 is not None:
                d = (denoised - den_1) / (h_1 / h)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + (alpha_t * phi_2) * d
            if eta > 0 and s_noise > 0:
                x = x + ns(sigma, sigma_next) * sigma_next * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        den_1, den_2 = denoised, den_1
        h_1, h_2 = h, h_1
    return x
