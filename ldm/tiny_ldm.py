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

from ldm.configs import UNetConfig, VAEConfig
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


X4_UNET = UNetConfig(in_channels=7, out_channels=4, model_channels=32, channel_mult=(1, 2),
                     num_res_blocks=1, transformer_depth=(1, 1), transformer_depth_middle=1,
                     num_heads=2, num_head_channels=-1, context_dim=48, use_linear_in_transformer=True,
                     norm_groups=8, num_classes=1000, disable_self_attn_levels=(0,))
X4_VAE = VAEConfig(ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=4, embed_dim=4, norm_groups=8)


def tiny_x4_upscaler_state_dict(seed: int = 0) -> dict[str, Tensor]:
    """The SD x4 upscaler's layout in miniature: 7-channel UNet with a 1000-row label_emb and
    context-reading attn1 at its first level, KL-f4 first stage, SD2's OpenCLIP text encoder,
    the `low_scale_model.*` schedule buffers real files carry."""
    from ldm.tiny import TINY_SPECS, _seeded
    from ldm.tiny_text import text_encoder_state_dict
    from ldm.vae import AutoencoderKL

    sd = _prefixed(tiny_unet(X4_UNET, 80 + seed), UNET_PREFIX)
    sd.update(_prefixed(_seeded(AutoencoderKL, X4_VAE, 90 + seed), VAE_PREFIX))
    layout, width, layers = TINY_SPECS["tiny_sd2v"].text[0]
    sd.update(text_encoder_state_dict(layout, width=width, layers=layers, seed=95 + seed))
    betas = make_betas("linear", 1000, 0.0001, 0.02)
    sd["low_scale_model.betas"] = betas.float()
    sd["low_scale_model.alphas_cumprod"] = torch.cumprod(1 - betas, 0).float()
    return sd


def write_tiny_x4_upscaler(path: str | Path, seed: int = 0) -> Path:
    """tiny_x4_upscaler_state_dict as an fp16 safetensors file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.half() if v.is_floating_point() and not k.startswith("low_scale_model.") else v)
          .contiguous() for k, v in tiny_x4_upscaler_state_dict(seed).items()}
    save_file(sd, str(path), metadata={"format": "pt"})
    return path


# LDM-BERT txt2img (the LDM-KL-8 layout): SpatialTransformer UNet reading a 32-wide BERT context,
# KL-f8 first stage, a 2-layer LDM-BERT over a small WordPiece vocabulary the test writes.
BERT_VOCAB = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "blue", "circle", "square",
              "on", "the", "left", "right", "##s", ",", ".")
TXT2IMG_UNET = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(1, 1),
                          transformer_depth_middle=1, num_heads=2, num_head_channels=-1, context_dim=32,
                          norm_groups=8)


def tiny_ldm_bert_state_dict(seed: int = 0) -> dict[str, Tensor]:
    """A whole LDM-BERT text-to-image checkpoint in miniature (keys of CompVis' txt2img file)."""
    from ldm.ldm_bert import PREFIX, LDMBertModel
    from ldm.tiny import tiny_vae

    sd = _prefixed(tiny_unet(TXT2IMG_UNET, 100 + seed), UNET_PREFIX)
    sd.update(_prefixed(tiny_vae(110 + seed), VAE_PREFIX))
    with torch.random.fork_rng():
        torch.manual_seed(120 + seed)
        bert = LDMBertModel(vocab=len(BERT_VOCAB), dim=32, depth=2, attn_inner=16, ff_inner=64)
    sd.update(_prefixed(bert, PREFIX))
    gen = torch.Generator().manual_seed(130 + seed)
    sd[PREFIX + "to_logits.weight"] = torch.randn(len(BERT_VOCAB), 32, generator=gen) * 0.02
    sd[PREFIX + "to_logits.bias"] = torch.zeros(len(BERT_VOCAB))
    betas = make_betas("linear", 1000, 0.00085, 0.012)
    sd.update({"betas": betas.float(), "alphas_cumprod": torch.cumprod(1 - betas, 0).float()})
    return sd


def write_tiny_ldm_bert(path: str | Path, vocab_dir: str | Path | None = None, seed: int = 0) -> Path:
    """The checkpoint as fp16 safetensors; with vocab_dir, also `bert-base-uncased/vocab.txt` there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.half() if v.is_floating_point() and k not in ("betas", "alphas_cumprod") else v)
          .contiguous() for k, v in tiny_ldm_bert_state_dict(seed).items()}
    save_file(sd, str(path), metadata={"format": "pt"})
    if vocab_dir is not None:
        vocab = Path(vocab_dir) / "bert-base-uncased" / "vocab.txt"
        vocab.parent.mkdir(parents=True, exist_ok=True)
        vocab.write_text("\n".join(BERT_VOCAB) + "\n", encoding="utf-8")
    return path
