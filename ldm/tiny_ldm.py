"""Tiny checkpoints of the Latent Diffusion paper's own model family, in CompVis' key layouts.

- `tiny_uncond_ldm`: an unconditional LDM (the CelebA-HQ / FFHQ / LSUN layout): UNet with plain
  self-attention AttentionBlocks (`….1.norm/qkv/proj_out`, no SpatialTransformer, no context) on a
  VQ-f4 first stage (3-channel latents), no cond stage.
- `tiny_cin_ldm`: a class-conditional LDM (the cin256 layout): SpatialTransformer UNet whose
  context is one token from `cond_stage_model.embedding.weight` (10 classes + the "no class" row),
  on VQ-f4.
Both carry the `betas` / `alphas_cumprod` buffers LDM files store (linear 0.0015 → 0.0195).
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from ldm.configs import UNetConfig
from ldm.model_sampling import make_betas
from ldm.tiny import UNET_PREFIX, VAE_PREFIX, _prefixed, tiny_unet
from ldm.tiny_first_stage import tiny_first_stage

_UNET = dict(in_channels=3, out_channels=3, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
             transformer_depth=(0, 1), transformer_depth_middle=1, num_heads=-1, num_head_channels=16,
             norm_groups=8)
TINY_LDMS = {
    "tiny_uncond_ldm": UNetConfig(attention="legacy", context_dim=0, **_UNET),
    "tiny_cin_ldm": UNetConfig(context_dim=16, **_UNET),
}
CIN_CLASSES = 11  # 10 classes + "no class"


def _schedule() -> dict[str, Tensor]:
    betas = make_betas("linear", 1000, 0.0015, 0.0195)
    return {"betas": betas.float(), "alphas_cumprod": torch.cumprod(1 - betas, 0).float()}


def tiny_ldm_state_dict(name: str, seed: int = 0) -> dict[str, Tensor]:
    """The whole checkpoint of one of TINY_LDMS."""
    sd = _prefixed(tiny_unet(TINY_LDMS[name], 50 + seed), UNET_PREFIX)
    sd.update(_prefixed(tiny_first_stage("tiny_vq_f4", 60 + seed), VAE_PREFIX))
    if name == "tiny_cin_ldm":
        gen = torch.Generator().manual_seed(70 + seed)
        sd["cond_stage_model.embedding.weight"] = torch.randn(CIN_CLASSES, 16, generator=gen)
    sd.update(_schedule())
    return sd


def write_tiny_ldm(name: str, path: str | Path, seed: int = 0) -> Path:
    """One of TINY_LDMS as an fp16 safetensors file (schedule buffers kept in fp32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.half() if v.is_floating_point() and k not in ("betas", "alphas_cumprod") else v)
          .contiguous() for k, v in tiny_ldm_state_dict(name, seed).items()}
    save_file(sd, str(path), metadata={"format": "pt"})
    return path
