"""Text-encoder key layouts of single-file checkpoints and their conversion to transformers' CLIP.

Checkpoints carry the text encoders in two layouts:

* OpenAI / transformers layout (SD1 ``cond_stage_model.transformer.text_model.*``, SDXL CLIP-L
  ``conditioner.embedders.0.transformer.text_model.*``): already transformers' names, only a prefix.
* OpenCLIP layout (SD2 ``cond_stage_model.model.*``, SDXL bigG ``conditioner.embedders.1.model.*``,
  refiner ``conditioner.embedders.0.model.*``): fused ``in_proj`` q/k/v, ``ln_1``/``ln_2``,
  ``mlp.c_fc``/``c_proj``, ``text_projection`` stored as ``x @ P`` (transposed w.r.t. nn.Linear).

Everything about the architecture (width, layers, vocabulary, positions, projection) is read from
tensor shapes; the one thing shapes cannot say is the head count, fixed by :func:`heads_for_width`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor

# Encoder slots found in checkpoints: (name, prefix, layout). "l" = OpenAI CLIP-L layout,
# "g" = OpenCLIP layout (ViT-H for SD2, bigG for SDXL).
SD1_PREFIX = "cond_stage_model.transformer.text_model."
SD1_PREFIX_SHORT = "cond_stage_model.transformer."
SD2_PREFIX = "cond_stage_model.model."
SDXL_L_PREFIX = "conditioner.embedders.0.transformer.text_model."
SDXL_G_PREFIX = "conditioner.embedders.1.model."
REFINER_G_PREFIX = "conditioner.embedders.0.model."

LAYOUT_PREFIXES = {
    "sd1": SD1_PREFIX,
    "sd2": SD2_PREFIX,
    "sdxl_l": SDXL_L_PREFIX,
    "sdxl_g": SDXL_G_PREFIX,
    "sdxl_refiner_g": REFINER_G_PREFIX,
}
OPENCLIP_LAYOUTS = {"sd2", "sdxl_g", "sdxl_refiner_g"}


def heads_for_width(width: int) -> int:
    """Attention heads for a text encoder of this width (shapes do not encode the head count).

    Real encoders use 64-wide heads (768 → 12, 1024 → 16, 1280 → 20). Tiny test encoders would get
    a single head that way, which hides head-splitting bugs, so the head width is
    ``clamp(width // 4, 8, 64)``: widths up to 256 get 4 heads (32 → 4×8, 64 → 4×16), from 256 on
    it is width/64. A width the head size does not divide falls back to one head.
    """
    head_dim = min(64, max(8, width // 4))
    return width // head_dim if width % head_dim == 0 else 1


@dataclass(frozen=True)
class EncoderShape:
    """Architecture numbers of one text encoder, all read from its tensors."""

    width: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    proj_dim: int | None
    openclip: bool

    @property
    def hidden_act(self) -> str:
        """OpenAI CLIP was trained with quick_gelu, OpenCLIP's ViT-H/bigG with exact gelu."""
        return "gelu" if self.openclip else "quick_gelu"


def find_encoders(sd: dict[str, Tensor]) -> dict[str, tuple[str, bool]]:
    """Which text encoders a checkpoint holds: {"l"|"g": (prefix, is_openclip)}.

    SDXL base has both; SD1 only "l"; SD2 and the refiner only "g" (an OpenCLIP encoder).
    """
    found: dict[str, tuple[str, bool]] = {}
    for slot, prefix, openclip in (
        ("l", SDXL_L_PREFIX, False),
        ("g", SDXL_G_PREFIX, True),
        ("l", SD1_PREFIX, False),
        ("g", SD2_PREFIX, True),
        ("g", REFINER_G_PREFIX, True),
    ):
        if slot not in found and _has_prefix(sd, prefix, openclip):
            found[slot] = (prefix, openclip)
    if "l" not in found and f"{SD1_PREFIX_SHORT}embeddings.token_embedding.weight" in sd:
        found["l"] = (SD1_PREFIX_SHORT, False)  # old SD1 files without "text_model."
    return found


def _has_prefix(sd: dict[str, Tensor], prefix: str, openclip: bool) -> bool:
    key = "token_embedding.weight" if openclip else "embeddings.token_embedding.weight"
    return prefix + key in sd


def encoder_shape(sd: dict[str, Tensor], prefix: str, openclip: bool) -> EncoderShape:
    """Reads width/layers/vocabulary/positions/projection of the encoder under ``prefix``."""
    if openclip:
        tok = sd[prefix + "token_embedding.weight"]
        pos = sd[prefix + "positional_embedding"]
        layer_re = re.compile(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
        fc1 = sd[prefix + "transformer.resblocks.0.mlp.c_fc.weight"]
        proj = sd.get(prefix + "text_projection")
        proj_dim = int(proj.shape[1]) if proj is not None else None
    else:
        tok = sd[prefix + "embeddings.token_embedding.weight"]
        pos = sd[prefix + "embeddings.position_embedding.weight"]
        layer_re = re.compile(re.escape(prefix) + r"encoder\.layers\.(\d+)\.")
        fc1 = sd[prefix + "encoder.layers.0.mlp.fc1.weight"]
        proj = sd.get(prefix.replace("text_model.", "") + "text_projection.weight")
        proj_dim = int(proj.shape[0]) if proj is not None else None
    layers = {int(m.group(1)) for k in sd if (m := layer_re.match(k))}
    width = int(tok.shape[1])
    return EncoderShape(width=width, layers=max(layers) + 1, heads=heads_for_width(width),
                        intermediate=int(fc1.shape[0]), vocab_size=int(tok.shape[0]),
                        max_positions=int(pos.shape[0]), proj_dim=proj_dim, openclip=openclip)


def openai_to_hf(sd: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """OpenAI-layout keys → transformers CLIPTextModel keys (no ``text_model.`` prefix, tf ≥ 5.6).

    Tensors are passed through (no copies); ``position_ids`` buffers found in old files are dropped.
    """
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        if key.startswith(prefix) and not key.endswith("position_ids"):
            name = key[len(prefix):]
            if name.startswith("text_model."):
                name = name[len("text_model."):]
            if name.startswith(("embeddings.", "encoder.", "final_layer_norm.")):
                out[name] = value
    return out


_OPENCLIP_BLOCK = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
    "attn.out_proj": "self_attn.out_proj",
}


def openclip_to_hf(sd: dict[str, Tensor], prefix: str) -> tuple[dict[str, Tensor], Tensor | None]:
    """OpenCLIP-layout keys → (CLIPTextModel keys, text projection as an nn.Linear weight or None).

    The fused ``attn.in_proj_weight``/``_bias`` (q, k, v stacked on dim 0) is split into views, not
    copies; the projection ``P`` (used as ``x @ P``) becomes the view ``P.T`` for nn.Linear.
    """
    out: dict[str, Tensor] = {}
    proj = None
    block_re = re.compile(r"transformer\.resblocks\.(\d+)\.(.+)$")
    for key, value in sd.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name == "token_embedding.weight":
            out["embeddings.token_embedding.weight"] = value
        elif name == "positional_embedding":
            out["embeddings.position_embedding.weight"] = value
        elif name.startswith("ln_final."):
            out["final_layer_norm." + name.split(".", 1)[1]] = value
        elif name == "text_projection":
            proj = value.t()
        elif (m := block_re.match(name)) is not None:
            out.update(_convert_block(int(m.group(1)), m.group(2), value))
    return out, proj


def _convert_block(index: int, name: str, value: Tensor) -> dict[str, Tensor]:
    base = f"encoder.layers.{index}."
    if name in ("attn.in_proj_weight", "attn.in_proj_bias"):
        kind = name.rsplit("_", 1)[1]
        q, k, v = value.chunk(3, dim=0)
        return {base + f"self_attn.{n}_proj.{kind}": t for n, t in zip("qkv", (q, k, v))}
    module, kind = name.rsplit(".", 1)
    if module in _OPENCLIP_BLOCK:
        return {base + _OPENCLIP_BLOCK[module] + "." + kind: value}
    raise KeyError(f"unknown OpenCLIP text block tensor: {name}")


def as_float(t: Tensor, dtype: torch.dtype) -> Tensor:
    """Casts only when needed, so fp32 checkpoints are used in place (no second copy)."""
    return t if t.dtype == dtype else t.to(dtype)
