"""DPM-Solver (Lu et al. 2022a): fast (fixed NFE, 3rd-order steps uniform in λ) and adaptive
(embedded 12/23 pairs with a step-size controller), with the noise prediction eps."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ldm.sampling.steps import Callback, Denoiser, NoiseSampler, lam, report, setup, sigma_at


class _DPMSolver:
    """DPM-Solver-1/2/3 single steps in t = −log σ with the noise prediction eps (Lu et al. 2022a)."""

    def __init__(self, denoiser: Denoiser, x: Tensor, extra: dict, callback: Callback) -> None:
        self.denoiser, self.extra, self.callback = denoiser, extra, callback
        self.s_in = x.new_ones([x.shape[0]])
        self.calls = 0

    def eps(self, x: Tensor, t: Tensor) -> Tensor:
        sigma = sigma_at(t)
        denoised = self.denoiser(x, sigma * self.s_in, **self.extra)
        return (x - denoised) / sigma

    def step(self, order: int, x: Tensor, t: Tensor, t_next: Tensor, eps: Tensor, r1: float | None = None) -> Tensor:
        h = t_next - t
        if order == 1:
            return x - sigma_at(t_next) * h.expm1() * eps
        if order == 2:
            r1 = 0.5 if r1 is None else r1
            s1 = t + r1 * h
            eps_1 = self.eps(x - sigma_at(s1) * (r1 * h).expm1() * eps, s1)
            return (x - sigma_at(t_next) * h.expm1() * eps
                    - sigma_at(t_next) / (2 * r1) * h.expm1() * (eps_1 - eps))
        r1, r2 = 1 / 3, 2 / 3
        s1, s2 = t + r1 * h, t + r2 * h
        eps_1 = self.eps(x - sigma_at(s1) * (r1 * h).expm1() * eps, s1)
        u2 = (x - sigma_at(s2) * (r2 * h).expm1() * eps
              - sigma_at(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_1 - eps))
        eps_2 = self.eps(u2, s2)
        return x - sigma_at(t_next) * h.expm1() * eps - sigma_at(t_next) / r2 * (h.expm1() / h - 1) * (eps_2 - eps)


def _dpm_range(sigmas: Tensor) -> tuple[Tensor, Tensor]:
    """(sigma_max, sigma_min) as ComfyUI feeds dpm_fast/adaptive: the last non-zero sigma is the end."""
    sigma_min = sigmas[-1] if sigmas[-1] > 0 else sigmas[-2]
    return sigmas[0], sigma_min


@torch.no_grad()
def sample_dpm_fast(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                    callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                    seed: int | None = None) -> Tensor:
    """DPM-Solver-fast (Lu et al. 2022a): len(sigmas)−1 evaluations as 3rd-order steps uniform in t.

    Like ComfyUI it integrates to the smallest non-zero sigma and returns x there (no final jump to 0).
    """
    if len(sigmas) <= 1:
        return x
    extra, _, _ = setup(x, extra_args, noise_sampler, seed)
    solver = _DPMSolver(denoiser, x, extra, callback)
    s_max, s_min = _dpm_range(sigmas)
    nfe = len(sigmas) - 1
    m = nfe // 3 + 1
    ts = torch.linspace(float(lam(s_max)), float(lam(s_min)), m + 1)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    for i, order in enumerate(orders):
        eps = solver.eps(x, ts[i])
        report(callback, x, i, sigma_at(ts[i]), sigma_at(ts[i]), x - sigma_at(ts[i]) * eps)
        x = solver.step(order, x, ts[i], ts[i + 1], eps)
    return x


def _step_factor(error: float, order: float) -> float:
    """Integral step-size controller (PID with only the I term, Söderlind): atan-limited (1/err)^(1/order)."""
    factor = (1 / (error + 1e-8)) ** (1.0 / order)
    return 1 + math.atan(factor - 1)


@torch.no_grad()
def sample_dpm_adaptive(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                        callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                        seed: int | None = None, order: int = 3, rtol: float = 0.05, atol: float = 0.0078,
                        h_init: float = 0.05, accept_safety: float = 0.81) -> Tensor:
    """DPM-Solver-12/23 with adaptive step size (Lu et al. 2022a, embedded error estimate)."""
    if len(sigmas) <= 1:
        return x
    extra, _, _ = setup(x, extra_args, noise_sampler, seed)
    solver = _DPMSolver(denoiser, x, extra, callback)
    s_max, s_min = _dpm_range(sigmas)
    s, t_end = lam(s_max), lam(s_min)
    h, x_prev, i = h_init, x, 0
    while s < t_end - 1e-5:
        t = torch.minimum(t_end, s + h)
        eps = solver.eps(x, s)
        report(callback, x, i, sigma_at(s), sigma_at(s), x - sigma_at(s) * eps)
        if order == 2:
            x_low, x_high = solver.step(1, x, s, t, eps), solver.step(2, x, s, t, eps)
        else:
            x_low, x_high = solver.step(2, x, s, t, eps, r1=1 / 3), solver.step(3, x, s, t, eps)
        delta = torch.maximum(torch.tensor(atol), rtol * torch.maximum(x_low.abs(), x_prev.abs()))
        error = float(torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5)
        factor = _step_factor(error, order)
        if factor >= accept_safety:
            x_prev, x, s = x_low, x_high, t
        h *= factor
        i += 1
    return x
