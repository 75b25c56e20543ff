"""Tiny random text encoders and textual-inversion files in the real single-file layouts.

Used by ldm.tiny (tiny checkpoints) and the tests: the keys, prefixes, fused/transposed tensors are
exactly those of real SD1/SD2/SDXL files, so the loading code under test is the production path.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from ldm.clip_keys import LAYOUT_PREFIXES, OPENCLIP_LAYOUTS, heads_for_width

LAYOUTS = tuple(LAYOUT_PREFIXES)


def text_encoder_state_dict(layout: str, *, width: int, layers: int, heads: int | None = None,
                            seed: int = 0, vocab_size: int = 49408, max_positions: int = 77,
                            proj_dim: int | None = None) -> dict[str, Tensor]:
    """Random text-encoder weights with the checkpoint prefix of ``layout``.

    layout ∈ {"sd1", "sd2", "sdxl_l", "sdxl_g", "sdxl_refiner_g"}. ``heads`` is not stored in a
    checkpoint; the loader derives it with :func:`ldm.clip_keys.heads_for_width`, so a different
    value here is refused rather than silently ignored. OpenCLIP layouts get a ``text_projection``
    of ``proj_dim`` (default: width), as SD2 and SDXL files have one.
    """
    if layout not in LAYOUT_PREFIXES:
        raise ValueError(f"unknown text encoder layout {layout!r}; expected one of {LAYOUTS}")
    if heads is not None and heads != heads_for_width(width):
        raise ValueError(f"width {width} implies {heads_for_width(width)} heads "
                         f"(ldm.clip_keys.heads_for_width), got heads={heads}")
    gen = torch.Generator().manual_seed(seed)
    blocks = [_random_block(width, gen) for _ in range(layers)]
    tok = torch.randn(vocab_size, width, generator=gen) * 0.5
    pos = torch.randn(max_positions, width, generator=gen) * 0.2
    final_ln = _layer_norm(width, gen)
    prefix = LAYOUT_PREFIXES[layout]
    if layout in OPENCLIP_LAYOUTS:
        sd = _openclip_layout(prefix, tok, pos, blocks, final_ln)
        proj = torch.randn(width, proj_dim or width, generator=gen) * width ** -0.5
        sd[prefix + "text_projection"] = proj
        sd[prefix + "logit_scale"] = torch.tensor(4.6052)
        return sd
    return _openai_layout(prefix, tok, pos, blocks, final_ln)


def _layer_norm(width: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    weight = 1.0 + 0.1 * torch.randn(width, generator=gen)
    return weight, 0.05 * torch.randn(width, generator=gen)


def _random_block(width: int, gen: torch.Generator) -> dict[str, Tensor]:
    """One pre-LN transformer block in transformers' names (q/k/v separate, [out, in] weights).

    Attention weights are larger than a trained model's init so that the causal attention really
    mixes positions (tests of chunking, weighting and clip skip need position-dependent outputs).
    """
    std = width ** -0.5
    t: dict[str, Tensor] = {}
    for name in ("q", "k"):
        t[f"self_attn.{name}_proj.weight"] = torch.randn(width, width, generator=gen) * 2 * std
        t[f"self_attn.{name}_proj.bias"] = torch.randn(width, generator=gen) * 0.1
    for name in ("v", "out"):
        t[f"self_attn.{name}_proj.weight"] = torch.randn(width, width, generator=gen) * std
        t[f"self_attn.{name}_proj.bias"] = torch.randn(width, generator=gen) * 0.05
    t["mlp.fc1.weight"] = torch.randn(4 * width, width, generator=gen) * std
    t["mlp.fc1.bias"] = torch.randn(4 * width, generator=gen) * 0.05
    t["mlp.fc2.weight"] = torch.randn(width, 4 * width, generator=gen) * (4 * width) ** -0.5
    t["mlp.fc2.bias"] = torch.randn(width, generator=gen) * 0.05
    for ln in ("layer_norm1", "layer_norm2"):
        t[f"{ln}.weight"], t[f"{ln}.bias"] = _layer_norm(width, gen)
    return t


def _openai_layout(prefix: str, tok: Tensor, pos: Tensor, blocks: list[dict[str, Tensor]],
                   final_ln: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    sd = {prefix + "embeddings.token_embedding.weight": tok,
          prefix + "embeddings.position_embedding.weight": pos}
    for i, block in enumerate(blocks):
        sd.update({f"{prefix}encoder.layers.{i}.{k}": v for k, v in block.items()})
    sd[prefix + "final_layer_norm.weight"], sd[prefix + "final_layer_norm.bias"] = final_ln
    return sd


_TO_OPENCLIP = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc",
                "mlp.fc2": "mlp.c_proj", "self_attn.out_proj": "attn.out_proj"}


def _openclip_layout(prefix: str, tok: Tensor, pos: Tensor, blocks: list[dict[str, Tensor]],
                     final_ln: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    """OpenCLIP names: fused in_proj (q;k;v on dim 0), ln_1/ln_2, c_fc/c_proj, ln_final."""
    sd = {prefix + "token_embedding.weight": tok, prefix + "positional_embedding": pos}
    for i, block in enumerate(blocks):
        base = f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            sd[base + f"attn.in_proj_{kind}"] = torch.cat(
                [block[f"self_attn.{n}_proj.{kind}"] for n in "qkv"], dim=0)
            for hf, oc in _TO_OPENCLIP.items():
                sd[f"{base}{oc}.{kind}"] = block[f"{hf}.{kind}"]
    sd[prefix + "ln_final.weight"], sd[prefix + "ln_final.bias"] = final_ln
    return sd


def write_embedding(path: str | Path, widths: int | dict[str, int], n_vectors: int,
                    seed: int = 0) -> Path:
    """Writes a random textual-inversion embedding of ``n_vectors`` tokens.

    ``widths`` int → SD1/SD2 format: ``.safetensors`` with ``emb_params`` [n, W], or ``.pt`` with
    A1111's ``{"string_to_param": {"*": [n, W]}, "name": ...}``. A dict such as
    ``{"clip_l": 768, "clip_g": 1280}`` → SDXL format (one tensor per encoder, same keys).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    if isinstance(widths, int):
        tensors = {"emb_params": torch.randn(n_vectors, widths, generator=gen) * 0.5}
    else:
        tensors = {k: torch.randn(n_vectors, w, generator=gen) * 0.5 for k, w in widths.items()}
    if path.suffix.lower() == ".safetensors":
    
        save_file(tensors, str(path))
    elif isinstance(widths, int):
        torch.save({"string_to_param": {"*": tensors["emb_params"]}, "name": path.stem,
                    "step": 0}, path)
    else:
        torch.save(tensors, path)
    return path
