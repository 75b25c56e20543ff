"""Mask nodes (ComfyUI names). A MASK is [B,H,W] float in 0..1 where 1 marks the area to inpaint."""
from __future__ import annotations

import torch

from ldm import image_ops as ops
from nodes.memory import ensure_image_fits
from nodes.registry import Boolean, Combo, Float, In, Int, Out, node

MAX_RES = 16384
CHANNELS = ["red", "green", "blue", "alpha"]


def _as_batch(mask: torch.Tensor) -> torch.Tensor:
    return mask.reshape((-1, mask.shape[-2], mask.shape[-1]))


@node("mask", display_name="SolidMask")
class SolidMask:
    """A mask of one constant value."""

    INPUTS = [Float("value", 1.0, min=0.0, max=1.0, step=0.01),
              Int("width", 512, min=1, max=MAX_RES, step=1), Int("height", 512, min=1, max=MAX_RES, step=1)]
    OUTPUTS = [Out("MASK")]

    def run(self, ctx, value, width, height):
        ensure_image_fits(ctx, 1, height, width, 1, copies=1, input_name="width", what="a solid mask")
        return (torch.full((1, height, width), float(value), dtype=torch.float32),)


@node("mask", display_name="InvertMask")
class InvertMask:
    """1 − mask."""

    INPUTS = [In("mask", "MASK")]
    OUTPUTS = [Out("MASK")]

    def run(self, ctx, mask):
        return (1.0 - mask,)


@node("mask", display_name="MaskComposite")
class MaskComposite:
    """Combines source into destination at (x, y) with an arithmetic or logical operation."""

    INPUTS = [In("destination", "MASK"), In("source", "MASK"),
              Int("x", 0, min=0, max=MAX_RES, step=1), Int("y", 0, min=0, max=MAX_RES, step=1),
              Combo("operation", ["multiply", "add", "subtract", "and", "or", "xor"])]
    OUTPUTS = [Out("MASK")]

    def run(self, ctx, destination, source, x, y, operation):
        dest = _as_batch(destination).clone().float()
        src = _as_batch(source).float()
        src = ops.repeat_to_batch(src, max(dest.shape[0], src.shape[0]))
        dest = ops.repeat_to_batch(dest, src.shape[0]).clone()
        h = max(0, min(src.shape[1], dest.shape[1] - y))
        w = max(0, min(src.shape[2], dest.shape[2] - x))
        region = dest[:, y:y + h, x:x + w]
        s = src[:, :h, :w]
        if operation == "multiply":
            res = region * s
        elif operation == "add":
            res = region + s
        elif operation == "subtract":
            res = region - s
        else:
            a, b = region.round().bool(), s.round().bool()
            res = {"and": a & b, "or": a | b, "xor": a ^ b}[operation].float()
        dest[:, y:y + h, x:x + w] = res
        return (dest.clamp(0.0, 1.0),)


@node("mask", display_name="FeatherMask")
class FeatherMask:
    """Fades the mask linearly to 0 over the given number of pixels at each edge."""

    INPUTS = [In("mask", "MASK"),
              Int("left", 0, min=0, max=MAX_RES, step=1), Int("top", 0, min=0, max=MAX_RES, step=1),
              Int("right", 0, min=0, max=MAX_RES, step=1), Int("bottom", 0, min=0, max=MAX_RES, step=1)]
    OUTPUTS = [Out("MASK")]

    def run(self, ctx, mask, left, top, right, bottom):
        out = _as_batch(mask).clone().float()
        h, w = out.shape[1], out.shape[2]
        left, right, top, bottom = min(left, w), min(right, w), min(top, h), min(bottom, h)
        for i in range(left):
            out[:, :, i] *= (i + 1) / left
        for i in range(right):
            out[:, :, w - 1 - i] *= (i + 1) / right
        for i in range(top):
            out[:, i, :] *= (i + 1) / top
        for i in range(bottom):
            out[:, h - 1 - i, :] *= (i + 1) / bottom
        return (out,)


@node("mask", display_name="GrowMask")
class GrowMask:
    """Grows (positive expand) or shrinks (negative) the mask by whole pixels."""

    INPUTS = [In("mask", "MASK"), Int("expand", 0, min=-MAX_RES, max=MAX_RES, step=1),
              Boolean("tapered_corners", True)]
    OUTPUTS = [Out("MASK")]

    def run(self, ctx, mask, expand, tapered_corners):
        return (ops.grow_mask(_as_batch(mask), expand, tapered_corners),)


@node("mask", display_name="Convert Image to Mask")
class ImageToMask:
    """One channel of an image as a mask."""

    INPUTS = [In("image", "IMAGE"), Combo("channel", CHANNELS)]
    OUTPUTS = [Out("MASK")]

    def run(self, ctx, image, channel):
        idx = CHANNELS.index(channel)
        if idx >= image.shape[-1]:
            raise ValueError(f"input 'channel': the image has no {channel} channel")
        return (image[..., idx].clone(),)


@node("mask", display_name="Convert Mask to Image")
class MaskToImage:
    """A mask as a grey RGB image."""

    INPUTS = [In("mask", "MASK")]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, mask):
        m = _as_batch(mask).float()
        return (m.unsqueeze(-1).expand(-1, -1, -1, 3).clone(),)


@node("mask", display_name="ThresholdMask")
class ThresholdMask:
    """1 where the mask is above the value, else 0."""

    INPUTS = [In("mask", "MASK"), Float("value", 0.5, min=0.0, max=1.0, step=0.01)]
    OUTPUTS = [Out("MASK")]

    def run(self, ctx, mask, value):
        return ((mask > value).float(),)


@node("mask", display_name="CropMask")
class CropMask:
    """Crops the mask to width×height at (x, y)."""

    INPUTS = [In("mask", "MASK"),
              Int("x", 0, min=0, max=MAX_RES, step=1), Int("y", 0, min=0, max=MAX_RES, step=1),
              Int("width", 512, min=1, max=MAX_RES, step=1), Int("height", 512, min=1, max=MAX_RES, step=1)]
    OUTPUTS = [Out("MASK")]

    def run(self, ctx, mask, x, y, width, height):
        m = _as_batch(mask)
        return (m[:, y:y + height, x:x + width].clone(),)
