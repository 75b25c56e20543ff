"""The values of ComfyUI's custom-sampling sockets and the sampling call they feed.

KSampler bundles four choices that the custom-sampling nodes take apart: the noise (NOISE), the
guided denoiser (GUIDER: model + conditioning + cfg), the sampler (SAMPLER: a table row + its
options) and the sigma list (SIGMAS: a 1-D float tensor). `sample_custom` puts them back together
through `ldm.sample.sample_sigmas`, the same code path KSampler uses, so a custom graph that makes
the same choices as a KSampler gives the same latent bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
from torch import Tensor

from ldm.guidance import CFGDenoiser
from ldm.sample import calculate_sigmas, prepare_noise, sample_sigmas
from ldm.sampling import get_spec

__all__ = ["Sampler", "RandomNoise", "DisableNoise", "Guider", "CFGGuider", "DualCFGGuider",
           "sample_custom", "basic_sigmas", "sd_turbo_sigmas", "split_sigmas", "split_sigmas_denoise",
           "flip_sigmas", "set_first_sigma", "er_sde_options", "add_noise", "extend_intermediate_sigmas",
           "SPACINGS", "percent_to_sigma"]


# ---------------------------------------------------------------------------------------- SAMPLER
@dataclass(frozen=True)
class Sampler:
    """A sampler table row chosen by name, with keyword options for its function (eta, s_noise...)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_spec(self.name)  # an unknown name fails where it is chosen


# ------------------------------------------------------------------------------------------ NOISE
@dataclass(frozen=True)
class RandomNoise:
    """KSampler's initial noise for a seed (per batch_index when the latent has one)."""

    seed: int

    def generate(self, latent: dict) -> Tensor:
        return prepare_noise(latent["samples"], self.seed, latent.get("batch_index"))


@dataclass(frozen=True)
class DisableNoise:
    """No initial noise (zeros); its seed, 0, still seeds the samplers' own noise, as in ComfyUI."""

    seed: int = 0

    def generate(self, latent: dict) -> Tensor:
        samples = latent["samples"]
        return torch.zeros(samples.shape, dtype=samples.dtype, device="cpu")


# ----------------------------------------------------------------------------------------- GUIDER
@dataclass(frozen=True)
class Guider:
    """A model and named conditioning lists; subclasses turn them into denoiser(x, sigma) → x0."""

    model: Any
    conds: dict[str, list]

    def map_conds(self, fn: Callable[[list], list]) -> "Guider":
        """A copy with every conditioning list replaced by fn(list) (e.g. areas resolved)."""
        return replace(self, conds={k: fn(v) for k, v in self.conds.items()})

    def denoiser(self, latent_in: Tensor, mask: Tensor | None) -> Callable[..., Tensor]:
        """denoiser(x, sigma) → guided x0 for this latent (model space) and prepared noise mask."""
        raise NotImplementedError

    def cache_nbytes(self) -> int:
        """Bytes the output cache should charge: the conditioning tensors only; the model belongs to
        (and is counted with) the loader output it came from."""
        def size(v: Any) -> int:
            if isinstance(v, Tensor):
                return v.element_size() * v.nelement()
            if isinstance(v, dict):
                return sum(size(x) for x in v.values())
            if isinstance(v, (list, tuple)):
                return sum(size(x) for x in v)
            return 0
        return 64 + size(list(self.conds.values()))


@dataclass(frozen=True)
class CFGGuider(Guider):
    """uncond + cfg·(cond − uncond) over positive/negative conditioning: KSampler's guidance."""

    cfg: float = 8.0

    @classmethod
    def make(cls, model: Any, positive: list, negative: list, cfg: float) -> "CFGGuider":
        return cls(model, {"positive": positive, "negative": negative}, float(cfg))

    @classmethod
    def basic(cls, model: Any, conditioning: list) -> "CFGGuider":
        """The model's prediction for one conditioning, unguided (cfg 1, no negative): BasicGuider."""
        return cls.make(model, conditioning, [], 1.0)

    def denoiser(self, latent_in: Tensor, mask: Tensor | None) -> Callable[..., Tensor]:
        return CFGDenoiser(self.model, self.conds["positive"], self.conds["negative"], self.cfg,
                           latent_image=latent_in, denoise_mask=mask)


@dataclass(frozen=True)
class DualCFGGuider(Guider):
    """Two guidance scales (ComfyUI's DualCFGGuider): cond1 against cond2, cond2 against negative.

    regular: neg + cfg2·(cond2 − neg) + cfg1·(cond1 − cond2); nested: neg + cfg2·(g − neg) with
    g = cond2 + cfg1·(cond1 − cond2). Predictions a scale of 1 makes unnecessary are skipped
    (regular style), as ComfyUI does.
    """

    cfg1: float = 8.0
    cfg2: float = 8.0
    nested: bool = False

    @classmethod
    def make(cls, model: Any, cond1: list, cond2: list, negative: list, cfg_conds: float,
             cfg_cond2_negative: float, style: str = "regular") -> "DualCFGGuider":
        # cond2 is the "middle" prompt and counts as a negative one (e.g. the refiner's aesthetic score)
        middle = [[c, {**o, "prompt_type": "negative"}] for c, o in cond2]
        return cls(model, {"positive": cond1, "middle": middle, "negative": negative}, float(cfg_conds),
                   float(cfg_cond2_negative), style == "nested")

    def denoiser(self, latent_in: Tensor, mask: Tensor | None) -> Callable[..., Tensor]:
        # each list's own prediction: CFGDenoiser at cfg 1 with no negative skips the uncond pass
        pos, mid, neg = (CFGDenoiser(self.model, self.conds[n], [], 1.0, latent_image=latent_in, denoise_mask=mask)
                         for n in ("positive", "middle", "negative"))
        cfg1, cfg2, nested = self.cfg1, self.cfg2, self.nested

        def denoise(x: Tensor, sigma: Tensor, **extra: Any) -> Tensor:
            extra.pop("capture", None)  # no single uncond to report to CFG++ samplers
            p = pos(x, sigma, **extra)
            if not nested and math.isclose(cfg2, 1.0):
                return p if math.isclose(cfg1, 1.0) else (m := mid(x, sigma, **extra)) + (p - m) * cfg1
            m, n = mid(x, sigma, **extra), neg(x, sigma, **extra)
            if nested:
                return n + cfg2 * (m + (p - m) * cfg1 - n)
            return n + (m - n) * cfg2 + (p - m) * cfg1

        return denoise


def er_sde_options(solver_type: str, max_stage: int, eta: float, s_noise: float) -> dict[str, Any]:
    """er_sde's options for ComfyUI's SamplerER_SDE: "ER-SDE" keeps the solver's own noise scaler;
    "Reverse-time SDE" scales noise by x^(eta+1); "ODE" (or eta 0) turns the noise off."""
    if solver_type == "ODE" or (solver_type == "Reverse-time SDE" and eta == 0):
        eta, s_noise = 0.0, 0.0
    options: dict[str, Any] = {"s_noise": s_noise, "max_stage": max_stage, "noise_scaler": None}
    if solver_type != "ER-SDE":
        options["noise_scaler"] = lambda x: x ** (eta + 1)
    return options


# ------------------------------------------------------------------------------------- sampling
def sample_custom(guider: Guider, sampler: Sampler, sigmas: Tensor, *, noise: Tensor, latent: Tensor, seed: int,
                  noise_mask: Tensor | None = None,
                  callback: Callable[[int, int, Tensor], Any] | None = None) -> tuple[Tensor, Tensor | None]:
    """(raw result, raw x0 prediction of the last step or None when no step ran).

    noise: the NOISE's tensor for this latent; seed: the seed the samplers' own noise (ancestral,
    Brownian) uses. callback as ldm.sample.sample (0-based step, total, model-space x0).
    """
    last: dict[str, Tensor] = {}

    def record(step: int, total: int, x0: Tensor) -> None:
        last["x0"] = x0
        if callback is not None:
            callback(step, total, x0)

    out = sample_sigmas(guider.model, guider.denoiser, noise=noise, latent=latent, sigmas=sigmas,
                        sampler_name=sampler.name, seed=seed, sampler_options=dict(sampler.options),
                        noise_mask=noise_mask, callback=record)
    denoised = guider.model.latent_format.process_out(last["x0"]) if "x0" in last else None
    return out, denoised


# ----------------------------------------------------------------------------------- sigma lists
def basic_sigmas(model_sampling: Any, scheduler: str, steps: int, denoise: float = 1.0) -> Tensor:
    """BasicScheduler: `steps` steps of a named schedule; denoise < 1 keeps the last steps + 1 sigmas
    of int(steps / denoise) steps (KSampler's rule); denoise ≤ 0 → an empty list."""
    total = steps
    if denoise < 1.0:
        if denoise <= 0.0:
            return torch.zeros(0)
        total = int(steps / denoise)
    return calculate_sigmas(model_sampling, scheduler, total)[-(steps + 1):]


def sd_turbo_sigmas(model_sampling: Any, steps: int, denoise: float = 1.0) -> Tensor:
    """SD/SDXL Turbo's schedule: timesteps 999, 899, ..., 99 (ADD's 10 training steps), starting
    10 − int(10·denoise) entries in, `steps` of them, plus a final 0."""
    start = 10 - int(10 * denoise)
    timesteps = torch.flip(torch.arange(1, 11) * 100 - 1, (0,))[start:start + steps]
    sigmas = model_sampling.sigma(timesteps)
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def split_sigmas(sigmas: Tensor, step: int) -> tuple[Tensor, Tensor]:
    """(sigmas up to and including index `step`, sigmas from index `step` on): the two share sigma[step]."""
    return sigmas[:step + 1], sigmas[step:]


def split_sigmas_denoise(sigmas: Tensor, denoise: float) -> tuple[Tensor, Tensor]:
    """Split so the low part holds the last round(steps·denoise) steps.

    Literally ComfyUI's slicing: with 0 low steps the high part is `sigmas[:-0]`, i.e. empty."""
    total = round(max(sigmas.shape[-1] - 1, 0) * denoise)
    return sigmas[:-total], sigmas[-(total + 1):]


def set_first_sigma(sigmas: Tensor, sigma: float) -> Tensor:
    """A copy with sigmas[0] replaced."""
    out = sigmas.clone()
    out[0] = sigma
    return out


def add_noise(model: Any, noise: Tensor, sigmas: Tensor, latent: Tensor) -> Tensor:
    """A raw latent noised to the span of `sigmas` (|first − last|, or the only sigma), as ComfyUI's
    AddNoise: latent + σ·noise in model space (an all-zero latent is not scaled), NaN/inf → 0."""
    if len(sigmas) == 0:
        return latent
    scale = torch.abs(sigmas[0] - sigmas[-1]) if len(sigmas) > 1 else sigmas[0]
    fmt = model.latent_format
    latent_in = fmt.process_in(latent) if torch.count_nonzero(latent) > 0 else latent
    noisy = fmt.process_out(model.sampling.noise_scaling(scale, noise, latent_in))
    return torch.nan_to_num(noisy, nan=0.0, posinf=0.0, neginf=0.0)


# where the inserted sigmas fall between two neighbours, as a function of x ∈ (0, 1)
SPACINGS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "cosine": lambda x: torch.sin(x * math.pi / 2),
    "sine": lambda x: 1 - torch.cos(x * math.pi / 2),
}


def extend_intermediate_sigmas(sigmas: Tensor, steps: int, start_at_sigma: float, end_at_sigma: float,
                               spacing: str) -> Tensor:
    """Inserts steps − 1 sigmas after every sigma in [end_at_sigma, start_at_sigma] (start < 0 = no
    upper bound), spaced between it and the next one by SPACINGS[spacing]."""
    upper = float("inf") if start_at_sigma < 0 else start_at_sigma
    fractions = SPACINGS[spacing](torch.linspace(0, 1, steps + 1, device=sigmas.device)[1:-1])
    out: list[float] = []
    for cur, nxt in zip(sigmas[:-1], sigmas[1:]):
        out.append(float(cur))
        if end_at_sigma <= cur <= upper:
            out.extend((fractions * (nxt - cur) + cur).tolist())
    if len(sigmas) > 0:
        out.append(float(sigmas[-1]))
    return torch.tensor(out, dtype=torch.float32)


def percent_to_sigma(model_sampling: Any, percent: float, actual: bool = False) -> float:
    """The sigma at a fraction of the sampling; at 0 and 1 the interval-check values (a huge sigma,
    0) unless `actual`, then the model's sigma_max / sigma_min."""
    if actual and percent == 0.0:
        return float(model_sampling.sigma_max)
    if actual and percent == 1.0:
        return float(model_sampling.sigma_min)
    return float(model_sampling.percent_to_sigma(percent))


def flip_sigmas(sigmas: Tensor) -> Tensor:
    """The list reversed (for unsampling); a leading 0 becomes 0.0001 so the first step is defined."""
    if len(sigmas) == 0:
        return sigmas
    flipped = sigmas.flip(0)
    if flipped[0] == 0:
        flipped[0] = 0.0001
    return flipped
