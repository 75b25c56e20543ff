"""The KSampler computation: noise, sigmas, guidance, sampler, inpainting mask — ComfyUI semantics.

`sample(model, ...)` takes and returns **raw** VAE latents (ARCHITECTURE.md §1); inside, the
latent is moved to model space with `model.latent_format.process_in` (an all-zero latent stays
zero, as in ComfyUI), noised to the first sigma, denoised with CFGDenoiser + the chosen sampler,
and moved back with `process_out`. Everything runs inside `with model.patched():` so LoRA
patches are applied exactly for the duration of sampling.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ldm.guidance import CFGDenoiser
from ldm.sampling import SAMPLER_NAMES, SamplerSpec, get_sampler, get_spec
from ldm.schedules import SCHEDULER_NAMES, get_sigmas
from ldm.upscale_x4 import SAMPLING_SEED

__all__ = ["SAMPLER_NAMES", "SCHEDULER_NAMES", "get_sampler", "prepare_noise", "calculate_sigmas",
           "ksampler_sigmas", "sample", "sample_sigmas"]


def prepare_noise(latent_samples: Tensor, seed: int, batch_index: list[int] | None = None) -> Tensor:
    """Initial noise, bit-identical to ComfyUI: one CPU randn of the latent's shape from manual_seed(seed).

    With batch_index, one [1, ...] draw per index 0..max(batch_index) in order and the listed ones
    picked, so image k of a batch gets the same noise as when it is generated alone at index k.
    """
    gen = torch.manual_seed(int(seed))
    shape = list(latent_samples.shape)
    if batch_index is None:
        return torch.randn(shape, dtype=torch.float32, generator=gen, device="cpu")
    wanted = sorted(set(int(i) for i in batch_index))
    draws: dict[int, Tensor] = {}
    for i in range(wanted[-1] + 1):
        n = torch.randn([1] + shape[1:], dtype=torch.float32, generator=gen, device="cpu")
        if i in wanted:
            draws[i] = n
    return torch.cat([draws[int(i)] for i in batch_index], dim=0)


def calculate_sigmas(model_sampling: Any, scheduler: str, steps: int, sampler_name: str = "") -> Tensor:
    """Schedule sigmas for `steps` steps (one extra, penultimate dropped, for samplers whose table
    row says discard_penultimate; an empty sampler_name means none)."""
    if sampler_name and get_spec(sampler_name).discard_penultimate:
        sigmas = get_sigmas(scheduler, model_sampling, steps + 1)
        return torch.cat([sigmas[:-2], sigmas[-1:]])
    return get_sigmas(scheduler, model_sampling, steps)


def ksampler_sigmas(model_sampling: Any, scheduler: str, sampler_name: str, steps: int, denoise: float = 1.0,
                    start_step: int | None = None, last_step: int | None = None,
                    force_full_denoise: bool = True) -> Tensor:
    """KSampler's sigma list: denoise < 1 keeps the last steps+1 sigmas of int(steps/denoise) steps;
    last_step cuts the tail (its sigma set to 0 with force_full_denoise); start_step cuts the head.
    An empty tensor means "nothing to do" (denoise 0 or start_step past the end)."""
    if denoise is None or denoise > 0.9999:
        sigmas = calculate_sigmas(model_sampling, scheduler, steps, sampler_name)
    elif denoise <= 0.0:
        return torch.zeros(0)
    else:
        sigmas = calculate_sigmas(model_sampling, scheduler, int(steps / denoise), sampler_name)[-(steps + 1):]
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[:last_step + 1].clone()
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step >= len(sigmas) - 1:
            return torch.zeros(0)
        sigmas = sigmas[start_step:]
    return sigmas


def _prepare_mask(mask: Tensor, like: Tensor) -> Tensor:
    """Noise mask → [B, C, h, w]: bilinear to the latent size, broadcast over channels and batch."""
    m = mask.float().reshape((-1, 1) + tuple(mask.shape[-2:]))
    m = F.interpolate(m, size=like.shape[-2:], mode="bilinear", align_corners=False)
    m = m.expand(-1, like.shape[1], -1, -1)
    reps = -(-like.shape[0] // m.shape[0])
    return m.repeat(reps, 1, 1, 1)[:like.shape[0]].to(like.device)


def _inpaint_denoiser(inner: Callable, ms: Any, mask: Tensor, noise: Tensor, latent: Tensor) -> Callable:
    """Keep the known region (mask 0): its input is the original latent noised to the current
    sigma and its output the original latent, so every sampler repaints only where mask is 1."""
    keep = 1.0 - mask

    def denoise(x: Tensor, sigma: Tensor, **extra: Any) -> Tensor:
        x = x * mask + ms.noise_scaling(sigma.reshape(-1)[:1], noise, latent) * keep
        return inner(x, sigma, **extra) * mask + latent * keep

    return denoise


def _inpaint_noise(sampler_name: str, noise: Tensor, seed: int) -> Tensor:
    """Noise that re-noises the known region: the initial noise, or for samplers flagged
    fresh_inpaint_noise (ComfyUI's "ddim", euler with *random* inpainting noise) a fresh CPU randn
    from manual_seed(seed + 1)."""
    if not get_spec(sampler_name).fresh_inpaint_noise:
        return noise
    fresh = torch.randn(noise.shape, dtype=torch.float32, generator=torch.manual_seed(int(seed) + 1), device="cpu")
    return fresh.to(noise.device)


def _step_callback(callback: Callable | None, total: int) -> Callable | None:
    """Sampler callback dict → callback(step, total, x0), step = the sampler's 0-based index (as ComfyUI;
    the caller reports step + 1 of total)."""
    if callback is None:
        return None

    def report(info: dict) -> None:
        callback(min(int(info["i"]), total - 1), total, info["denoised"])

    return report


def sample(model: Any, *, noise: Tensor | None, latent: Tensor, positive: list, negative: list, cfg: float,
           sampler_name: str, scheduler: str, steps: int, seed: int, denoise: float = 1.0,
           start_step: int | None = None, last_step: int | None = None, force_full_denoise: bool = True,
           disable_noise: bool = False, noise_mask: Tensor | None = None,
           callback: Callable[[int, int, Tensor], Any] | None = None,
           sampler_options: Mapping[str, Any] | None = None) -> Tensor:
    """KSampler / KSamplerAdvanced: denoise a raw latent and return the raw result.

    noise: from prepare_noise (None → prepare_noise(latent, seed)); disable_noise → zeros
    (KSamplerAdvanced add_noise=disable). callback(step, total, x0) gets the 0-based step index and
    the model-space x0 at every step; an exception raised from it propagates (interrupt).
    sampler_options: keyword arguments for the sampler function over its table row's `options`
    (e.g. {"eta": 0.3} for ddim_eta); the KSampler nodes pass none.
    """
    get_spec(sampler_name)  # unknown names fail before any work
    sigmas = ksampler_sigmas(model.sampling, scheduler, sampler_name, steps, denoise, start_step, last_step,
                             force_full_denoise)
    if disable_noise:
        noise = torch.zeros_like(latent, dtype=torch.float32)

    def guide(latent_in: Tensor, mask: Tensor | None) -> Callable:
        return CFGDenoiser(model, positive, negative, cfg, latent_image=latent_in, denoise_mask=mask)

    return sample_sigmas(model, guide, noise=noise, latent=latent, sigmas=sigmas, sampler_name=sampler_name,
                         seed=seed, sampler_options=sampler_options, noise_mask=noise_mask, callback=callback)


def sample_sigmas(model: Any, make_denoiser: Callable[[Tensor, Tensor | None], Callable], *, noise: Tensor | None,
                  latent: Tensor, sigmas: Tensor, sampler_name: str, seed: int,
                  sampler_options: Mapping[str, Any] | None = None, noise_mask: Tensor | None = None,
                  callback: Callable[[int, int, Tensor], Any] | None = None) -> Tensor:
    """Sample a raw latent over a given sigma list (KSampler and the custom-sampling nodes share it).

    make_denoiser(latent_in, mask) builds the guided `denoiser(x, sigma) -> x0` (latent_in: the
    model-space input latent, mask: the prepared noise mask or None); sampler_options override the
    table row's `options` for the sampler function (eta, s_noise, ...). An empty sigma list returns
    the input latent.
    """
    spec = get_spec(sampler_name)
    if sigmas.numel() == 0:
        return latent.clone()
    latent = latent.float()
    if noise is None:
        noise = prepare_noise(latent, seed)
    noise = noise.to(latent.device, torch.float32)
    fmt = model.latent_format
    latent_in = fmt.process_in(latent) if torch.count_nonzero(latent) > 0 else latent
    mask = _prepare_mask(noise_mask, latent) if noise_mask is not None else None
    token = SAMPLING_SEED.set(int(seed))  # conditioning that draws its own noise (x4 upscaler)
    try:
        with model.patched():
            x = _run(model, spec, make_denoiser(latent_in, mask), sigmas, noise, latent_in, mask, seed,
                     callback, sampler_options or {})
    finally:
        SAMPLING_SEED.reset(token)
    return fmt.process_out(x)


def _run(model: Any, spec: SamplerSpec, denoiser: Callable, sigmas: Tensor, noise: Tensor, latent_in: Tensor,
         mask: Tensor | None, seed: int, callback: Callable | None, sampler_options: Mapping[str, Any]) -> Tensor:
    ms = model.sampling
    sigma_max, sigma0 = float(ms.sigma_max), float(sigmas[0])
    max_denoise = math.isclose(sigma_max, sigma0, rel_tol=1e-5) or sigma0 > sigma_max
    keep_noise = _inpaint_noise(spec.name, noise, seed) if mask is not None else noise
    if mask is not None:
        denoiser = _inpaint_denoiser(denoiser, ms, mask, keep_noise, latent_in)
    x = ms.noise_scaling(sigmas[0], noise, latent_in, max_denoise)
    report = _step_callback(callback, len(sigmas) - 1)
    opts = {**spec.options, **sampler_options}
    if spec.needs_model_sampling:
        opts["model_sampling"] = ms
    x = spec.fn(denoiser, x, sigmas, extra_args={}, callback=report, seed=seed, **opts)
    # No blend of the known region afterwards: like ComfyUI, only the denoiser's input and output
    # are masked, so the sampler's own last state is the result (soft masks and leftover noise too).
    return ms.inverse_noise_scaling(sigmas[-1], x)
