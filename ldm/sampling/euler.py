"""The first k-diffusion samplers (Karras et al. 2022, "Elucidating the Design Space"): Euler, Heun,
Heun++, DPM-2 and their ancestral forms, and linear multistep (LMS), in σ as the time variable."""
from __future__ import annotations

import torch
from torch import Tensor

from ldm.sampling.steps import (Callback, Denoiser, NoiseSampler, get_ancestral_step, report, setup,
                                to_d)


@torch.no_grad()
def sample_euler(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                 callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                 seed: int | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
                 s_tmax: float = float("inf"), s_noise: float = 1.0) -> Tensor:
    """Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 2, optional churn)."""
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    n = len(sigmas) - 1
    for i in range(n):
        sigma = sigmas[i]
        gamma = min(s_churn / n, 2 ** 0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigma * (gamma + 1)
        if gamma > 0:
            x = x + ns(sigma, sigmas[i + 1]) * s_noise * (sigma_hat ** 2 - sigma ** 2) ** 0.5
        denoised = denoiser(x, sigma_hat * s_in, **extra)
        d = to_d(x, sigma_hat, denoised)
        report(callback, x, i, sigma, sigma_hat, denoised)
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_euler_ancestral(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                           callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                           seed: int | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral Euler: deterministic step to sigma_down, then fresh noise sigma_up (k-diffusion)."""
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        down, up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        x = x + to_d(x, sigmas[i], denoised) * (down - sigmas[i])
        x = x + ns(sigmas[i], sigmas[i + 1]) * s_noise * up
    return x


@torch.no_grad()
def sample_heun(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                seed: int | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
                s_tmax: float = float("inf"), s_noise: float = 1.0) -> Tensor:
    """Heun's 2nd-order method (Karras et al. 2022, Algorithm 2); Euler on the last step to 0."""
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    n = len(sigmas) - 1
    for i in range(n):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        gamma = min(s_churn / n, 2 ** 0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigma * (gamma + 1)
        if gamma > 0:
            x = x + ns(sigma, sigma_next) * s_noise * (sigma_hat ** 2 - sigma ** 2) ** 0.5
        denoised = denoiser(x, sigma_hat * s_in, **extra)
        d = to_d(x, sigma_hat, denoised)
        report(callback, x, i, sigma, sigma_hat, denoised)
        dt = sigma_next - sigma_hat
        if sigma_next == 0:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, sigma_next, denoiser(x_2, sigma_next * s_in, **extra))
        x = x + (d + d_2) / 2 * dt
    return x


@torch.no_grad()
def sample_heunpp2(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                   callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                   seed: int | None = None) -> Tensor:
    """Heun++ (ComfyUI's heunpp2): Heun with up to three slopes weighted by sigma/(k·sigma_0)."""
    extra, _, s_in = setup(x, extra_args, noise_sampler, seed)
    s_end = sigmas[-1]
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, **extra)
        d = to_d(x, sigma, denoised)
        report(callback, x, i, sigma, sigma, denoised)
        dt = sigma_next - sigma
        if sigma_next == s_end:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, sigma_next, denoiser(x_2, sigma_next * s_in, **extra))
        if sigmas[i + 2] == s_end:
            w2 = sigma_next / (2 * sigmas[0])
            x = x + (d * (1 - w2) + d_2 * w2) * dt
            continue
        x_3 = x_2 + d_2 * (sigmas[i + 2] - sigma_next)
        d_3 = to_d(x_3, sigmas[i + 2], denoiser(x_3, sigmas[i + 2] * s_in, **extra))
        w2, w3 = sigma_next / (3 * sigmas[0]), sigmas[i + 2] / (3 * sigmas[0])
        x = x + ((1 - w2 - w3) * d + w2 * d_2 + w3 * d_3) * dt
    return x


@torch.no_grad()
def sample_dpm_2(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                 callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                 seed: int | None = None) -> Tensor:
    """DPM-Solver-2 style midpoint method in log sigma (Karras et al. 2022, k-diffusion's dpm_2)."""
    extra, _, s_in = setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, **extra)
        d = to_d(x, sigma, denoised)
        report(callback, x, i, sigma, sigma, denoised)
        if sigma_next == 0:
            x = x + d * (sigma_next - sigma)
            continue
        sigma_mid = sigma.log().lerp(sigma_next.log(), 0.5).exp()
        x_2 = x + d * (sigma_mid - sigma)
        d_2 = to_d(x_2, sigma_mid, denoiser(x_2, sigma_mid * s_in, **extra))
        x = x + d_2 * (sigma_next - sigma)
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                           callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                           seed: int | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral DPM-2: midpoint step to sigma_down, then fresh noise (k-diffusion)."""
    extra, ns, s_in = setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        denoised = denoiser(x, sigma * s_in, **extra)
        down, up = get_ancestral_step(sigma, sigmas[i + 1], eta)
        d = to_d(x, sigma, denoised)
        report(callback, x, i, sigma, sigma, denoised)
        if down == 0:
            x = x + d * (down - sigma)
        else:
            sigma_mid = sigma.log().lerp(down.log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigma)
            d_2 = to_d(x_2, sigma_mid, denoiser(x_2, sigma_mid * s_in, **extra))
            x = x + d_2 * (down - sigma)
        if sigmas[i + 1] > 0:
            x = x + ns(sigma, sigmas[i + 1]) * s_noise * up
    return x


def _lms_coefficient(order: int, t, i: int, j: int) -> float:
    """∫ over [t_i, t_{i+1}] of the Lagrange basis polynomial j through t_i, t_{i−1}, ... (scipy quad)."""
    from scipy import integrate  # here, not at the top: scipy.integrate costs ~1 s to import

    def basis(tau: float) -> float:
        prod = 1.0
        for k in range(order):
            if k != j:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod

    return integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0]


@torch.no_grad()
def sample_lms(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
               callback: Callback = None, noise_sampler: NoiseSampler | None = None,
               seed: int | None = None, order: int = 4) -> Tensor:
    """Linear multistep (Adams–Bashforth in sigma) with numerically integrated coefficients;
    the step to σ = 0 returns the denoised estimate (ComfyUI's "denoising step")."""
    extra, _, s_in = setup(x, extra_args, noise_sampler, seed)
    t = sigmas.detach().cpu().double().numpy()
    ds: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra)
        ds.append(to_d(x, sigmas[i], denoised))
        ds = ds[-order:]
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        cur = min(i + 1, order)
        coeffs = [_lms_coefficient(cur, t, i, j) for j in range(cur)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
    return x
