"""Higher-order and multistep samplers: iPNDM, DEIS, RES multistep, UniPC, DPM-Solver fast/adaptive.

Same conventions as ldm/samplers.py (k-diffusion formulation; x noised to sigmas[0]; denoiser
returns x0). iPNDM-v uses the closed-form variable-step Adams–Bashforth weights; DEIS integrates
dσ/dτ times the Lagrange basis over each step in VP-SDE time with an n-point sum (as ComfyUI's port
of diff-solvers does, so the weights agree).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ldm.samplers import (Callback, Denoiser, NoiseSampler, _guided_and_uncond, _report, _setup, _sigma, _t,
                          get_ancestral_step, to_d)


@torch.no_grad()
def sample_ipndm(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                 callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                 seed: int | None = None, max_order: int = 4) -> Tensor:
    """Improved PNDM (Zhang & Chen 2022): fixed-step Adams–Bashforth up to order 4 on dx/dσ;
    the step to σ = 0 returns the denoised estimate."""
    extra, _, s_in = _setup(x, extra_args, noise_sampler, seed)
    hist: list[Tensor] = []  # previous slopes, oldest first (at most max_order − 1)
    for i in range(len(sigmas) - 1):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, t_cur * s_in, **extra)
        _report(callback, x, i, t_cur, t_cur, denoised)
        d = (x - denoised) / t_cur
        order = min(max_order, i + 1)
        if t_next == 0:
            x_next = denoised
        elif order == 1:
            x_next = x + (t_next - t_cur) * d
        elif order == 2:
            x_next = x + (t_next - t_cur) * (3 * d - hist[-1]) / 2
        elif order == 3:
            x_next = x + (t_next - t_cur) * (23 * d - 16 * hist[-1] + 5 * hist[-2]) / 12
        else:
            x_next = x + (t_next - t_cur) * (55 * d - 59 * hist[-1] + 37 * hist[-2] - 9 * hist[-3]) / 24
        hist = (hist + [d])[-(max_order - 1):] if max_order > 1 else []
        x = x_next
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
    extra, _, s_in = _setup(x, extra_args, noise_sampler, seed)
    hist: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, t_cur * s_in, **extra)
        _report(callback, x, i, t_cur, t_cur, denoised)
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


@torch.no_grad()
def sample_gradient_estimation(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                               callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                               seed: int | None = None, ge_gamma: float = 2.0, cfg_pp: bool = False) -> Tensor:
    """Gradient estimation (Permenter & Yuan 2024): Euler plus (γ−1)(d − d_prev)·dt from the
    second step on; the step to σ = 0 returns the denoised estimate. cfg_pp: CFG++ variant."""
    extra, _, s_in = _setup(x, extra_args, noise_sampler, seed)
    old_d = None
    for i in range(len(sigmas) - 1):
        if cfg_pp:
            denoised, uncond = _guided_and_uncond(denoiser, x, sigmas[i] * s_in, extra)
            d = to_d(x, sigmas[i], uncond)
        else:
            denoised = denoiser(x, sigmas[i] * s_in, **extra)
            d = to_d(x, sigmas[i], denoised)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
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
    extra, _, s_in = _setup(x, extra_args, noise_sampler, seed)
    coeffs = _deis_coeffs(sigmas, max_order)
    hist: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, t_cur * s_in, **extra)
        _report(callback, x, i, t_cur, t_cur, denoised)
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


def _res_multistep(denoiser: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict | None, callback: Callback,
                   noise_sampler: NoiseSampler | None, seed: int | None, eta: float, s_noise: float,
                   cfg_pp: bool = False) -> Tensor:
    """RES 2nd-order multistep exponential integrator (Zhang et al. 2023, arXiv 2308.02157), optionally
    ancestral (eta) and CFG++ (steps along the uncond prediction, the guidance added back)."""
    extra, ns, s_in = _setup(x, extra_args, noise_sampler, seed)
    old_denoised = old_down = None
    for i in range(len(sigmas) - 1):
        if cfg_pp:
            denoised, uncond = _guided_and_uncond(denoiser, x, sigmas[i] * s_in, extra)
        else:
            denoised = uncond = denoiser(x, sigmas[i] * s_in, **extra)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        down, up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if down == 0 or old_denoised is None:
            if cfg_pp:
                x = denoised + to_d(x, sigmas[i], uncond) * down
            else:
                x = x + to_d(x, sigmas[i], denoised) * (down - sigmas[i])
        else:
            t, t_old, t_next, t_prev = _t(sigmas[i]), _t(old_down), _t(down), _t(sigmas[i - 1])
            h = t_next - t
            c2 = (t_prev - t_old) / h
            phi1 = torch.expm1(-h) / (-h)
            phi2 = (phi1 - 1.0) / (-h)
            b1 = torch.nan_to_num(phi1 - phi2 / c2, nan=0.0)
            b2 = torch.nan_to_num(phi2 / c2, nan=0.0)
            if cfg_pp:
                x = x + (denoised - uncond)
            x = _sigma(h) * x + h * (b1 * uncond + b2 * old_denoised)
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


# ---------------------------------------------------------------------------- UniPC
def _unipc_update(x: Tensor, models: list[Tensor], lambdas: list[Tensor], lam_t: Tensor, order: int,
                  bh2: bool, corrector: Callable[[Tensor], Tensor] | None):
    """One UniP-p predictor (+ UniC-p corrector) step, data prediction (Zhao et al. 2023).

    Written in k-diffusion space: the VP update x_t = (σ̂_t/σ̂_s)x − α_t(e^{−h}−1)m0 − ..., divided
    by α_t, becomes x_t = e^{−h}x − (e^{−h}−1)m0 − B(h)·Σρ·D. models/lambdas hold the x0
    predictions and λ = −log σ of previous points, newest last. Returns (x_t, model_t), model_t
    being the x0 prediction at the uncorrected x_t (UniPC reuses it for the next step).
    """
    m0, lam0 = models[-1], lambdas[-1].double()
    h = lam_t.double() - lam0
    rks, d1s = [], []
    for k in range(1, order):
        rk = (lambdas[-(k + 1)].double() - lam0) / h
        rks.append(rk)
        d1s.append((models[-(k + 1)] - m0) / float(rk))
    rks_t = torch.stack(rks + [torch.ones_like(h)])
    hh = -h
    h_phi_1 = torch.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    b_h = torch.expm1(hh) if bh2 else hh
    rows, b, fact = [], [], 1
    for k in range(1, order + 1):
        rows.append(rks_t ** (k - 1))
        b.append(h_phi_k * fact / b_h)
        fact *= k + 1
        h_phi_k = h_phi_k / hh - 1 / fact
    R, b_t = torch.stack(rows), torch.stack(b)
    x_base = float(torch.exp(hh)) * x - float(h_phi_1) * m0
    pred = 0
    if d1s:
        rhos_p = [0.5] if order == 2 else torch.linalg.solve(R[:-1, :-1], b_t[:-1]).tolist()
        pred = sum(r * d for r, d in zip(rhos_p, d1s))
    x_t = x_base - float(b_h) * pred
    if corrector is None:
        return x_t, None
    model_t = corrector(x_t)
    rhos_c = [0.5] if order == 1 else torch.linalg.solve(R, b_t).tolist()
    corr = sum(r * d for r, d in zip(rhos_c[:-1], d1s)) if d1s else 0
    return x_base - float(b_h) * (corr + rhos_c[-1] * (model_t - m0)), model_t


def _uni_pc(denoiser: Denoiser, x: Tensor, sigmas: Tensor, extra_args: dict | None, callback: Callback,
            noise_sampler: NoiseSampler | None, seed: int | None, bh2: bool) -> Tensor:
    """UniPC multistep (order ≤ 3, lower orders for warm-up and the final steps)."""
    extra, _, s_in = _setup(x, extra_args, noise_sampler, seed)
    ts = sigmas.clone()
    if ts[-1] == 0:
        ts[-1] = 0.001  # λ = −log σ is infinite at 0; ComfyUI stops UniPC at σ = 0.001
    steps = len(ts) - 1
    order = max(1, min(3, steps - 1))

    def model_fn(x_: Tensor, s: Tensor) -> Tensor:
        return denoiser(x_, s * s_in, **extra)

    models, lambdas = [model_fn(x, ts[0])], [_t(ts[0])]
    _report(callback, x, 0, ts[0], ts[0], models[0])
    for step in range(1, steps + 1):
        step_order = min(order, step, steps + 1 - step)
        corrector = (lambda xt, s=ts[step]: model_fn(xt, s)) if step < steps else None
        x, model_x = _unipc_update(x, models, lambdas, _t(ts[step]), step_order, bh2, corrector)
        if step < steps:
            models = (models + [model_x])[-order:]
            lambdas = (lambdas + [_t(ts[step])])[-order:]
            _report(callback, x, step, ts[step], ts[step], model_x)
    return x


@torch.no_grad()
def sample_uni_pc(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                  callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                  seed: int | None = None) -> Tensor:
    """UniPC with B(h) = h (variant bh1), Zhao et al. 2023."""
    return _uni_pc(denoiser, x, sigmas, extra_args, callback, noise_sampler, seed, bh2=False)


@torch.no_grad()
def sample_uni_pc_bh2(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                      callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                      seed: int | None = None) -> Tensor:
    """UniPC with B(h) = e^h − 1 (variant bh2), Zhao et al. 2023."""
    return _uni_pc(denoiser, x, sigmas, extra_args, callback, noise_sampler, seed, bh2=True)


# ---------------------------------------------------------------------------- DPM-Solver (2022a)
class _DPMSolver:
    """DPM-Solver-1/2/3 single steps in t = −log σ with the noise prediction eps (Lu et al. 2022a)."""

    def __init__(self, denoiser: Denoiser, x: Tensor, extra: dict, callback: Callback) -> None:
        self.denoiser, self.extra, self.callback = denoiser, extra, callback
        self.s_in = x.new_ones([x.shape[0]])
        self.calls = 0

    def eps(self, x: Tensor, t: Tensor) -> Tensor:
        sigma = _sigma(t)
        denoised = self.denoiser(x, sigma * self.s_in, **self.extra)
        return (x - denoised) / sigma

    def step(self, order: int, x: Tensor, t: Tensor, t_next: Tensor, eps: Tensor, r1: float | None = None) -> Tensor:
        h = t_next - t
        if order == 1:
            return x - _sigma(t_next) * h.expm1() * eps
        if order == 2:
            r1 = 0.5 if r1 is None else r1
            s1 = t + r1 * h
            eps_1 = self.eps(x - _sigma(s1) * (r1 * h).expm1() * eps, s1)
            return (x - _sigma(t_next) * h.expm1() * eps
                    - _sigma(t_next) / (2 * r1) * h.expm1() * (eps_1 - eps))
        r1, r2 = 1 / 3, 2 / 3
        s1, s2 = t + r1 * h, t + r2 * h
        eps_1 = self.eps(x - _sigma(s1) * (r1 * h).expm1() * eps, s1)
        u2 = (x - _sigma(s2) * (r2 * h).expm1() * eps
              - _sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_1 - eps))
        eps_2 = self.eps(u2, s2)
        return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_2 - eps)


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
    extra, _, _ = _setup(x, extra_args, noise_sampler, seed)
    solver = _DPMSolver(denoiser, x, extra, callback)
    s_max, s_min = _dpm_range(sigmas)
    nfe = len(sigmas) - 1
    m = nfe // 3 + 1
    ts = torch.linspace(float(_t(s_max)), float(_t(s_min)), m + 1)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    for i, order in enumerate(orders):
        eps = solver.eps(x, ts[i])
        _report(callback, x, i, _sigma(ts[i]), _sigma(ts[i]), x - _sigma(ts[i]) * eps)
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
    extra, _, _ = _setup(x, extra_args, noise_sampler, seed)
    solver = _DPMSolver(denoiser, x, extra, callback)
    s_max, s_min = _dpm_range(sigmas)
    s, t_end = _t(s_max), _t(s_min)
    h, x_prev, i = h_init, x, 0
    while s < t_end - 1e-5:
        t = torch.minimum(t_end, s + h)
        eps = solver.eps(x, s)
        _report(callback, x, i, _sigma(s), _sigma(s), x - _sigma(s) * eps)
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
