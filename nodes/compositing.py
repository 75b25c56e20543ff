"""Image compositing nodes (ComfyUI names: ImageCompositeMasked from comfy_extras/nodes_mask.py,
Split/JoinImageWithAlpha from nodes_compositing.py).

A MASK marks with 1 what is transparent / to be replaced, so alpha = 1 − mask (as LoadImage).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ldm import image_ops as ops
from ldm import pixel_ops
from nodes.registry import Boolean, In, Int, Out, node

MAX_RES = 16384


def _even_channels(destination: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """The source with destination's channel count: extra channels dropped, a missing alpha opaque."""
    if source.shape[-1] > destination.shape[-1]:
        return source[..., :destination.shape[-1]]
    if source.shape[-1] < destination.shape[-1]:
        return F.pad(source, (0, 1), value=1.0)
    return source


@node("image", display_name="ImageCompositeMasked")
class ImageCompositeMasked:
    """Pastes source onto destination at (x, y) through an optional mask (1 = source)."""

    INPUTS = [
        In("destination", "IMAGE"), In("source", "IMAGE"),
        Int("x", 0, min=0, max=MAX_RES, step=1), Int("y", 0, min=0, max=MAX_RES, step=1),
        Boolean("resize_source", False),
        In("mask", "MASK", optional=True),
    ]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, destination, source, x, y, resize_source, mask=None):
        dest = destination.movedim(-1, 1)
        src = _even_channels(destination, source).movedim(-1, 1)
        if resize_source:
            src = F.interpolate(src, size=dest.shape[-2:], mode="bilinear")
        m = None
        if mask is not None:
            m = F.interpolate(ops.mask_to_bchw(mask).float(), size=src.shape[-2:], mode="bilinear")
        return (ops.composite(dest, src, x, y, m).movedim(1, -1),)


@node("mask/compositing", display_name="Split Image with Alpha")
class SplitImageWithAlpha:
    """Splits an RGBA image into its RGB image and a mask (1 − alpha)."""

    INPUTS = [In("image", "IMAGE")]
    OUTPUTS = [Out("IMAGE"), Out("MASK")]

    def run(self, ctx, image):
        return pixel_ops.split_alpha(image)


@node("mask/compositing", display_name="Join Image with Alpha")
class JoinImageWithAlpha:
    """Adds an alpha channel (1 − mask) to an RGB image."""

    INPUTS = [In("image", "IMAGE"), In("alpha", "MASK")]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, alpha):
        return (pixel_ops.join_alpha(image, alpha),)
