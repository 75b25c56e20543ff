"""Multistep samplers of the Adams–Bashforth kind: iPNDM, iPNDM-v, DEIS, RES multistep and
gradient estimation.

iPNDM-v uses the closed-form variable-step Adams–Bashforth weights; DEIS integrates dσ/dτ times the
Lagrange basis over each step in VP-SDE time with an n-point sum (as ComfyUI's port of diff-solvers
does, so the weights agree).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ldm.sampling.steps import (Callback, Denoiser, NoiseSampler, get_ancestral_step, guided_and_uncond, lam,
                                report, setup, sigma_at, to_d)


@torch.no_grad()
def sample_ipndm(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                 callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                 seed: int | None = None, max_order: int = 4) -> Tensor:
    """Improved PNDM (Zhang & Chen 2022): fixed-step Adams–Bashforth up to order 4 on dx/dσ;
    the step to σ = 0 returns the denoised estimate."""
    extra, _, s_in = setup(x, extra_args, noise_sampler, seed)
    hist: list[Tensor] = []  # previous slopes, oldest first (at most max_order − 1)
    for i in range(len(sigmas) - 1):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, t_cur * s_in, **extra)
        report(callback, x, i, t_cur, t_cur, denoised)
        d = (x - denoised) / t_cur
        x_next = denoised if t_next == 0 else x + (t_next - t_cur) * _adams_bashforth(d, hist)
        hist = (hist + [d])[-(max_order - 1):] if max_order > 1 else []
        x = x_next
    return x


def _adams_bashforth(d: Tensor, hist: list[Tensor]) -> Tensor:
    """Fixed-step Adams–Bashforth slope of order min(len(hist) + 1, 4) from the newest slope d and
    the previous ones (oldest first): the combination PNDM/PLMS and iPNDM apply to eps."""
    if not hist:
        return d
    if len(hist) == 1:
        return (3 * d - hist[-1]) / 2
    if len(hist) == 2:
        return (23 * d - 16 * hist[-1] + 5 * hist[-2]) / 12
    return (55 * d - 59 * hist[-1] + 37 * hist[-2] - 9 * hist[-3]) / 24


@torch.no_grad()
def sample_plms(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                seed: int | None = None) -> Tensor:
    """Pseudo linear multistep (PLMS; Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models",
    the variant of the Latent Diffusion code): DDIM steps driven by an Adams–Bashforth combination
    of the last four eps predictions, started by a pseudo improved Euler (Heun) step.

    With x = x_vp·√(1+σ²) a DDIM step is x + eps·(σ_next − σ) and eps = (x − D)/σ is dx/dσ, so
    PLMS is Adams–Bashforth on dx/dσ with the uniform-step weights. As in the original, the
    history holds only the eps at the start of each step (not the Heun corrector's), and the step
    to σ = 0 is a PLMS step too (DDIM with ᾱ_prev = 1)."""
    extra, _, s_in = setup(x, extra_args, noise_sampler, seed)
    hist: list[Tensor] = []  # eps at the previous steps, oldest first (at most 3)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, **extra)
        report(callback, x, i, sigma, sigma, denoised)
        d = to_d(x, sigma, denoised)
        if hist or sigma_next == 0:
            d_prime = _adams_bashforth(d, hist)
        else:  # pseudo improved Euler: average the slopes at both ends of a DDIM step
            x_2 = x + d * (sigma_next - sigma)
            d_prime = (d + to_d(x_2, sigma_next, denoiser(x_2, sigma_next * s_in, **extra))) / 2
        x = x + d_prime * (sigma_next - sigma)
        hist = (hist + [d])[-3:]
    return x


def _ipndm_v_coeffs(order: int, h: list[float]) -> list[float]:
    """Variable-step Adams–Bashforth weights (newest slope first) for steps h = [h_n, h_{n−1}, ...]
    (the closed forms of the diff-solvers iPNDM-v, Zhang & Chen 2022), as multiples of h_n."""
    if order == 2:
        h0, h1 = h[0], h[1]
        return [(2 + h0 / h1) / 2, -(h0 / h1) / 2]
    if order == 3:
        h0, h1, h2 = h[0], h[1], h[2]
        temp = (1 - h0 / (3 * (h0 + h1)) * (h0 * (h0 + h1)) / (h1 * (h1 + h2))) / 2
        return [(2 + h0 / h1) / 2 + temp, -(h0 / h1) / 2 - (1 + h1 / h2) * temp, temp * h1 / h2]
    h0, h1, h2, h3 = h[0], h[1], h[2], h[3]
    t1 = (1 - h0 / (3 * (h0 + h1)) * (h0 * (h0 + h1)) / (h1 * (h1 + h2))) / 2
    t2 = (((1 - h0 / (3 * (h0 + h1))) / 2 + (1 - h0 / (2 * (h0 + h1))) * h0 / (6 * (h0 + h1 + h2)))
          * (h0 * (h0 + h1) * (h0 + h1 + h2)) / (h1 * (h1 + h2) * (h1 + h2 + h3)))
    q = h1 * (h1 + h2) / (h2 * (h2 + h3))
    return [(2 + h0 / h1) / 2 + t1 + t2,
            -(h0 / h1) / 2 - (1 + h1 / h2) * t1 - (1 + h1 / h2 + q) * t2,
            t1 * h1 / h2 + (h1 / h2 + q * (1 + h2 / h3)) * t2,
            -t2 * q * h1 / h2]


@torch.no_grad()
def sample_ipndm_v(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                   callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                   seed: int | None = None, max_order: int = 4) -> Tensor:
    """Variable-step iPNDM: variable-step Adams–Bashforth in sigma; the step to 0 returns x0."""
    extra, _, s_in = setup(x, extra_args, noise_sampler, seed)
    hist: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, t_cur * s_in, **extra)
        report(callback, x, i, t_cur, t_cur, denoised)
        d = (x - denoised) / t_cur
        order = min(max_order, i + 1)
        if t_next == 0:
            x_next = denoised
        elif order == 1:
            x_next = x + (t_next - t_cur) * d
        else:
            steps = [t_next - t_cur] + [sigmas[i - k] - sigmas[i - k - 1] for k in range(order - 1)]
            c = _ipndm_v_coeffs(order, steps)
            acc = c[0] * d
            for k in range(1, order):
                acc = acc + c[k] * hist[-k]
            x_next = x + (t_next - t_cur) * acc
        hist = (hist + [d])[-(max_order - 1):] if max_order > 1 else []
        x = x_next
    return x


def _deis_vp_times(sigmas: Tensor, eps_s: float = 1e-3, smin: float = 0.002, smax: float = 80.0):
    """EDM sigma → VP-SDE time τ with a linear β(τ) fitted to [smin, smax] (DEIS's parameterisation),
    in float32 like ComfyUI's port of diff-solvers; returns (τ steps, β_0, β_1)."""
    log_min = torch.tensor(smin).pow(2).add(1).log()
    log_max = torch.tensor(smax).pow(2).add(1).log()
    beta_d = 2 * (log_min / eps_s - log_max) / (eps_s - 1)
    beta_min = log_max - 0.5 * beta_d
    s = sigmas.detach().cpu()
    taus = ((beta_min ** 2 + 2 * beta_d * (s ** 2 + 1).log()).sqrt() - beta_min) / beta_d
    return taus, beta_min, beta_d + beta_min


def _deis_integrand(beta_0: Tensor, beta_1: Tensor, taus: Tensor) -> Tensor:
    """dσ/dτ written as −½·(d log ᾱ/dτ)/√(ᾱ(1−ᾱ)), ᾱ(τ) = exp(−½τ²(β_1−β_0) − τβ_0); the derivative
    is taken by autograd, as the reference implementation does (same float rounding)."""
    with torch.inference_mode(False), torch.enable_grad():
        t = taus.clone().requires_grad_(True)
        alpha = torch.exp(-0.5 * t ** 2 * (beta_1.clone() - beta_0.clone()) - t * beta_0.clone())
        alpha.log().sum().backward()
        dlog = t.grad
    alpha = alpha.detach()
    return -0.5 * dlog / torch.sqrt(alpha * (1 - alpha))


def _deis_coeffs(sigmas: Tensor, max_order: int, n: int = 10000) -> list[list[Tensor]]:
    """DEIS tAB weights per step: ∫ dσ/dτ · L_j(τ) dτ by an n-point Riemann sum over each step."""
    t_steps, beta_0, beta_1 = _deis_vp_times(sigmas)
    out: list[list[Tensor]] = []
    for i in range(len(t_steps) - 1):
        t_cur, t_next = t_steps[i], t_steps[i + 1]
        order = min(i + 1, max_order)
        if order == 1:
            out.append([])
            continue
        taus = torch.linspace(float(t_cur), float(t_next), n)
        dtau = (t_next - t_cur) / n
        prev = t_steps[[i - k for k in range(order)]]
        integrand = _deis_integrand(beta_0, beta_1, taus)
        row = []
        for j in range(order):
            poly = 1
            for k in range(order):
                if k != j:
                    poly = poly * ((taus - prev[k]) / (prev[j] - prev[k]))
            row.append(torch.sum(integrand * poly) * dtau)
        out.append(row)
    return out


@torch.no_grad()
def sample_deis(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                seed: int | None = None, max_order: int = 3) -> Tensor:
    """DEIS tAB (Zhang & Chen 2022): Adams–Bashforth in VP time τ weighted by dσ/dτ; Euler to 0."""
    extra, _, s_in = setup(x, extra_args, noise_sampler, seed)
    coeffs = _deis_coeffs(sigmas, max_order)
    hist: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, t_cur * s_in, **extra)
        report(callback, x, i, t_cur, t_cur, denoised)
        d = (x - denoised) / t_cur
        order = 1 if t_next <= 0 else min(max_order, i + 1)
        if order == 1:
            x_next = x + (t_next - t_cur) * d
        else:
            c = [v.to(x.device) for v in coeffs[i]]
            x_next = x + c[0] * d
            for k in range(1, order):
                x_next = x_next + c[k] * hist[-k]
        hist = (hist + [d])[-(max_order - 1):] if max_order > 1 else []
        x = x_next
    return x


@torch.no_grad()
def sample_gradient_estimation(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                               callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                               seed: int | None = None, ge_gamma: float = 2.0, cfg_pp: bool = False) -> Tensor:
    """Gradient estimation (Permenter & Yuan 2024): Euler plus (γ−1)(d − d_prev)·dt from the
    second step on; the step to σ = 0 returns the denoised estimate. cfg_pp: CFG++ variant."""
    extra, _, s_in = setup(x, extra_args, noise_sampler, seed)
    old_d = None
    for i in range(len(sigmas) - 1):
        if cfg_pp:
            denoised, uncond = guided_and_uncond(denoiser, x, sigmas[i] * s_in, extra)
            d = to_d(x, sigmas[i], uncond)
        else:
            denoised = denoiser(x, sigmas[i] * s_in, **extra)
            d = to_d(x, sigmas[i], denoised)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            x = denoised + d * sigmas[i + 1] if cfg_pp else x + d * dt
            if i >= 1:
                x = x + (ge_gamma - 1) * (d - old_d) * dt
        old_d = d
    return x


@torch.no_grad()
def sample_gradient_estimation_cfg_pp(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *,
                                      extra_args: dict | None = None, callback: Callback = None,
                                      noise_sampler: NoiseSampler | None = None, seed: int | None = None,
                                      ge_gamma: float = 2.0) -> Tensor:
    """Gradient estimation with CFG++ (the Euler move uses the uncond direction)."""
    return sample_gradient_estimation(denoiser, x, sigmas, extra_args=extra_args, callback=callback,
                                      noise_sampler=noise_sampler, seed=seed, ge_gamma=ge_gamma, cfg_pp=True)


def _res_multistep(denoiser: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict | None, callback: Callback,
                   noise_sampler: NoiseSampler | None, seed: int | None, eta: float, s_noise: float,
                   cfg_pp: bool = False) -> Tensor:
    """RES 2nd-order multistep exponential integrator (Zhang et al. 2023, arXiv 2308.02157), optionally
    ancestral (eta) and CFG++ (steps along the uncond prediction, the guidance added back)."""
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    old_denoised = old_down = None
    for i in range(len(sigmas) - 1):
        if cfg_pp:
            denoised, uncond = guided_and_uncond(denoiser, x, sigmas[i] * s_in, extra)
        else:
            denoised = uncond = denoiser(x, sigmas[i] * s_in, **extra)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        down, up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if down == 0 or old_denoised is None:
            if cfg_pp:
                x = denoised + to_d(x, sigmas[i], uncond) * down
            else:
                x = x + to_d(x, sigmas[i], denoised) * (down - sigmas[i])
        else:
            t, t_old, t_next, t_prev = lam(sigmas[i]), lam(old_down), lam(down), lam(sigmas[i - 1])
            h = t_next - t
            c2 = (t_prev - t_old) / h
            phi1 = torch.expm1(-h) / (-h)
            phi2 = (phi1 - 1.0) / (-h)
            b1 = torch.nan_to_num(phi1 - phi2 / c2, nan=0.0)
            b2 = torch.nan_to_num(phi2 / c2, nan=0.0)
            if cfg_pp:
                x = x + (denoised - uncond)
            x = sigma_at(h) * x + h * (b1 * uncond + b2 * old_denoised)
        if sigmas[i + 1] > 0 and eta:
            x = x + ns(sigmas[i], sigmas[i + 1]) * s_noise * up
        old_denoised, old_down = uncond, down
    return x


@torch.no_grad()
def sample_res_multistep(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                         callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                         seed: int | None = None, s_noise: float = 1.0) -> Tensor:
    """RES multistep, deterministic (eta 0)."""
    return _res_multistep(denoiser, x, sigmas, extra_args, callback, noise_sampler, seed, 0.0, s_noise)


@torch.no_grad()
def sample_res_multistep_cfg_pp(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                                callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                                seed: int | None = None, s_noise: float = 1.0) -> Tensor:
    """RES multistep with CFG++, deterministic."""
    return _res_multistep(denoiser, x, sigmas, extra_args, callback, noise_sampler, seed, 0.0, s_noise, True)


@torch.no_grad()
def sample_res_multistep_ancestral(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                                   callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                                   seed: int | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """RES multistep with ancestral noise (eta 1)."""
    return _res_multistep(denoiser, x, sigmas, extra_args, callback, noise_sampler, seed, eta, s_noise)


@torch.no_grad()
def sample_res_multistep_ancestral_cfg_pp(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *,
                                          extra_args: dict | None = None, callback: Callback = None,
                                          noise_sampler: NoiseSampler | None = None, seed: int | None = None,
                                          eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """RES multistep with ancestral noise and CFG++."""
    return _res_multistep(denoiser, x, sigmas, extra_args, callback, noise_sampler, seed, eta, s_noise, True)
