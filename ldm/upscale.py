"""Image upscaling models (ESRGAN, RealESRGAN, SwinIR, compact, … through spandrel) and tiled
inference with feathered seams, so large images fit in memory.

Weights are read with our own weights-only loader (ldm.checkpoint.load_state_dict): a pickle that
needs code is refused before spandrel sees anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ldm import devices
from ldm.checkpoint import CheckpointError, load_state_dict


def load_upscale_model(path: str | Path):
    """An `ImageModelDescriptor` for the file; anything that is not an image-to-image model is refused."""
    import spandrel  # here, not at the top: it imports torchvision, which only upscaling needs

    sd = load_state_dict(path)
    if "module.layers.0.residual_group.blocks.0.norm1.weight" in sd:  # DataParallel-saved SwinIR/etc.
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    try:
        desc = spandrel.ModelLoader().load_from_state_dict(sd)
    except Exception as exc:
        raise CheckpointError(f"{Path(path).name}: not a supported upscale model ({exc})") from exc
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise CheckpointError(f"{Path(path).name}: {type(desc).__name__} is not an image upscaler")
    return desc.eval()


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(n: int, overlap: int) -> torch.Tensor:
    """1 in the middle, rising linearly over `overlap` at both ends (never exactly 0)."""
    w = torch.ones(n)
    if overlap > 0:
        r = torch.linspace(1.0 / (overlap + 1), 1.0, overlap)
        w[:overlap] = torch.minimum(w[:overlap], r)
        w[-overlap:] = torch.minimum(w[-overlap:], r.flip(0))
    return w


def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, tile: int,
                overlap: int, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Applies an image→image×scale function to [B,C,H,W] in overlapping tiles, blending the seams."""
    b, c, h, w = x.shape
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    out = None
    weight = torch.zeros((1, 1, h * scale, w * scale))
    total, done = len(ys) * len(xs), 0
    for y in ys:
        for x0 in xs:
            piece = x[:, :, y:y + tile, x0:x0 + tile]
            res = fn(piece).float().cpu()
            if out is None:
                out = torch.zeros((b, res.shape[1], h * scale, w * scale))
            th, tw = res.shape[-2], res.shape[-1]
            mask = (_ramp(th, overlap * scale if len(ys) > 1 else 0).reshape(-1, 1)
                    * _ramp(tw, overlap * scale if len(xs) > 1 else 0).reshape(1, -1))
            out[:, :, y * scale:y * scale + th, x0 * scale:x0 * scale + tw] += res * mask
            weight[:, :, y * scale:y * scale + th, x0 * scale:x0 * scale + tw] += mask
            done += 1
            if progress is not None:
                progress(done, total)
    return out / weight


def upscale_image(desc, image: torch.Tensor, tile: int = 512, overlap: int = 32,
                  progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """IMAGE [B,H,W,C] 0..1 → upscaled IMAGE; halves the tile size on out-of-memory errors."""
    device = devices.get_device()
    desc.to(device)
    x = image.movedim(-1, 1).to(device)
    try:
        while True:
            try:
                with torch.inference_mode():
                    out = tiled_apply(lambda t: desc(t), x, desc.scale, tile, overlap, progress)
                break
            except torch.OutOfMemoryError:
                if tile <= 128:
                    raise
                tile //= 2
                devices.soft_empty_cache()
    finally:
        desc.to(devices.offload_device())
    return out.movedim(1, -1).clamp(0, 1)
