"""Tiny random Stable Diffusion checkpoints in the exact real single-file key layouts.

Tests and demos load these through the production path (`ldm.checkpoint.load_checkpoint`), so
every family (SD1, SD2 v-prediction, SDXL, SDXL refiner, SD1 inpainting) is exercised offline in
milliseconds. Sizes follow the rules of ARCHITECTURE.md §2 (no metadata needed): model_channels
32 → GroupNorm 8 groups, SD1 2 heads, SD2/SDXL 16-wide heads.

The random UNets are nudged to act a little like denoisers (TESTING.md "Random weights hide
bugs"): the final conv is scaled down (×0.3) so predicted noise is small and smooth, the timestep
MLP is scaled up (×3) so the output really depends on sigma, and attention queries are scaled up
(×2) so attention is sharper than uniform. SD2-v additionally gets the LayerNorm-bias statistics
ComfyUI's v-prediction heuristic looks for. Everything is seeded: repeated calls write
byte-identical files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from ldm.configs import UNetConfig, VAEConfig
from ldm.lora import make_random_lora
from ldm.tiny_text import text_encoder_state_dict, write_embedding
from ldm.unet import UNetModel
from ldm.vae import AutoencoderKL

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."


@dataclass(frozen=True)
class TinySpec:
    """One tiny checkpoint: UNet/VAE sizes and text encoders (layout, width, layers)."""

    family: str
    unet: UNetConfig
    text: tuple[tuple[str, int, int], ...]
    v_pred: bool = False
    seed: int = 0


TINY_VAE = VAEConfig(ch=32, ch_mult=(1, 2, 2, 2), num_res_blocks=1, z_channels=4, embed_dim=4,
                     norm_groups=8)

_SD1_UNET = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                       transformer_depth=(1, 1), transformer_depth_middle=1, num_heads=2,
                       num_head_channels=-1, context_dim=32, norm_groups=8)
_XL = dict(model_channels=32, num_res_blocks=1, num_heads=-1, num_head_channels=16,
           use_linear_in_transformer=True, norm_groups=8)

TINY_SPECS: dict[str, TinySpec] = {
    "tiny_sd1": TinySpec("sd1", _SD1_UNET, (("sd1", 32, 2),), seed=1),
    "tiny_sd1_inpaint": TinySpec("sd1", _SD1_UNET.replace(in_channels=9), (("sd1", 32, 2),),
                                 seed=2),
    "tiny_sd2v": TinySpec("sd2", UNetConfig(channel_mult=(1, 2), transformer_depth=(1, 1),
                                            transformer_depth_middle=1, context_dim=48, **_XL),
                          (("sd2", 48, 2),), v_pred=True, seed=3),
    # Two text encoders of different widths (32 + 48): context 80, adm = 48 pooled + 6·256.
    "tiny_sdxl": TinySpec("sdxl", UNetConfig(channel_mult=(1, 2), transformer_depth=(0, 2),
                                             transformer_depth_middle=2, context_dim=80,
                                             adm_in_channels=48 + 6 * 256, **_XL),
                          (("sdxl_l", 32, 2), ("sdxl_g", 48, 2)), seed=4),
    "tiny_sdxl_refiner": TinySpec("sdxl_refiner",
                                  UNetConfig(channel_mult=(1, 2, 2), transformer_depth=(0, 1, 1),
                                             transformer_depth_middle=1, context_dim=48,
                                             adm_in_channels=48 + 5 * 256, **_XL),
                                  (("sdxl_refiner_g", 48, 2),), seed=5),
}


def _seeded(cls, cfg, seed: int) -> nn.Module:
    """Build a module with torch's default init under a fixed seed, leaving global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(cfg)


def _perturb_norms(module: nn.Module, gen: torch.Generator, bias_std: float = 0.02) -> None:
    """Non-trivial norm affine parameters, so a mis-mapped norm weight changes outputs in tests."""
    for m in module.modules():
        if isinstance(m, (nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            m.weight.add_(torch.randn(m.weight.shape, generator=gen) * 0.1)
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * bias_std)


@torch.no_grad()
def tiny_unet(cfg: UNetConfig, seed: int, v_pred: bool = False) -> UNetModel:
    """A seeded random UNet nudged towards denoiser-like behaviour (see module doc)."""
    unet = _seeded(UNetModel, cfg, seed)
    gen = torch.Generator().manual_seed(seed + 1000)
    _perturb_norms(unet, gen)
    unet.out[2].weight.mul_(0.3)
    unet.out[2].bias.mul_(0.3)
    for lin in (unet.time_embed[0], unet.time_embed[2]):
        lin.weight.mul_(3.0)
    for name, p in unet.named_parameters():
        if name.endswith("to_q.weight"):
            p.mul_(2.0)
        if v_pred and name.startswith("output_blocks.") and name.endswith("norm1.bias"):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)  # ComfyUI heuristic: std > 0.09
    return unet


@torch.no_grad()
def tiny_vae(seed: int, cfg: VAEConfig = TINY_VAE) -> AutoencoderKL:
    """A seeded random AutoencoderKL of the tiny size."""
    vae = _seeded(AutoencoderKL, cfg, seed)
    _perturb_norms(vae, torch.Generator().manual_seed(seed + 2000))
    return vae


def _prefixed(module: nn.Module, prefix: str) -> dict[str, Tensor]:
    return {prefix + k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


_SCHEDULE_KEYS = ("betas", "alphas_cumprod")


def _schedule_buffers() -> dict[str, Tensor]:
    """The `betas` / `alphas_cumprod` buffers real SD1/SD2 files carry (loaders must ignore them)."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return {"betas": betas.float(), "alphas_cumprod": torch.cumprod(1 - betas, 0).float()}


def tiny_state_dict(name: str) -> dict[str, Tensor]:
    """The full single-file state dict of one tiny checkpoint (UNet + VAE + text encoders)."""
    spec = TINY_SPECS[name]
    sd = _prefixed(tiny_unet(spec.unet, spec.seed, spec.v_pred), UNET_PREFIX)
    sd.update(_prefixed(tiny_vae(100 + spec.seed), VAE_PREFIX))
    for i, (layout, width, layers) in enumerate(spec.text):
        sd.update(text_encoder_state_dict(layout, width=width, layers=layers,
                                          seed=200 + 10 * spec.seed + i))
    if spec.family in ("sd1", "sd2"):
        sd.update(_schedule_buffers())
    return sd


def write_tiny_checkpoint(name: str, path: str | Path) -> Path:
    """Write one tiny checkpoint (a key of TINY_SPECS) as safetensors. Weights are stored in fp16
    like most published checkpoints (and to keep files small), which also exercises the fp16 → fp32
    upcast on load; the schedule buffers stay fp32 as in real files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.half() if v.is_floating_point() and k not in _SCHEDULE_KEYS else v)
          for k, v in tiny_state_dict(name).items()}
    save_file(sd, str(path), metadata={"format": "pt"})
    return path


def make_tiny_models(models_root: str | Path) -> dict[str, Path]:
    """Write every tiny checkpoint, a LoRA and textual-inversion embeddings under models_root."""
    root = Path(models_root)
    out: dict[str, Path] = {}
    for name in TINY_SPECS:
        out[name] = write_tiny_checkpoint(name, root / "checkpoints" / f"{name}.safetensors")
    lora = make_random_lora(tiny_state_dict("tiny_sd1"), rank=4, seed=7)
    (root / "loras").mkdir(parents=True, exist_ok=True)
    out["tiny_lora_sd1"] = root / "loras" / "tiny_lora_sd1.safetensors"
    save_file({k: v.contiguous() for k, v in lora.items()}, str(out["tiny_lora_sd1"]))
    out["tiny_embedding_sd1"] = write_embedding(
        root / "embeddings" / "tiny_embedding_sd1.safetensors", 32, n_vectors=2, seed=8)
    out["tiny_embedding_sdxl"] = write_embedding(
        root / "embeddings" / "tiny_embedding_sdxl.safetensors", {"clip_l": 32, "clip_g": 48},
        n_vectors=2, seed=9)
    return out
