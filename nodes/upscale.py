"""Upscaling with a model (loader lives in nodes/loaders.py)."""
from __future__ import annotations

from ldm.upscale import upscale_image
from nodes.registry import In, Out, node


@node("image/upscaling", display_name="Upscale Image (using Model)")
class ImageUpscaleWithModel:
    """Upscales images with an upscale model, in 512-pixel tiles with a 32-pixel overlap."""

    INPUTS = [In("upscale_model", "UPSCALE_MODEL"), In("image", "IMAGE")]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, upscale_model, image):
        return (upscale_image(upscale_model, image[..., :3], tile=512, overlap=32,
                              progress=lambda done, total: ctx.progress(done, total)),)
