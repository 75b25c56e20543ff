"""Samplers in the k-diffusion formulation: pure functions over a denoiser and a sigma list.

`denoiser(x, sigma_batch, **extra_args) -> denoised x0`. Every sampler has the signature
`sample_<name>(denoiser, x, sigmas, *, extra_args=None, callback=None, noise_sampler=None,
seed=None, **opts) -> x` where x is already noised to sigmas[0]. Stochastic samplers draw
ancestral noise from `torch.Generator().manual_seed(seed)` (one randn of x's shape per call)
and SDE samplers from a torchsde Brownian tree seeded with seed, the same sources ComfyUI uses,
so a seed gives the same image. `callback` receives {"x", "i", "sigma", "sigma_hat", "denoised"}.

Notation follows the papers: t = −log σ (the half log-SNR λ), h = t_next − t.
Multistep solvers of higher order live in ldm/samplers_multistep.py.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import Tensor

Denoiser = Callable[..., Tensor]
NoiseSampler = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[dict], Any] | None

__all__ = ["SAMPLERS", "SAMPLER_NAMES", "get_sampler", "default_noise_sampler",
           "BrownianTreeNoiseSampler", "get_ancestral_step", "to_d"]


# ---------------------------------------------------------------------------- helpers
def to_d(x: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    """Probability-flow ODE derivative dx/dσ = (x − D(x, σ)) / σ (Karras et al. eq. 4)."""
    return (x - denoised) / sigma


def get_ancestral_step(sigma_from: Tensor, sigma_to: Tensor, eta: float = 1.0) -> tuple[Tensor, Tensor]:
    """Split a step into a deterministic move to sigma_down and fresh noise of std sigma_up."""
    if not eta:
        return sigma_to, torch.zeros_like(sigma_to)
    up = torch.minimum(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2)
                                        / sigma_from ** 2).clamp(min=0) ** 0.5)
    down = (sigma_to ** 2 - up ** 2).clamp(min=0) ** 0.5
    return down, up


def default_noise_sampler(x: Tensor, seed: int | None = None) -> NoiseSampler:
    """Fresh N(0, I) of x's shape per call from one generator on x's device seeded with the KSampler
    seed (ComfyUI 0.3.64's default_noise_sampler; on the CPU its first draw equals the initial noise.
    ComfyUI later (PR #11528, after 0.3.64) seeds CPU generators with seed + 1 — not done here)."""
    gen = None
    if seed is not None:
        gen = torch.Generator(device=x.device)
        gen.manual_seed(int(seed))
    return lambda sigma, sigma_next: torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=gen)


class BrownianTreeNoiseSampler:
    """Noise from a Brownian motion W over [sigma_min, sigma_max]: (W(σ_next) − W(σ))/√|σ_next − σ|.

    The same Brownian path is queried for every step, so SDE samplers converge as steps grow and
    are reproducible given the seed (torchsde.BrownianTree with entropy=seed).
    """

    def __init__(self, x: Tensor, sigma_min: Tensor | float, sigma_max: Tensor | float,
                 seed: int | None = None) -> None:
        import torchsde

        t0, t1 = float(sigma_min), float(sigma_max)
        self.sign = 1.0
        if t0 > t1:
            t0, t1, self.sign = t1, t0, -1.0
        if seed is None:
            seed = int(torch.randint(0, 2 ** 63 - 1, []).item())
        self.dtype, self.device = x.dtype, x.device
        self.tree = torchsde.BrownianTree(torch.tensor(t0), torch.zeros_like(x, device="cpu"),
                                          torch.tensor(t1), entropy=int(seed))

    def __call__(self, sigma: Tensor, sigma_next: Tensor) -> Tensor:
        # float32 tensors throughout (ComfyUI queries the CPU tree with float32 times and divides by
        # the float32 √|Δσ|), so the increments agree bit for bit.
        t0 = torch.as_tensor(sigma).detach().cpu().float().reshape(())
        t1 = torch.as_tensor(sigma_next).detach().cpu().float().reshape(())
        lo, hi, sign = (t0, t1, 1.0) if t0 < t1 else (t1, t0, -1.0)
        with warnings.catch_warnings():  # torchsde warns about float32 round-off at the interval end
            warnings.simplefilter("ignore", UserWarning)
            w = self.tree(lo, hi).to(device=self.device, dtype=self.dtype) * (self.sign * sign)
        return w / (t1 - t0).abs().sqrt().to(self.device)


def brownian_noise_sampler(x: Tensor, sigmas: Tensor, seed: int | None) -> BrownianTreeNoiseSampler:
    """Tree over [smallest positive sigma, largest sigma] of this schedule (ComfyUI's choice)."""
    return BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seed)


def _setup(x: Tensor, extra_args: dict | None, noise_sampler: NoiseSampler | None, seed: int | None):
    extra = dict(extra_args or {})
    if seed is None:
        seed = extra.pop("seed", None)
    else:
        extra.pop("seed", None)
    ns = noise_sampler or default_noise_sampler(x, seed)
    return extra, ns, x.new_ones([x.shape[0]])


def _report(callback: Callback, x: Tensor, i: int, sigma: Tensor, sigma_hat: Tensor, denoised: Tensor) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def _t(sigma: Tensor) -> Tensor:
    return sigma.log().neg()


def _sigma(t: Tensor) -> Tensor:
    return t.neg().exp()


# ---------------------------------------------------------------------------- Euler family
@torch.no_grad()
def sample_euler(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                 callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                 seed: int | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
                 s_tmax: float = float("inf"), s_noise: float = 1.0) -> Tensor:
    """Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 2, optional churn)."""
    extra, ns, s_in = _setup(x, extra_args, noise_sampler, seed)
    n = len(sigmas) - 1
    for i in range(n):
        sigma = sigmas[i]
        gamma = min(s_churn / n, 2 ** 0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigma * (gamma + 1)
        if gamma > 0:
            x = x + ns(sigma, sigmas[i + 1]) * s_noise * (sigma_hat ** 2 - sigma ** 2) ** 0.5
        denoised = denoiser(x, sigma_hat * s_in, **extra)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigma, sigma_hat, denoised)
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_euler_ancestral(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                           callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                           seed: int | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral Euler: deterministic step to sigma_down, then fresh noise sigma_up (k-diffusion)."""
    extra, ns, s_in = _setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
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
    extra, ns, s_in = _setup(x, extra_args, noise_sampler, seed)
    n = len(sigmas) - 1
    for i in range(n):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        gamma = min(s_churn / n, 2 ** 0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigma * (gamma + 1)
        if gamma > 0:
            x = x + ns(sigma, sigma_next) * s_noise * (sigma_hat ** 2 - sigma ** 2) ** 0.5
        denoised = denoiser(x, sigma_hat * s_in, **extra)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigma, sigma_hat, denoised)
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
    extra, _, s_in = _setup(x, extra_args, noise_sampler, seed)
    s_end = sigmas[-1]
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, **extra)
        d = to_d(x, sigma, denoised)
        _report(callback, x, i, sigma, sigma, denoised)
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
    extra, _, s_in = _setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, **extra)
        d = to_d(x, sigma, denoised)
        _report(callback, x, i, sigma, sigma, denoised)
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
    extra, ns, s_in = _setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        denoised = denoiser(x, sigma * s_in, **extra)
        down, up = get_ancestral_step(sigma, sigmas[i + 1], eta)
        d = to_d(x, sigma, denoised)
        _report(callback, x, i, sigma, sigma, denoised)
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
    from scipy import integrate

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
    extra, _, s_in = _setup(x, extra_args, noise_sampler, seed)
    t = sigmas.detach().cpu().double().numpy()
    ds: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra)
        ds.append(to_d(x, sigmas[i], denoised))
        ds = ds[-order:]
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        cur = min(i + 1, order)
        coeffs = [_lms_coefficient(cur, t, i, j) for j in range(cur)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
    return x


# ---------------------------------------------------------------------------- DPM-Solver++ family
@torch.no_grad()
def sample_dpmpp_2s_ancestral(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                              callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                              seed: int | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral DPM-Solver++(2S), single-step 2nd order (Lu et al. 2022b)."""
    extra, ns, s_in = _setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        denoised = denoiser(x, sigma * s_in, **extra)
        down, up = get_ancestral_step(sigma, sigmas[i + 1], eta)
        _report(callback, x, i, sigma, sigma, denoised)
        if down == 0:
            x = x + to_d(x, sigma, denoised) * (down - sigma)
        else:
            t, t_next = _t(sigma), _t(down)
            h = t_next - t
            s = t + 0.5 * h
            x_2 = (_sigma(s) / _sigma(t)) * x - (-0.5 * h).expm1() * denoised
            denoised_2 = denoiser(x_2, _sigma(s) * s_in, **extra)
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + ns(sigma, sigmas[i + 1]) * s_noise * up
    return x


def _lam(sigma: Tensor) -> Tensor:
    """Half log-SNR λ = log(α/σ) of the VE (eps/v) parameterisation: −log σ."""
    return sigma.log().neg()


@torch.no_grad()
def sample_ddpm(denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, extra_args: dict | None = None,
                callback: Callback = None, noise_sampler: NoiseSampler | None = None,
                seed: int | None = None) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, eq. 11) between arbitrary sigmas, in VP space."""
    extra, ns, s_in = _setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        sigma, sigma_prev = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, **extra)
        _report(callback, x, i, sigma, sigma, denoised)
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
    extra, ns, s_in = _setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + ns(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
    return x


# ---------------------------------------------------------------------------- CFG++ (Chung et al. 2024)
def _guided_and_uncond(denoiser: Denoiser, x: Tensor, sigma: Tensor, extra: dict) -> tuple[Tensor, Tensor]:
    """Guided x0 and the unguided (uncond) x0; a denoiser that does not fill `capture` gives both equal."""
    capture: dict = {}
    denoised = denoiser(x, sigma, **extra, capture=capture)
    return denoised, capture.get("uncond_denoised", denoised)


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
    extra, ns, s_in = _setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised, uncond = _guided_and_uncond(denoiser, x, sigmas[i] * s_in, extra)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        alpha_s = sigmas[i] * _lam(sigmas[i]).exp()
        alpha_t = sigmas[i + 1] * _lam(sigmas[i + 1]).exp()
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
    extra, _, s_in = _setup(x, extra_args, noise_sampler, seed)
    old_uncond = None
    for i in range(len(sigmas) - 1):
        denoised, uncond = _guided_and_uncond(denoiser, x, sigmas[i] * s_in, extra)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        mix = -torch.exp(-h) * uncond
        if old_uncond is not None and sigmas[i + 1] != 0:
            r = (t - _t(sigmas[i - 1])) / h
            mix = mix - torch.expm1(-h) * (1 / (2 * r)) * (denoised - old_uncond)
        x = denoised + mix + torch.exp(-h) * x
        old_uncond = uncond
    return x


def _build_table() -> dict[str, Callable[..., Tensor]]:
    from ldm import samplers_dpmpp as dp
    from ldm import samplers_multistep as ms
    from ldm import samplers_sde as sde

    table = {
        "euler": sample_euler, "euler_ancestral": sample_euler_ancestral, "heun": sample_heun,
        "euler_cfg_pp": sample_euler_cfg_pp, "euler_ancestral_cfg_pp": sample_euler_ancestral_cfg_pp,
        "dpmpp_2m_cfg_pp": sample_dpmpp_2m_cfg_pp,
        "heunpp2": sample_heunpp2, "dpm_2": sample_dpm_2, "dpm_2_ancestral": sample_dpm_2_ancestral,
        "lms": sample_lms, "dpm_fast": ms.sample_dpm_fast, "dpm_adaptive": ms.sample_dpm_adaptive,
        "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral,
        "dpmpp_sde": dp.sample_dpmpp_sde, "dpmpp_sde_gpu": dp.sample_dpmpp_sde,
        "dpmpp_2m": dp.sample_dpmpp_2m, "dpmpp_2m_sde": dp.sample_dpmpp_2m_sde,
        "dpmpp_2m_sde_gpu": dp.sample_dpmpp_2m_sde, "dpmpp_2m_sde_heun": dp.sample_dpmpp_2m_sde_heun,
        "dpmpp_2m_sde_heun_gpu": dp.sample_dpmpp_2m_sde_heun, "dpmpp_3m_sde": dp.sample_dpmpp_3m_sde,
        "dpmpp_3m_sde_gpu": dp.sample_dpmpp_3m_sde, "ddpm": sample_ddpm, "lcm": sample_lcm,
        "ipndm": ms.sample_ipndm, "ipndm_v": ms.sample_ipndm_v, "deis": ms.sample_deis,
        "res_multistep": ms.sample_res_multistep, "res_multistep_cfg_pp": ms.sample_res_multistep_cfg_pp,
        "res_multistep_ancestral": ms.sample_res_multistep_ancestral,
        "res_multistep_ancestral_cfg_pp": ms.sample_res_multistep_ancestral_cfg_pp,
        "gradient_estimation": ms.sample_gradient_estimation,
        "gradient_estimation_cfg_pp": ms.sample_gradient_estimation_cfg_pp,
        "dpmpp_2s_ancestral_cfg_pp": sde.sample_dpmpp_2s_ancestral_cfg_pp, "er_sde": sde.sample_er_sde,
        "seeds_2": sde.sample_seeds_2, "seeds_3": sde.sample_seeds_3, "sa_solver": sde.sample_sa_solver,
        "sa_solver_pece": sde.sample_sa_solver_pece,
        # ComfyUI's ddim is the euler computation (COMPAT.md).
        "ddim": sample_euler, "uni_pc": ms.sample_uni_pc, "uni_pc_bh2": ms.sample_uni_pc_bh2,
    }
    return table


class _SamplerTable(dict):
    """name → sampler function, filled on first use so that ldm.samplers_multistep / samplers_sde
    (which import helpers from this module) can also be imported first."""

    def _fill(self) -> None:
        if not dict.__len__(self):
            self.update(_build_table())

    def __missing__(self, name: str) -> Callable[..., Tensor]:
        self._fill()
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        self._fill()
        return dict.__contains__(self, name)

    def __iter__(self):
        self._fill()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._fill()
        return dict.__len__(self)


SAMPLERS: dict[str, Callable[..., Tensor]] = _SamplerTable()

# ComfyUI 0.3.64's SAMPLER_NAMES order (KSAMPLER_NAMES, then ddim, uni_pc, uni_pc_bh2).
_COMFY_ORDER = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
]
SAMPLER_NAMES: list[str] = list(_COMFY_ORDER)  # every name is implemented (tests check the table)


def get_sampler(name: str) -> Callable[..., Tensor]:
    """The sampler function registered under a ComfyUI sampler name."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLER_NAMES)}")
    return SAMPLERS[name]
