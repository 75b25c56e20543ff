"""Tiny checkpoints in the key layouts of models we refuse (see ldm.unsupported).

Each builder returns a state dict shaped like the real file in miniature: the same prefixes and
the same distinguishing tensors (a 5-channel conv_in for SD2 depth, `embedder.*` and
`noise_augmentor.*` for unCLIP, ...),
so tests show that those files are refused instead of being run as plain SD.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from ldm.tiny import (TINY_SPECS, UNET_PREFIX, VAE_PREFIX, _prefixed, tiny_state_dict, tiny_unet,
                      tiny_vae)
from ldm.tiny_text import text_encoder_state_dict


def _rand(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 0.02


def _sd2_like(seed: int, **unet_changes) -> dict[str, Tensor]:
    """tiny_sd2v with a changed UNet (same VAE and OpenCLIP text encoder)."""
    spec = TINY_SPECS["tiny_sd2v"]
    sd = {k: v for k, v in tiny_state_dict("tiny_sd2v").items() if not k.startswith(UNET_PREFIX)}
    sd.update(_prefixed(tiny_unet(spec.unet.replace(**unet_changes), seed), UNET_PREFIX))
    return sd


def sd2_depth() -> dict[str, Tensor]:
    """SD2 depth-to-image: conv_in takes latent + depth (5 channels), MiDaS under depth_model.*."""
    sd = _sd2_like(31, in_channels=5)
    sd["depth_model.model.pretrained.model.patch_embed.proj.weight"] = _rand(16, 3, 4, 4, seed=1)
    sd["depth_model.model.scratch.output_conv.4.weight"] = _rand(1, 8, 1, 1, seed=2)
    return sd


def sd21_unclip() -> dict[str, Tensor]:
    """SD2.1 unCLIP: UNet label_emb for the image embedding, CLIP vision embedder, noise augmentor."""
    sd = _sd2_like(32, adm_in_channels=2 * 48)
    sd["embedder.model.visual.conv1.weight"] = _rand(48, 3, 14, 14, seed=3)
    sd["embedder.model.visual.proj"] = _rand(48, 48, seed=4)
    sd["noise_augmentor.betas"] = torch.linspace(1e-4, 2e-2, 1000)
    sd["noise_augmentor.data_mean"] = _rand(1, 48, seed=5)
    sd["noise_augmentor.data_std"] = _rand(1, 48, seed=6).abs() + 1
    return sd


_TRANSFORMER = re.compile(r"^(model\.diffusion_model\.(?:(?:input_blocks|output_blocks)\.\d+|middle_block)"
                          r"\.1)\.(.+)$")


def unconditional_ldm() -> dict[str, Tensor]:
    """An unconditional LDM: the UNet has plain self-attention blocks (norm/qkv/proj_out) where SD
    has SpatialTransformers, and the file has no cond stage."""
    sd: dict[str, Tensor] = {}
    for key, value in _prefixed(tiny_unet(TINY_SPECS["tiny_sd1"].unet, 34), UNET_PREFIX).items():
        m = _TRANSFORMER.match(key)
        if m is None:
            sd[key] = value
        elif m.group(2) in ("norm.weight", "norm.bias"):
            sd[key] = value
        elif m.group(2) == "proj_in.weight":
            ch = value.shape[0]
            sd[m.group(1) + ".qkv.weight"] = _rand(3 * ch, ch, 1, seed=ch)
            sd[m.group(1) + ".qkv.bias"] = torch.zeros(3 * ch)
            sd[m.group(1) + ".proj_out.weight"] = _rand(ch, ch, 1, seed=ch + 1)
            sd[m.group(1) + ".proj_out.bias"] = torch.zeros(ch)
    sd.update(_prefixed(tiny_vae(134), VAE_PREFIX))
    return sd


VARIANTS = {"tiny_sd21_unclip": sd21_unclip}


def write_variant(name: str, path: str | Path) -> Path:
    """Write one of VARIANTS as an fp16 safetensors file (as published files mostly are)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.half() if v.is_floating_point() else v).contiguous()
          for k, v in VARIANTS[name]().items()}
    save_file(sd, str(path), metadata={"format": "pt"})
    return path
