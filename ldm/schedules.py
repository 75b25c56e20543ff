"""Sigma schedules: name → a decreasing list of `steps` sigmas followed by 0.

Each schedule is a published formula (Karras et al. 2022, DDIM, "Align Your Steps", beta
sampling of timesteps, ...) evaluated on a model's sigma table. The names and their order are
ComfyUI's, so workflow files select the same schedule and get the same numbers.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ldm.model_sampling import ModelSampling

__all__ = ["SCHEDULER_NAMES", "get_sigmas", "karras_sigmas", "exponential_sigmas", "polyexponential_sigmas",
           "laplace_sigmas", "vp_sigmas", "beta_sigmas", "AYS_NOISE_LEVELS", "align_your_steps_sigmas"]


def _append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """Karras et al. (2022) eq. 5: sigmas uniform in sigma^(1/rho), plus a final 0."""
    ramp = torch.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential_sigmas(n: int, sigma_min: float, sigma_max: float) -> Tensor:
    """Sigmas uniform in log sigma, plus a final 0."""
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def polyexponential_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> Tensor:
    """k-diffusion's polyexponential schedule: log sigma interpolated along a ramp (1 → 0)^rho, plus 0
    (rho = 1 is the exponential schedule)."""
    ramp = torch.linspace(1, 0, n) ** rho
    log_min = math.log(sigma_min)
    return _append_zero(torch.exp(ramp * (math.log(sigma_max) - log_min) + log_min))


def laplace_sigmas(n: int, sigma_min: float, sigma_max: float, mu: float = 0.0, beta: float = 0.5) -> Tensor:
    """Log sigma at the quantiles of a Laplace(mu, beta) law (Hang et al. 2024), clamped to
    [log sigma_min, log sigma_max], plus 0."""
    u = torch.linspace(0, 1, n)
    lam_ = mu - beta * torch.sign(0.5 - u) * torch.log(1 - 2 * torch.abs(0.5 - u) + 1e-5)
    return _append_zero(lam_.clamp(min=math.log(sigma_min), max=math.log(sigma_max)).exp())


def vp_sigmas(n: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3) -> Tensor:
    """The continuous VP-SDE's sigmas (Song et al. 2021) at times 1 → eps_s, plus 0."""
    t = torch.linspace(1, eps_s, n)
    return _append_zero(torch.sqrt(torch.exp(beta_d * t ** 2 / 2 + beta_min * t) - 1))


def _normal(ms: ModelSampling, steps: int, sgm: bool = False) -> Tensor:
    """Uniform in timestep between t(sigma_max) and t(sigma_min), mapped back through ms.sigma."""
    start = ms.timestep(ms.sigma_max)
    end = ms.timestep(ms.sigma_min)
    append_zero = True
    if sgm:
        ts = torch.linspace(float(start), float(end), steps + 1)[:-1]
    else:
        if math.isclose(float(ms.sigma(end)), 0.0, abs_tol=1e-5):
            steps += 1
            append_zero = False
        ts = torch.linspace(float(start), float(end), steps)
    sigs = [float(ms.sigma(t)) for t in ts]
    if append_zero:
        sigs.append(0.0)
    return torch.tensor(sigs, dtype=torch.float32)


def _simple(ms: ModelSampling, steps: int) -> Tensor:
    """Every (1000/steps)-th entry of the sigma table, counted from the top."""
    stride = len(ms.sigmas) / steps
    sigs = [float(ms.sigmas[-(1 + int(i * stride))]) for i in range(steps)]
    return torch.tensor(sigs + [0.0], dtype=torch.float32)


def _ddim_uniform(ms: ModelSampling, steps: int) -> Tensor:
    """DDIM's uniform timestep skipping (1, 1+k, 1+2k, ...), reversed, ending in 0.

    Like ComfyUI this can yield more than steps+1 values when 1000 is not a multiple of steps
    (e.g. 7 steps → 8 sigmas + 0); workflows rely on that exact list.
    """
    sigs: list[float] = []
    x = 1
    if math.isclose(float(ms.sigmas[x]), 0.0, abs_tol=1e-5):
        steps += 1
    else:
        sigs = [0.0]
    stride = max(len(ms.sigmas) // steps, 1)
    while x < len(ms.sigmas):
        sigs.append(float(ms.sigmas[x]))
        x += stride
    return torch.tensor(sigs[::-1], dtype=torch.float32)


def _beta(ms: ModelSampling, steps: int, alpha: float = 0.6, beta: float = 0.6) -> Tensor:
    """Timesteps at the quantiles of a Beta(0.6, 0.6) law (Lee et al. 2024), duplicates dropped."""
    import scipy.stats  # here, not at the top: scipy.stats costs ~1-2 s to import, only beta needs it

    total = len(ms.sigmas) - 1
    ts = 1 - np.linspace(0, 1, steps, endpoint=False)
    ts = np.rint(scipy.stats.beta.ppf(ts, alpha, beta) * total)
    sigs: list[float] = []
    last = -1.0
    for t in ts:
        if t != last:
            sigs.append(float(ms.sigmas[int(t)]))
        last = t
    return torch.tensor(sigs + [0.0], dtype=torch.float32)


def beta_sigmas(ms: ModelSampling, steps: int, alpha: float = 0.6, beta: float = 0.6) -> Tensor:
    """The "beta" schedule with the Beta law's parameters chosen (BetaSamplingScheduler)."""
    return _beta(ms, int(steps), alpha, beta)


# "Align Your Steps" (Sabour et al. 2024): the published 10-step noise levels per model type.
AYS_NOISE_LEVELS: dict[str, tuple[float, ...]] = {
    "SD1": (14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
            0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582),
    "SDXL": (14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141,
             0.5550693289, 0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582),
    "SVD": (700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002),
}


def align_your_steps_sigmas(model_type: str, steps: int, denoise: float = 1.0) -> Tensor:
    """AYS sigmas for `steps` steps: the published levels, log-linearly resampled when steps ≠ 10
    (float64, as the paper's recipe), the last round(steps·denoise)+1 kept and the final one set to 0.
    denoise ≤ 0 → an empty list (nothing to do)."""
    total = steps
    if denoise < 1.0:
        if denoise <= 0.0:
            return torch.zeros(0)
        total = round(steps * denoise)
    levels = np.array(AYS_NOISE_LEVELS[model_type], dtype=np.float64)
    if steps + 1 != len(levels):
        xs = np.linspace(0, 1, len(levels))
        ys = np.log(levels[::-1])
        levels = np.exp(np.interp(np.linspace(0, 1, steps + 1), xs, ys))[::-1].copy()
    levels = levels[-(total + 1):].copy()
    levels[-1] = 0
    return torch.tensor(levels, dtype=torch.float32)


def _linear_quadratic(ms: ModelSampling, steps: int, threshold_noise: float = 0.025) -> Tensor:
    """Mochi's schedule: linear in the first half up to threshold_noise, quadratic after."""
    if steps == 1:
        sched = [1.0, 0.0]
    else:
        lin = steps // 2
        lin_part = [i * threshold_noise / lin for i in range(lin)]
        step_diff = lin - threshold_noise * steps
        quad = steps - lin
        quad_coef = step_diff / (lin * quad ** 2)
        lin_coef = threshold_noise / lin - 2 * step_diff / (quad ** 2)
        const = quad_coef * lin ** 2
        quad_part = [quad_coef * i ** 2 + lin_coef * i + const for i in range(lin, steps)]
        sched = [1.0 - v for v in lin_part + quad_part + [1.0]]
    return torch.tensor(sched, dtype=torch.float32) * float(ms.sigma_max)


def _kl_optimal(ms: ModelSampling, steps: int) -> Tensor:
    """"Align Your Steps" KL-optimal schedule: uniform in arctan(sigma)."""
    smin, smax = float(ms.sigma_min), float(ms.sigma_max)
    if steps == 1:
        return torch.tensor([smax, 0.0], dtype=torch.float32)
    frac = torch.arange(steps, dtype=torch.float32) / (steps - 1)
    sig = (frac * math.atan(smin) + (1 - frac) * math.atan(smax)).tan()
    return _append_zero(sig)


# ComfyUI 0.3.64's SCHEDULER_HANDLERS order (the first is what a new node shows).
_SCHEDULES: dict[str, Callable[[ModelSampling, int], Tensor]] = {
    "simple": _simple,
    "sgm_uniform": lambda ms, n: _normal(ms, n, sgm=True),
    "karras": lambda ms, n: karras_sigmas(n, float(ms.sigma_min), float(ms.sigma_max)),
    "exponential": lambda ms, n: exponential_sigmas(n, float(ms.sigma_min), float(ms.sigma_max)),
    "ddim_uniform": _ddim_uniform,
    "beta": _beta,
    "normal": _normal,
    "linear_quadratic": _linear_quadratic,
    "kl_optimal": _kl_optimal,
}

SCHEDULER_NAMES: list[str] = list(_SCHEDULES)


def get_sigmas(name: str, model_sampling: ModelSampling, steps: int) -> Tensor:
    """Sigmas (float32, CPU) of schedule `name` for `steps` steps, last value 0."""
    if name not in _SCHEDULES:
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULER_NAMES)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return _SCHEDULES[name](model_sampling, int(steps))
