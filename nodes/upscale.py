"""Upscaling with a model (loader lives in nodes/loaders.py)."""
from __future__ import annotations

from ldm import memory
from ldm.upscale import upscale_image
from nodes.memory import SMALLER, refusal
from nodes.registry import In, Out, node

TILES = (512, 256, 128)


def _features(upscale_model) -> int:
    """Widest feature map of the network (its largest conv/linear output), for the estimate."""
    widths = [p.shape[0] for p in upscale_model.model.parameters() if p.dim() >= 2]
    return max(widths, default=64)


def fitting_tile(ctx, upscale_model, image) -> int:
    """The largest tile (of 512/256/128) whose upscaling fits in memory; a NodeError if none."""
    b, h, w, c = image.shape
    scale, feats = int(upscale_model.scale), _features(upscale_model)
    needs = {t: memory.upscale_model_bytes(b, h, w, scale, t, feats, c) for t in TILES}
    for tile in TILES:
        if memory.fits(needs[tile], None):
            if tile != TILES[0]:
                ctx.warn(f"upscaling in {tile}-pixel tiles (512-pixel tiles would need "
                         f"~{memory.format_bytes(needs[TILES[0]])})")
            return tile
    exc = memory.MemoryEstimateError(needs[TILES[-1]], memory.available_bytes(None) or 0,
                                     f"upscaling {w}×{h} (batch {b}) ×{scale} to {w * scale}×{h * scale}",
                                     SMALLER)
    raise refusal(ctx, exc, "image")


@node("image/upscaling", display_name="Upscale Image (using Model)")
class ImageUpscaleWithModel:
    """Upscales images with an upscale model, in 512-pixel tiles with a 32-pixel overlap."""

    INPUTS = [In("upscale_model", "UPSCALE_MODEL"), In("image", "IMAGE")]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, upscale_model, image):
        tile = fitting_tile(ctx, upscale_model, image[..., :3])
        return (upscale_image(upscale_model, image[..., :3], tile=tile, overlap=32,
                              progress=lambda done, total: ctx.progress(done, total)),)
