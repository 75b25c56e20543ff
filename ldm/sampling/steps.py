"""Building blocks every sampler shares: the ODE derivative, the ancestral split, noise sources,
the half log-SNR, the per-step callback and the CFG++ uncond query.

A sampler is `sample_<name>(denoiser, x, sigmas, *, extra_args=None, callback=None,
noise_sampler=None, seed=None, **opts) -> x`, x already noised to sigmas[0] and
`denoiser(x, sigma_batch, **extra_args) -> x0`. Ancestral noise comes from
`torch.Generator().manual_seed(seed)` (one randn of x's shape per call) and SDE noise from a
torchsde Brownian tree seeded with seed — the sources ComfyUI uses, so a seed gives the same image.
`callback` receives {"x", "i", "sigma", "sigma_hat", "denoised"}.

Notation follows the papers: λ = −log σ (the half log-SNR of the eps/v parameterisation, also
written t), h = λ_next − λ.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
import torchsde
from torch import Tensor

Denoiser = Callable[..., Tensor]
NoiseSampler = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[dict], Any] | None

__all__ = ["Denoiser", "NoiseSampler", "Callback", "to_d", "get_ancestral_step", "default_noise_sampler",
           "BrownianTreeNoiseSampler", "brownian_noise_sampler", "setup", "sde_setup", "report", "lam",
           "sigma_at", "guided_and_uncond"]


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


def lam(sigma: Tensor) -> Tensor:
    """Half log-SNR λ = log(α/σ) of the VE (eps/v) parameterisation: −log σ."""
    return sigma.log().neg()


def sigma_at(lam_: Tensor) -> Tensor:
    """σ for a half log-SNR λ (the inverse of `lam`)."""
    return lam_.neg().exp()


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


def _resolve_seed(extra_args: dict | None, seed: int | None) -> tuple[dict, int | None]:
    """extra_args without "seed", and the seed (the argument wins over extra_args["seed"])."""
    extra = dict(extra_args or {})
    from_extra = extra.pop("seed", None)
    return extra, from_extra if seed is None else seed


def setup(x: Tensor, extra_args: dict | None, noise_sampler: NoiseSampler | None,
          seed: int | None) -> tuple[dict, NoiseSampler, Tensor]:
    """(denoiser kwargs, ancestral noise sampler, per-sample ones for σ batches) for one run."""
    extra, seed = _resolve_seed(extra_args, seed)
    return extra, noise_sampler or default_noise_sampler(x, seed), x.new_ones([x.shape[0]])


def sde_setup(x: Tensor, sigmas: Tensor, extra_args: dict | None, noise_sampler: NoiseSampler | None,
              seed: int | None) -> tuple[dict, NoiseSampler, Tensor]:
    """Like `setup`, the noise from a Brownian tree over this schedule (the SDE samplers' source)."""
    extra, seed = _resolve_seed(extra_args, seed)
    return extra, noise_sampler or brownian_noise_sampler(x, sigmas, seed), x.new_ones([x.shape[0]])


def report(callback: Callback, x: Tensor, i: int, sigma: Tensor, sigma_hat: Tensor, denoised: Tensor) -> None:
    """Tell the caller about step i (the x0 estimate is what previews show)."""
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def guided_and_uncond(denoiser: Denoiser, x: Tensor, sigma: Tensor, extra: dict) -> tuple[Tensor, Tensor]:
    """Guided x0 and the unguided (uncond) x0 for CFG++; a denoiser that does not fill `capture`
    (no guidance) gives both equal."""
    capture: dict = {}
    denoised = denoiser(x, sigma, **extra, capture=capture)
    return denoised, capture.get("uncond_denoised", denoised)
