"""Checkpoint layouts that would load into our SD modules but compute the wrong thing.

Several Stable-Diffusion-shaped files share the key layout of the models we run and differ only in
an extra input (depth map, low-res image, CLIP image embedding) or in a first/cond stage we do not
have. Built as plain SD they produce silently wrong images, so `ldm.checkpoint.detect_unet` asks
`unsupported_layout` first and refuses them with a message naming what was found.
"""
from __future__ import annotations

from torch import Tensor

SUPPORTED = "supported: SD1.x, SD2.x (eps/v), SDXL base/refiner, 9-channel inpainting"

# adm widths of the SD2.1 unCLIP UNets (CLIP image embedding + noise-level embedding):
# ViT-L 768+768, ViT-H 1024+1024. Their context is SD2's 1024.
_UNCLIP_ADM = {1536: "unCLIP-L", 2048: "unCLIP-H"}


def _has(sd: dict[str, Tensor], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in sd)


def _text_stage(sd: dict[str, Tensor]) -> str | None:
    return None


def _extra_inputs(sd: dict[str, Tensor], prefix: str, in_ch: int, out_ch: int) -> str | None:
    """Layouts recognised by what the UNet takes besides the noisy latent."""
    label = sd.get(prefix + "label_emb.0.0.weight")
    adm = int(label.shape[1]) if label is not None else None
    is_x4 = prefix + "label_emb.weight" in sd and in_ch == out_ch + 3 == 7
    if not is_x4 and (prefix + "label_emb.weight" in sd or in_ch == out_ch + 3) and \
            _has(sd, "cond_stage_model.transformer."):
        return (f"a UNet with {in_ch} input channels and a class label_emb next to a text encoder "
                "(not the SD x4 upscaler's layout)")
    if _has(sd, "embedder.") or _has(sd, "noise_augmentor."):
        return (f"SD unCLIP checkpoint (image embedder + noise augmentor, UNet label_emb of "
                f"{adm} features)")
    if adm is not None and _has(sd, "cond_stage_model."):
        return f"SD1/SD2 checkpoint whose UNet has a label_emb of {adm} features (unCLIP-style)"
    if adm in _UNCLIP_ADM and not _has(sd, "conditioner."):
        context = next((v.shape[1] for k, v in sd.items()
                        if k.startswith(prefix) and k.endswith("attn2.to_k.weight")), None)
        if context == 1024:
            return f"SD2.1 {_UNCLIP_ADM[adm]} UNet (label_emb of {adm} features for an image embedding)"
    if in_ch == out_ch + 1 and not _has(sd, "cond_stage_model.model."):
        return (f"a UNet taking {in_ch} input channels (latent + one more) without SD2's text "
                "encoder (not the SD2 depth-to-image layout)")
    if in_ch == 2 * out_ch:
        return (f"InstructPix2Pix-style checkpoint (UNet takes {in_ch} input channels: latent + "
                "image latent)")
    if in_ch not in (out_ch, out_ch + 5, out_ch + 1) and not is_x4:
        return f"UNet with {in_ch} input channels for a {out_ch}-channel latent"
    return None


def unsupported_layout(sd: dict[str, Tensor], prefix: str) -> str | None:
    """A description of what makes this (whole or UNet-only) state dict one we must not run, or
    None when nothing speaks against the plain SD path. `prefix` is the UNet key prefix."""
    found = _text_stage(sd)
    if found:
        return found
    conv_in, out = sd.get(prefix + "input_blocks.0.0.weight"), sd.get(prefix + "out.2.weight")
    if conv_in is None or out is None:
        return None  # no UNet at all: the caller says so
    found = _extra_inputs(sd, prefix, int(conv_in.shape[1]), int(out.shape[0]))
    if found:
        return found
    if not any(k.startswith(prefix) and k.endswith("attn2.to_k.weight") for k in sd):
        if not _has(sd, prefix + "middle_block.1.qkv."):
            return "UNet without any attention blocks"
        if _has(sd, "cond_stage_model.") and not _has(sd, "cond_stage_model.embedding."):
            return ("UNet without cross-attention but with a cond stage (a concat-conditioned LDM: "
                    "semantic synthesis, layout or super-resolution)")
    return None


def refusal(found: str) -> str:
    """The user-facing message for a refused layout."""
    return f"{found}; not supported yet - {SUPPORTED}"
