"""Models shipped as separate files: a UNet alone, text encoders alone (ComfyUI's UNETLoader,
CLIPLoader, DualCLIPLoader). Standalone VAEs are in ldm.vae_loader.

Accepted layouts (the single-module ones ComfyUI reads, no diffusers conversion):
* UNet: `model.diffusion_model.*` (also a whole checkpoint: only its UNet is taken) or bare
  `input_blocks.* / middle_block.* / output_blocks.* / out.*`.
* Text encoder: transformers layout (`text_model.embeddings.token_embedding.weight`, under any
  prefix, with or without `text_model.`) or OpenCLIP layout (`token_embedding.weight`,
  `transformer.resblocks.*`, bare or under a prefix such as `model.`).
Which CLIP a file is follows ComfyUI's rule on the layer count (>= 31 layers: OpenCLIP bigG,
>= 23: OpenCLIP ViT-H, else OpenAI CLIP-L; an OpenCLIP-layout file is never CLIP-L); tiny files may
say it with safetensors metadata `latentgraph.text_encoder` = clip_l | clip_h | clip_g.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from torch import Tensor, nn

from ldm import devices
from ldm.checkpoint import (UNET_PREFIX, CheckpointError, _casting_reader, _prefix_summary,
                            build_module, detect, load_state_dict, read_metadata, take_prefixed)
from ldm.clip import TextEncoder, build_clip_model
from ldm.clip_keys import EncoderShape, encoder_shape, openai_to_hf, openclip_to_hf
from ldm.model import DiffusionModel

_HF_TOKEN = "embeddings.token_embedding.weight"
_OPENCLIP_TOKEN = "token_embedding.weight"
KINDS = ("clip_l", "clip_h", "clip_g")


# ------------------------------------------------------------------------------------ UNet
def _unet_prefix(sd: dict[str, Tensor], name: str) -> str:
    """The prefix the UNet keys carry in this file ('' for a bare UNet)."""
    if UNET_PREFIX + "input_blocks.0.0.weight" in sd:
        return UNET_PREFIX
    if "input_blocks.0.0.weight" in sd:
        return ""
    if "conv_in.weight" in sd and any(k.startswith("down_blocks.") for k in sd):
        raise CheckpointError(f"{name}: diffusers-layout UNet (conv_in / down_blocks.*); not "
                              "supported yet - use a single-file (LDM layout) UNet or checkpoint")
    raise CheckpointError(f"{name}: no UNet (input_blocks.* or {UNET_PREFIX}input_blocks.*) "
                          f"found; keys: {_prefix_summary(sd)}")


def load_diffusion_model(path: str | Path, *, family: str | None = None,
                         prediction: str | None = None) -> DiffusionModel:
    """A DiffusionModel from a UNet-only file (or the UNet of a checkpoint)."""
    from ldm.model_sampling import ModelSampling
    from ldm.unet import UNetModel

    path = Path(path)
    raw = load_state_dict(path)
    prefix = _unet_prefix(raw, path.name)
    view = raw if prefix else {UNET_PREFIX + k: v for k, v in raw.items()}
    config = detect(view, metadata=read_metadata(path), family=family, prediction=prediction)
    del view
    dtype = devices.compute_dtype(devices.offload_device())
    reader = _casting_reader(path)
    try:
        weights = take_prefixed(raw, prefix, dtype, reader)
    finally:
        if reader is not None:
            reader.close()
    if not prefix:  # a bare file may hold nothing but the UNet; anything else is not ours to drop
        weights = {k: v for k, v in weights.items() if not k.startswith(("betas", "alphas", "v_pred"))}
    del raw
    unet = build_module(UNetModel, config.unet, weights, "UNet")
    return DiffusionModel(unet, config, ModelSampling(config.prediction))


# ------------------------------------------------------------------------------------ CLIP
@dataclass
class EncoderFile:
    """One text encoder read from a file, converted to transformers' names."""

    name: str
    kind: str
    shape: EncoderShape
    tensors: dict[str, Tensor]
    proj: Tensor | None


def _token_keys(sd: dict[str, Tensor]) -> list[str]:
    return [k for k in sd if k.endswith(_OPENCLIP_TOKEN) and not k.startswith("embedder.")]


def _not_clip(sd: dict[str, Tensor], name: str) -> CheckpointError:
    if any(".SelfAttention." in k for k in sd) or "shared.weight" in sd:
        what = "a T5 text encoder (SD3 / Flux / video models)"
    else:
        what = f"not a CLIP text encoder (keys: {_prefix_summary(sd)})"
    return CheckpointError(f"{name}: {what}; not supported - CLIP-L, OpenCLIP ViT-H and bigG "
                           "text encoders only")


def _kind(shape: EncoderShape, openclip_layout: bool, metadata: dict[str, str]) -> str:
    hint = metadata.get("latentgraph.text_encoder")
    if hint in KINDS:
        return hint
    if shape.layers >= 31:
        return "clip_g"
    if shape.layers >= 23 or openclip_layout:
        return "clip_h"
    return "clip_l"


def read_text_encoder(path: str | Path) -> EncoderFile:
    """The single CLIP text encoder in `path`, in transformers' names (views, no copies)."""
    path = Path(path)
    sd = load_state_dict(path)
    keys = _token_keys(sd)
    if not keys:
        raise _not_clip(sd, path.name)
    if len(keys) > 1:
        raise CheckpointError(f"{path.name} holds {len(keys)} text encoders ({', '.join(keys)}); "
                              "load it with a checkpoint loader or use single-encoder files")
    key = keys[0]
    if key.endswith(_HF_TOKEN):
        prefix = key[: -len(_HF_TOKEN)]
        shape = encoder_shape(sd, prefix, False)
        tensors = openai_to_hf(sd, prefix)
        proj = sd.get(prefix.replace("text_model.", "") + "text_projection.weight")
        openclip_layout = False
    else:
        prefix = key[: -len(_OPENCLIP_TOKEN)]
        shape = encoder_shape(sd, prefix, True)
        tensors, proj = openclip_to_hf(sd, prefix)
        openclip_layout = True
    return EncoderFile(path.name, _kind(shape, openclip_layout, read_metadata(path)), shape,
                       tensors, proj)


def _as_slot(f: EncoderFile, slot: str) -> EncoderFile:
    """The file as used in a slot: OpenCLIP models ("g": ViT-H, bigG) use exact gelu whatever the
    file layout, OpenAI CLIP-L quick_gelu; a CLIP-L projection is unused, as in checkpoints."""
    if slot == "l":
        return replace(f, shape=replace(f.shape, openclip=False), proj=None)
    return replace(f, shape=replace(f.shape, openclip=True))


_SINGLE_FAMILY = {"clip_l": ("sd1", "l"), "clip_h": ("sd2", "g"), "clip_g": ("sdxl_refiner", "g")}


def _sdxl_pair(files: Sequence[EncoderFile]) -> tuple[EncoderFile, EncoderFile]:
    """(CLIP-L, bigG) in either order: bigG is the deeper encoder, then the wider one."""
    hinted = [f for f in files if f.kind == "clip_g"]
    if len(hinted) == 1:
        big = hinted[0]
    else:
        a, b = files
        key = lambda f: (f.shape.layers, f.shape.width)  # noqa: E731
        if key(a) == key(b):
            raise CheckpointError(f"cannot tell which of {a.name} / {b.name} is CLIP-L and which "
                                  "bigG (same depth and width)")
        big = max(files, key=key)
    small = files[1] if big is files[0] else files[0]
    if small.kind == "clip_g":
        raise CheckpointError(f"SDXL needs one CLIP-L and one bigG file; both {files[0].name} "
                              f"and {files[1].name} are bigG")
    return small, big


def load_text_encoders(paths: Sequence[str | Path]) -> TextEncoder:
    """One file: SD1 (CLIP-L), SD2 (ViT-H) or SDXL-refiner (bigG) by the file; two files: SDXL
    (CLIP-L + bigG, either order)."""
    files = [read_text_encoder(p) for p in paths]
    if len(files) == 1:
        family, slot = _SINGLE_FAMILY[files[0].kind]
        slots = {slot: _as_slot(files[0], slot)}
    elif len(files) == 2:
        small, big = _sdxl_pair(files)
        family, slots = "sdxl", {"l": _as_slot(small, "l"), "g": _as_slot(big, "g")}
    else:
        raise CheckpointError(f"expected 1 or 2 text encoder files, got {len(files)}")
    models = {slot: build_clip_model(f.shape, f.tensors, f.proj) for slot, f in slots.items()}
    shapes = {slot: f.shape for slot, f in slots.items()}
    return TextEncoder(nn.ModuleDict(models), family, shapes)

