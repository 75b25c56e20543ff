"""Tiny first stages of the Latent Diffusion model zoo, in the real key layouts.

The LDM paper trained KL- and VQ-regularised autoencoders at factors 4 to 32 (configs
`kl-f4/f8/f16/f32`, `vq-f4/f8/f16`, `vq-f4-noattn`). Their files share SD's `encoder.*`/`decoder.*`
naming; what differs is the depth (one level per factor of 2), attention inside the levels named by
`attn_resolutions` (`encoder.down.{i}.attn.{j}.*`, `decoder.up.{i}.attn.{j}.*`), no mid attention
for `attn_type: none`, and for VQ the codebook `quantize.embedding.weight` with a single-width
`quant_conv`. These miniatures keep exactly those traits at small widths so that detection,
loading, encode/decode and latents of other channel counts and factors are tested offline.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from ldm.configs import VAEConfig
from ldm.tiny import TINY_SPECS, UNET_PREFIX, VAE_PREFIX, _prefixed, _seeded, tiny_state_dict, tiny_unet
from ldm.vq import first_stage_class

_SMALL = dict(ch=16, num_res_blocks=1, norm_groups=8)

# Real counterparts: kl-f4 (z=3), kl-f8 (z=4), kl-f16 (z=16, attention at level 4), kl-f32
# (z=64, attention at levels 4 and 5); vq-f4 (3 × 8192 codes), vq-f4-noattn, vq-f8 (4 × 16384,
# attention at level 3), vq-f16 (8 × 16384, attention at level 4).
TINY_FIRST_STAGES: dict[str, VAEConfig] = {
    "tiny_kl_f4": VAEConfig(ch_mult=(1, 2, 2), z_channels=3, embed_dim=3, **_SMALL),
    "tiny_kl_f16": VAEConfig(ch_mult=(1, 1, 2, 2, 2), z_channels=8, embed_dim=8,
                             attn_levels=(4,), **_SMALL),
    "tiny_kl_f32": VAEConfig(ch_mult=(1, 1, 2, 2, 2, 2), z_channels=16, embed_dim=16,
                             attn_levels=(4, 5), **_SMALL),
    "tiny_vq_f4": VAEConfig(ch_mult=(1, 2, 2), z_channels=3, embed_dim=3, kind="vq", n_embed=64,
                            **_SMALL),
    "tiny_vq_f4_noattn": VAEConfig(ch_mult=(1, 2, 2), z_channels=3, embed_dim=3, kind="vq",
                                   n_embed=64, mid_attn=False, **_SMALL),
    "tiny_vq_f8": VAEConfig(ch_mult=(1, 2, 2, 4), z_channels=4, embed_dim=4, kind="vq", n_embed=64,
                            attn_levels=(3,), **_SMALL),
    "tiny_vq_f16": VAEConfig(ch_mult=(1, 1, 2, 2, 4), z_channels=8, embed_dim=8, kind="vq",
                             n_embed=64, attn_levels=(4,), **_SMALL),
}


@torch.no_grad()
def tiny_first_stage(name: str, seed: int = 0) -> nn.Module:
    """A seeded random first stage of one of TINY_FIRST_STAGES (VQ codebooks spread like the
    encoder's outputs, so quantisation picks many different entries)."""
    cfg = TINY_FIRST_STAGES[name]
    module = _seeded(first_stage_class(cfg), cfg, 300 + seed)
    if cfg.kind == "vq":
        gen = torch.Generator().manual_seed(400 + seed)
        module.quantize.embedding.weight.copy_(torch.randn(cfg.n_embed, cfg.embed_dim, generator=gen) * 0.3)
    return module


def _fp16(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()}


def write_first_stage(name: str, path: str | Path, seed: int = 0) -> Path:
    """A standalone first-stage file (plain `encoder.*`/`decoder.*` keys, as vae/ files are)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(_fp16(_prefixed(tiny_first_stage(name, seed), "")), str(path), metadata={"format": "pt"})
    return path


def vq_ldm_state_dict(seed: int = 0) -> dict[str, Tensor]:
    """A whole checkpoint on VQ-f4: tiny SD1 text encoder, a 3-channel UNet, VQ first stage."""
    spec = TINY_SPECS["tiny_sd1"]
    sd = {k: v for k, v in tiny_state_dict("tiny_sd1").items()
          if not k.startswith((UNET_PREFIX, VAE_PREFIX))}
    sd.update(_prefixed(tiny_unet(spec.unet.replace(in_channels=3, out_channels=3), 40 + seed),
                        UNET_PREFIX))
    sd.update(_prefixed(tiny_first_stage("tiny_vq_f4", seed), VAE_PREFIX))
    return sd


def write_vq_ldm(path: str | Path, seed: int = 0) -> Path:
    """vq_ldm_state_dict as an fp16 safetensors checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(_fp16(vq_ldm_state_dict(seed)), str(path), metadata={"format": "pt"})
    return path
