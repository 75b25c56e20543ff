"""UniPC (Zhao et al. 2023): unified predictor-corrector multistep solver, variants bh1 and bh2."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ldm.sampling.steps import Callback, Denoiser, NoiseSampler, lam, report, setup


def _unipc_update(x: Tensor, models: list[Tensor], lambdas: list[Tensor], lam_t: Tensor, order: int,
                  bh2: bool, corrector: Callable[[Tensor], Tensor] | None):
    """One UniP-p predictor (+ UniC-p corrector) step, data prediction (Zhao et al. 2023).

    Written in k-diffusion space: the VP update x_t = (σ̂_t/σ̂_s)x − αlam(e^{−h}−1)m0 − ..., divided
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
    extra, _, s_in = setup(x, extra_args, noise_sampler, seed)
    ts = sigmas.clone()
    if ts[-1] == 0:
        ts[-1] = 0.001  # λ = −log σ is infinite at 0; ComfyUI stops UniPC at σ = 0.001
    steps = len(ts) - 1
    order = max(1, min(3, steps - 1))

    def model_fn(x_: Tensor, s: Tensor) -> Tensor:
        return denoiser(x_, s * s_in, **extra)

    models, lambdas = [model_fn(x, ts[0])], [lam(ts[0])]
    report(callback, x, 0, ts[0], ts[0], models[0])
    for step in range(1, steps + 1):
        step_order = min(order, step, steps + 1 - step)
        corrector = (lambda xt, s=ts[step]: model_fn(xt, s)) if step < steps else None
        x, model_x = _unipc_update(x, models, lambdas, lam(ts[step]), step_order, bh2, corrector)
        if step < steps:
            models = (models + [model_x])[-order:]
            lambdas = (lambdas + [lam(ts[step])])[-order:]
            report(callback, x, step, ts[step], ts[step], model_x)
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
