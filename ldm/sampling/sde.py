"""Stochastic exponential-integrator samplers: ER-SDE, SEEDS-2/3, SA-Solver.

Written in the half log-SNR λ = −log σ with α = σ·e^{λ} (1 up to rounding for eps/v models), the way
ComfyUI writes them, so that the float operations agree; ancestral noise from default_noise_sampler
seeded with the KSampler seed; the step to σ = 0 returns the denoised estimate.

References: ER-SDE-Solver (Cui et al. 2023, arXiv 2309.06169), SEEDS (Gonzalez et al., NeurIPS 2023,
arXiv 2305.14267), SA-Solver (Xue et al., NeurIPS 2023, arXiv 2309.05019).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ldm.model_sampling import ModelSampling
from ldm.sampling.steps import Callback, Denoiser, NoiseSampler, lam, report, setup


def _phi1(h: Tensor) -> Tensor:
    """h·φ₁(h) = e^h − 1."""
    return torch.expm1(h)


def _phi2(h: Tensor) -> Tensor:
    """h·φ₂(h) = (e^h − 1 − h)/h."""
    return (torch.expm1(h) - h) / h


def _er_sde_noise_scaler(x: Tensor) -> Tensor:
    """Default ER-SDE noise scale function ψ(λ) = λ·(e^{λ^0.3} + 10)."""
    return x * ((x ** 0.3).exp() + 10.0)


@torch.no_grad()
def sample_er_sde(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                  callback: Callback = None, noise_sampler: NoiseSampler | None = None, seed: int | None = None,
                  s_noise: float = 1.0, noise_scaler: Callable[[Tensor], Tensor] | None = None,
                  max_stage: int = 3) -> Tensor:
    """Extended reverse-time SDE solver (VP ER-SDE-Solver-3): stage-k Taylor terms in λ = σ/α, the
    integrals of 1/ψ done with 200 rectangle points."""
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    scaler = noise_scaler or _er_sde_noise_scaler
    n_points = 200.0
    idx = torch.arange(0, n_points, dtype=torch.float32, device=x.device)
    er_lambdas = lam(sigmas).neg().exp()
    old_denoised = old_denoised_d = None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        stage = min(max_stage, i + 1)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = er_lambdas[i], er_lambdas[i + 1]
            alpha_s = sigmas[i] / lam_s
            alpha_t = sigmas[i + 1] / lam_t
            r_alpha = alpha_t / alpha_s
            r = scaler(lam_t) / scaler(lam_s)
            x = r_alpha * r * x + alpha_t * (1 - r) * denoised
            if stage >= 2:
                dt = lam_t - lam_s
                step = -dt / n_points
                pos = lam_t + idx * step
                scaled = scaler(pos)
                s = torch.sum(1 / scaled) * step
                denoised_d = (denoised - old_denoised) / (lam_s - er_lambdas[i - 1])
                x = x + alpha_t * (dt + s * scaler(lam_t)) * denoised_d
                if stage >= 3:
                    s_u = torch.sum((pos - lam_s) / scaled) * step
                    denoised_u = (denoised_d - old_denoised_d) / ((lam_s - er_lambdas[i - 2]) / 2)
                    x = x + alpha_t * ((dt ** 2) / 2 + s_u * scaler(lam_t)) * denoised_u
                old_denoised_d = denoised_d
            if s_noise > 0:
                amp = (lam_t ** 2 - lam_s ** 2 * r ** 2).sqrt().nan_to_num(nan=0.0)
                x = x + alpha_t * ns(sigmas[i], sigmas[i + 1]) * s_noise * amp
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_seeds_2(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                   callback: Callback = None, noise_sampler: NoiseSampler | None = None, seed: int | None = None,
                   eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5, solver_type: str = "phi_1") -> Tensor:
    """SEEDS-2 (data prediction, VP): two stages per step with coupled stochastic increments."""
    if solver_type not in ("phi_1", "phi_2"):
        raise ValueError("solver_type must be 'phi_1' or 'phi_2'")
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    inject = eta > 0 and s_noise > 0
    fac = 1 / (2 * r)
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lam_s, lam_t = lam(sigmas[i]), lam(sigmas[i + 1])
        h = lam_t - lam_s
        h_eta = h * (eta + 1)
        lam_s1 = torch.lerp(lam_s, lam_t, r)
        sigma_s1 = lam_s1.neg().exp()
        alpha_s1 = sigma_s1 * lam_s1.exp()
        alpha_t = sigmas[i + 1] * lam_t.exp()
        x_2 = sigma_s1 / sigmas[i] * (-r * h * eta).exp() * x - alpha_s1 * _phi1(-r * h_eta) * denoised
        if inject:
            sde_noise = (-2 * r * h * eta).expm1().neg().sqrt() * ns(sigmas[i], sigma_s1)
            x_2 = x_2 + sde_noise * sigma_s1 * s_noise
        denoised_2 = denoiser(x_2, sigma_s1 * s_in, **extra)
        if solver_type == "phi_1":
            denoised_d = torch.lerp(denoised, denoised_2, fac)
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - alpha_t * _phi1(-h_eta) * denoised_d
        else:
            b2 = _phi2(-h_eta) / r
            b1 = _phi1(-h_eta) - b2
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - alpha_t * (b1 * denoised + b2 * denoised_2)
        if inject:
            seg = (r - 1) * h * eta
            sde_noise = sde_noise * seg.exp()
            sde_noise = sde_noise + seg.mul(2).expm1().neg().sqrt() * ns(sigma_s1, sigmas[i + 1])
            x = x + sde_noise * sigmas[i + 1] * s_noise
    return x


@torch.no_grad()
def sample_seeds_3(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                   callback: Callback = None, noise_sampler: NoiseSampler | None = None, seed: int | None = None,
                   eta: float = 1.0, s_noise: float = 1.0, r_1: float = 1.0 / 3, r_2: float = 2.0 / 3) -> Tensor:
    """SEEDS-3 (data prediction, VP): three stages per step with coupled stochastic increments."""
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    inject = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lam_s, lam_t = lam(sigmas[i]), lam(sigmas[i + 1])
        h = lam_t - lam_s
        h_eta = h * (eta + 1)
        lam_s1, lam_s2 = torch.lerp(lam_s, lam_t, r_1), torch.lerp(lam_s, lam_t, r_2)
        sigma_s1, sigma_s2 = lam_s1.neg().exp(), lam_s2.neg().exp()
        alpha_s1, alpha_s2 = sigma_s1 * lam_s1.exp(), sigma_s2 * lam_s2.exp()
        alpha_t = sigmas[i + 1] * lam_t.exp()
        x_2 = sigma_s1 / sigmas[i] * (-r_1 * h * eta).exp() * x - alpha_s1 * _phi1(-r_1 * h_eta) * denoised
        if inject:
            sde_noise = (-2 * r_1 * h * eta).expm1().neg().sqrt() * ns(sigmas[i], sigma_s1)
            x_2 = x_2 + sde_noise * sigma_s1 * s_noise
        denoised_2 = denoiser(x_2, sigma_s1 * s_in, **extra)
        a3_2 = r_2 / r_1 * _phi2(-r_2 * h_eta)
        a3_1 = _phi1(-r_2 * h_eta) - a3_2
        x_3 = sigma_s2 / sigmas[i] * (-r_2 * h * eta).exp() * x - alpha_s2 * (a3_1 * denoised + a3_2 * denoised_2)
        if inject:
            seg = (r_1 - r_2) * h * eta
            sde_noise = sde_noise * seg.exp()
            sde_noise = sde_noise + seg.mul(2).expm1().neg().sqrt() * ns(sigma_s1, sigma_s2)
            x_3 = x_3 + sde_noise * sigma_s2 * s_noise
        denoised_3 = denoiser(x_3, sigma_s2 * s_in, **extra)
        b3 = _phi2(-h_eta) / r_2
        b1 = _phi1(-h_eta) - b3
        x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - alpha_t * (b1 * denoised + b3 * denoised_3)
        if inject:
            seg = (r_2 - 1) * h * eta
            sde_noise = sde_noise * seg.exp()
            sde_noise = sde_noise + seg.mul(2).expm1().neg().sqrt() * ns(sigma_s2, sigmas[i + 1])
            x = x + sde_noise * sigmas[i + 1] * s_noise
    return x


def _exp_coeffs(s: Tensor, t: Tensor, order: int, tau: float) -> Tensor:
    """(1+τ²)·∫_s^t e^{(1+τ²)(u−t)} u^p du for p = 0..order−1, by the integration-by-parts recursion."""
    tau_mul = 1 + tau ** 2
    h = t - s
    p = torch.arange(order, dtype=s.dtype, device=s.device)
    product_terms = t ** p - s ** p * (-tau_mul * h).exp()
    depth = p.unsqueeze(1) - p.unsqueeze(0)
    log_fact = (p + 1).lgamma()
    coeff = log_fact.unsqueeze(1) - log_fact.unsqueeze(0)
    if tau > 0:
        coeff = coeff - depth * math.log(tau_mul)
    signs = torch.where(depth % 2 == 0, 1.0, -1.0)
    coeff = (coeff.exp() * signs).tril()
    return coeff @ product_terms


def _sa_b_coeffs(sigma_next: Tensor, lambdas: Tensor, lam_s: Tensor, lam_t: Tensor, tau: float) -> Tensor:
    """Stochastic Adams weights b_i (SA-Solver eqs. 15/18): Lagrange integrals through `lambdas`."""
    n = lambdas.shape[0]
    integrals = _exp_coeffs(lam_s, lam_t, n, tau)
    vander_t = torch.vander(lambdas, n, increasing=True).T
    lagrange = torch.linalg.solve(vander_t, integrals)
    return sigma_next * lam_t.exp() * lagrange


def _default_tau(model_sampling: Any) -> Callable[[Tensor], float]:
    """τ = 1 while 0.2 ≥ progress ≥ 0.8 in sigma terms (percent_to_sigma(0.2) ≥ σ ≥ percent_to_sigma(0.8))."""
    if model_sampling is None:
        model_sampling = ModelSampling()
    start, end = model_sampling.percent_to_sigma(0.2), model_sampling.percent_to_sigma(0.8)

    def tau(sigma: Tensor) -> float:
        value = float(sigma)
        return 1.0 if start >= value >= end else 0.0

    return tau


@torch.no_grad()
def sample_sa_solver(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                     callback: Callback = None, noise_sampler: NoiseSampler | None = None, seed: int | None = None,
                     tau_func: Callable[[Tensor], float] | None = None, s_noise: float = 1.0,
                     predictor_order: int = 3, corrector_order: int = 4, use_pece: bool = False,
                     model_sampling: Any = None) -> Tensor:
    """Stochastic Adams predictor-corrector (SA-Solver), data prediction in λ; stochastic (τ = 1)
    between 20 % and 80 % of the schedule, orders lowered near the end."""
    if len(sigmas) <= 1:
        return x
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    lambdas = lam(sigmas)
    tau_func = tau_func or _default_tau(model_sampling)
    max_order = max(predictor_order, corrector_order)
    x_pred, h, tau_t, noise = x, 0.0, 0.0, 0.0
    preds: list[Tensor] = []
    lower_to_end = float(sigmas[-1]) == 0
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x_pred, sigmas[i] * s_in, **extra)
        report(callback, x_pred, i, sigmas[i], sigmas[i], denoised)
        preds = (preds + [denoised])[-max_order:]
        p_order = min(predictor_order, len(preds))
        c_order = 0 if i == 0 or (sigmas[i + 1] == 0 and not use_pece) else min(corrector_order, len(preds))
        if lower_to_end:
            p_order = min(p_order, len(sigmas) - 2 - i)
            c_order = min(c_order, len(sigmas) - 1 - i)
        if c_order == 0:
            x = x_pred
        else:
            b = _sa_b_coeffs(sigmas[i], lambdas[i - c_order + 1:i + 1], lambdas[i - 1], lambdas[i], tau_t)
            corr = torch.tensordot(torch.stack(preds[-c_order:], dim=1), b, dims=([1], [0]))
            x = sigmas[i] / sigmas[i - 1] * (-(tau_t ** 2) * h).exp() * x + corr
            if tau_t > 0 and s_noise > 0:
                x = x + noise
            if use_pece:
                denoised = denoiser(x, sigmas[i] * s_in, **extra)
                preds[-1] = denoised
        if sigmas[i + 1] == 0:
            x_pred = denoised
            continue
        tau_t = tau_func(sigmas[i + 1])
        b = _sa_b_coeffs(sigmas[i + 1], lambdas[i - p_order + 1:i + 1], lambdas[i], lambdas[i + 1], tau_t)
        pred = torch.tensordot(torch.stack(preds[-p_order:], dim=1), b, dims=([1], [0]))
        h = lambdas[i + 1] - lambdas[i]
        x_pred = sigmas[i + 1] / sigmas[i] * (-(tau_t ** 2) * h).exp() * x + pred
        if tau_t > 0 and s_noise > 0:
            noise = (ns(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
                     * (-2 * tau_t ** 2 * h).expm1().neg().sqrt() * s_noise)
            x_pred = x_pred + noise
    return x_pred


@torch.no_grad()
def sample_sa_solver_pece(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                          callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                          seed: int | None = None, tau_func: Callable[[Tensor], float] | None = None,
                          s_noise: float = 1.0, predictor_order: int = 3, corrector_order: int = 4,
                          model_sampling: Any = None) -> Tensor:
    """SA-Solver in PECE mode (predict, evaluate, correct, evaluate again)."""
    return sample_sa_solver(denoiser, x, sigmas, extra_args=extra_args, callback=callback,
                            noise_sampler=noise_sampler, seed=seed, tau_func=tau_func, s_noise=s_noise,
                            predictor_order=predictor_order, corrector_order=corrector_order, use_pece=True,
                            model_sampling=model_sampling)
