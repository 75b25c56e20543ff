"""Latents of any channel count and downscale factor (the LDM zoo: KL/VQ at f4…f32, 3…16 channels).

A LATENT dict from a first stage whose factor is not SD's 8 says so under ComfyUI's key
`downscale_ratio_spacial`; pixel-unit inputs of the latent nodes (crop, composite, area) divide by
that factor. Empty Latent Image has no model to ask, so like ComfyUI it always makes 4 channels at
1/8; the samplers turn such an all-zero latent into the model's own latent space (channels, and
size for the same pixel size) before sampling, as ComfyUI's `fix_empty_latent_channels` does for
channels.
"""
from __future__ import annotations

from typing import Any

import torch

FACTOR_KEY = "downscale_ratio_spacial"
SD_FACTOR = 8


def factor_of(latent: dict) -> int:
    """Pixels per latent cell of this LATENT (8 unless its first stage said otherwise)."""
    return int(latent.get(FACTOR_KEY, SD_FACTOR))


def with_factor(latent: dict, factor: int) -> dict:
    """The LATENT dict marked with its factor (SD's 8 is left implicit, as ComfyUI's dicts are)."""
    out = dict(latent)
    if factor != SD_FACTOR:
        out[FACTOR_KEY] = int(factor)
    else:
        out.pop(FACTOR_KEY, None)
    return out


def model_latent_space(model: Any) -> tuple[int, int] | None:
    """(channels, factor) of the latent a MODEL denoises, or None for a stand-in without a config."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "latent_channels"):
        return None
    vae = getattr(config, "vae", None)
    return int(config.latent_channels), int(vae.downscale_ratio) if vae is not None else SD_FACTOR


def fit_empty_latent(model: Any, latent: dict) -> dict:
    """An all-zero LATENT (Empty Latent Image) reshaped to the model's latent space; any other
    latent is returned unchanged (its content came from this or another first stage)."""
    space = model_latent_space(model)
    samples = latent["samples"]
    if space is None or samples.ndim != 4 or torch.count_nonzero(samples) != 0:
        return latent
    channels, factor = space
    have = factor_of(latent)
    b, c, h, w = samples.shape
    size = (max(1, h * have // factor), max(1, w * have // factor))
    if c == channels and size == (h, w):
        return latent
    out = with_factor(latent, factor)
    out["samples"] = torch.zeros((b, channels, *size), dtype=samples.dtype)
    return out
