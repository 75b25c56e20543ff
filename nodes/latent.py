"""Latent nodes: empty latents, resizing, compositing, batching and transforms (ComfyUI names).

A LATENT is a dict with `samples` [B,C,h,w] (raw VAE latents), optional `noise_mask` and
`batch_index` (ARCHITECTURE.md §1). Nodes never mutate their input dict.
"""
from __future__ import annotations

import torch

from ldm import image_ops as ops
from ldm import memory
from nodes.latent_space import factor_of
from nodes.memory import ensure_fits, ensure_resize_fits
from ldm import pixel_ops
from nodes.registry import Boolean, Combo, Float, In, Int, Out, node

MAX_RES = 16384
UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]


def _copy(latent: dict, **changes) -> dict:
    out = dict(latent)
    out.update(changes)
    return out


def _batch_index(latent: dict) -> list[int]:
    return list(latent.get("batch_index") or range(latent["samples"].shape[0]))


@node("latent", display_name="Empty Latent Image")
class EmptyLatentImage:
    """Create a new batch of empty latent images to be denoised via sampling."""

    INPUTS = [
        Int("width", 512, min=16, max=MAX_RES, step=8, tooltip="The width of the latent images in pixels."),
        Int("height", 512, min=16, max=MAX_RES, step=8, tooltip="The height of the latent images in pixels."),
        Int("batch_size", 1, min=1, max=4096, tooltip="The number of latent images in the batch."),
    ]
    OUTPUTS = [Out("LATENT", tooltip="The empty latent image batch.")]

    def run(self, ctx, width, height, batch_size):
        shape = [batch_size, 4, height // 8, width // 8]
        ensure_fits(ctx, memory.tensor_bytes(shape) + memory.FIXED_OVERHEAD,
                    input_name="batch_size" if batch_size > 1 else "width",
                    what=f"an empty {width}×{height} latent batch of {batch_size}")
        return ({"samples": torch.zeros(shape)},)


def _target_size(samples: torch.Tensor, width: int, height: int, factor: int = 8) -> tuple[int, int]:
    """Latent (w, h) for a pixel width/height; a 0 side follows the aspect ratio (at least 64 px)."""
    h, w = samples.shape[-2], samples.shape[-1]
    if width == 0 and height == 0:
        return w, h
    if width == 0:
        height = max(64, height)
        width = max(64, round(w * height / h))
    elif height == 0:
        width = max(64, width)
        height = max(64, round(h * width / w))
    return width // factor, height // factor


@node("latent", display_name="Upscale Latent")
class LatentUpscale:
    """Resizes latents to a pixel size (divided by 8); a 0 side keeps the aspect ratio."""

    INPUTS = [
        In("samples", "LATENT"),
        Combo("upscale_method", UPSCALE_METHODS),
        Int("width", 512, min=0, max=MAX_RES, step=8),
        Int("height", 512, min=0, max=MAX_RES, step=8),
        Combo("crop", ["disabled", "center"]),
    ]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples, upscale_method, width, height, crop):
        w, h = _target_size(samples["samples"], width, height, factor_of(samples))
        ensure_resize_fits(ctx, samples["samples"].shape, w, h, upscale_method, input_name="width",
                           what="upscaling the latent")
        out = ops.resize(samples["samples"], w, h, upscale_method, crop)
        return (_copy(samples, samples=out),)


@node("latent", display_name="Upscale Latent By")
class LatentUpscaleBy:
    """Scales latents by a factor (e.g. the first half of a hires fix)."""

    INPUTS = [
        In("samples", "LATENT"),
        Combo("upscale_method", UPSCALE_METHODS),
        Float("scale_by", 1.5, min=0.01, max=8.0, step=0.01),
    ]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples, upscale_method, scale_by):
        s = samples["samples"]
        w, h = max(1, round(s.shape[-1] * scale_by)), max(1, round(s.shape[-2] * scale_by))
        ensure_resize_fits(ctx, s.shape, w, h, upscale_method, input_name="scale_by",
                           what="upscaling the latent")
        return (_copy(samples, samples=ops.resize(s, w, h, upscale_method)),)


@node("latent", display_name="Latent Composite")
class LatentComposite:
    """Pastes samples_from onto samples_to at (x, y) pixels, with an optional feathered edge."""

    INPUTS = [
        In("samples_to", "LATENT"), In("samples_from", "LATENT"),
        Int("x", 0, min=0, max=MAX_RES, step=8), Int("y", 0, min=0, max=MAX_RES, step=8),
        Int("feather", 0, min=0, max=MAX_RES, step=8),
    ]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples_to, samples_from, x, y, feather):
        k = factor_of(samples_to)
        x, y, f = x // k, y // k, feather // k
        dest, src = samples_to["samples"], samples_from["samples"]
        h = min(src.shape[-2], dest.shape[-2] - y)
        w = min(src.shape[-1], dest.shape[-1] - x)
        mask = torch.ones((1, 1, max(h, 0), max(w, 0)))
        for t in range(f):
            rate = (t + 1) / f
            if y != 0:
                mask[:, :, t, :] *= rate
            if y + h < dest.shape[-2]:
                mask[:, :, h - 1 - t, :] *= rate
            if x != 0:
                mask[:, :, :, t] *= rate
            if x + w < dest.shape[-1]:
                mask[:, :, :, w - 1 - t] *= rate
        return (_copy(samples_to, samples=ops.composite(dest, src, x, y, mask if f else None)),)


@node("latent", display_name="LatentCompositeMasked")
class LatentCompositeMasked:
    """Pastes source onto destination at (x, y) pixels through an optional mask."""

    INPUTS = [
        In("destination", "LATENT"), In("source", "LATENT"),
        Int("x", 0, min=0, max=MAX_RES, step=8), Int("y", 0, min=0, max=MAX_RES, step=8),
        Boolean("resize_source", False),
        In("mask", "MASK", optional=True),
    ]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, destination, source, x, y, resize_source, mask=None):
        dest, src = destination["samples"], source["samples"]
        if resize_source:
            src = ops.resize(src, dest.shape[-1], dest.shape[-2], "bilinear")
        m = None
        if mask is not None:
            m = ops.mask_to_bchw(mask).float()
            m = torch.nn.functional.interpolate(m, size=src.shape[-2:], mode="bilinear")
        k = factor_of(destination)
        return (_copy(destination, samples=ops.composite(dest, src, x // k, y // k, m)),)


@node("_for_testing", display_name="Latent Blend")
class LatentBlend:
    """samples1·factor + samples2·(1−factor); samples2 is resized to samples1 if needed."""

    INPUTS = [In("samples1", "LATENT"), In("samples2", "LATENT"),
              Float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01)]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples1, samples2, blend_factor):
        a, b = samples1["samples"], samples2["samples"]
        b = ops.match_size(b, a, "bicubic")
        return (_copy(samples1, samples=a * blend_factor + b * (1 - blend_factor)),)


@node("latent/batch", display_name="Latent From Batch")
class LatentFromBatch:
    """Takes `length` latents starting at `batch_index`; their noise stays that of their index."""

    INPUTS = [In("samples", "LATENT"), Int("batch_index", 0, min=0, max=63), Int("length", 1, min=1, max=64)]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples, batch_index, length):
        s = samples["samples"]
        start = min(s.shape[0] - 1, batch_index)
        end = min(s.shape[0], start + length)
        out = _copy(samples, samples=s[start:end].clone(), batch_index=_batch_index(samples)[start:end])
        mask = samples.get("noise_mask")
        if mask is not None and mask.shape[0] > 1:
            mask = ops.repeat_to_batch(mask, s.shape[0])
            out["noise_mask"] = mask[start:end].clone()
        return (out,)


@node("latent/batch", display_name="Repeat Latent Batch")
class RepeatLatentBatch:
    """Repeats the batch `amount` times; repeated items get new batch indices (new noise)."""

    INPUTS = [In("samples", "LATENT"), Int("amount", 1, min=1, max=64)]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples, amount):
        s = samples["samples"]
        ensure_fits(ctx, amount * memory.tensor_bytes(s.shape) + memory.FIXED_OVERHEAD, input_name="amount",
                    what=f"repeating a latent batch of {s.shape[0]} {amount} times")
        out = _copy(samples, samples=s.repeat((amount, 1, 1, 1)))
        mask = samples.get("noise_mask")
        if mask is not None and mask.shape[0] > 1:
            out["noise_mask"] = ops.repeat_to_batch(mask, s.shape[0]).repeat((amount,) + (1,) * (mask.dim() - 1))
        if "batch_index" in samples:
            idx = samples["batch_index"]
            offset = max(idx) - min(idx) + 1
            out["batch_index"] = [i + k * offset for k in range(amount) for i in idx]
        return (out,)


@node("latent/batch", display_name="LatentBatch")
class LatentBatch:
    """Concatenates two latent batches (samples2 resized to samples1's size)."""

    INPUTS = [In("samples1", "LATENT"), In("samples2", "LATENT")]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples1, samples2):
        a = samples1["samples"]
        b = ops.match_size(samples2["samples"], a, "bilinear")
        # As ComfyUI: each side keeps its own indices (so both halves get the same seeds' noise)
        # and the other keys of samples1 (e.g. its noise mask) stay.
        return (_copy(samples1, samples=torch.cat([a, b]),
                      batch_index=_batch_index(samples1) + _batch_index(samples2)),)


@node("latent/transform", display_name="Flip Latent")
class LatentFlip:
    """Mirrors latents vertically (x-axis) or horizontally (y-axis)."""

    INPUTS = [In("samples", "LATENT"), Combo("flip_method", ["x-axis: vertically", "y-axis: horizontally"])]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples, flip_method):
        dim = 2 if flip_method.startswith("x") else 3
        return (_copy(samples, samples=torch.flip(samples["samples"], dims=[dim])),)


@node("latent/transform", display_name="Rotate Latent")
class LatentRotate:
    """Rotates latents clockwise by 90, 180 or 270 degrees."""

    INPUTS = [In("samples", "LATENT"), Combo("rotation", ["none", "90 degrees", "180 degrees", "270 degrees"])]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples, rotation):
        k = {"none": 0, "90 degrees": 1, "180 degrees": 2, "270 degrees": 3}[rotation]
        return (_copy(samples, samples=torch.rot90(samples["samples"], k=k, dims=[3, 2])),)


@node("latent/transform", display_name="Crop Latent")
class LatentCrop:
    """Crops latents to width×height pixels at (x, y) (all divided by 8; kept inside the latent)."""

    INPUTS = [In("samples", "LATENT"),
              Int("width", 512, min=64, max=MAX_RES, step=8), Int("height", 512, min=64, max=MAX_RES, step=8),
              Int("x", 0, min=0, max=MAX_RES, step=8), Int("y", 0, min=0, max=MAX_RES, step=8)]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples, width, height, x, y):
        s, k = samples["samples"], factor_of(samples)
        x, y = x // k, y // k
        x = max(0, min(x, s.shape[3] - 8))
        y = max(0, min(y, s.shape[2] - 8))
        return (_copy(samples, samples=s[:, :, y:y + height // k, x:x + width // k]),)


@node("latent/inpaint", display_name="Set Latent Noise Mask")
class SetLatentNoiseMask:
    """Restricts sampling to the mask (1 = repaint); the rest of the latent is kept."""

    INPUTS = [In("samples", "LATENT"), In("mask", "MASK")]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples, mask):
        return (_copy(samples, noise_mask=ops.mask_to_bchw(mask)),)


# ------------------------------------------------------------------------ arithmetic (nodes_latent.py)
@node("latent/advanced", display_name="LatentAdd")
class LatentAdd:
    """samples1 + samples2 (samples2 resized and repeated to samples1's shape)."""

    INPUTS = [In("samples1", "LATENT"), In("samples2", "LATENT")]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples1, samples2):
        a = samples1["samples"]
        return (_copy(samples1, samples=a + pixel_ops.reshape_like(samples2["samples"], a)),)


@node("latent/advanced", display_name="LatentSubtract")
class LatentSubtract:
    """samples1 − samples2 (samples2 resized and repeated to samples1's shape)."""

    INPUTS = [In("samples1", "LATENT"), In("samples2", "LATENT")]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples1, samples2):
        a = samples1["samples"]
        return (_copy(samples1, samples=a - pixel_ops.reshape_like(samples2["samples"], a)),)


@node("latent/advanced", display_name="LatentMultiply")
class LatentMultiply:
    """samples · multiplier."""

    INPUTS = [In("samples", "LATENT"), Float("multiplier", 1.0, min=-10.0, max=10.0, step=0.01)]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples, multiplier):
        return (_copy(samples, samples=samples["samples"] * multiplier),)


@node("latent/advanced", display_name="LatentInterpolate")
class LatentInterpolate:
    """Mixes the per-pixel channel directions and magnitudes of two latents (ratio = share of samples1)."""

    INPUTS = [In("samples1", "LATENT"), In("samples2", "LATENT"),
              Float("ratio", 1.0, min=0.0, max=1.0, step=0.01)]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, samples1, samples2, ratio):
        a = samples1["samples"]
        b = pixel_ops.reshape_like(samples2["samples"], a)
        return (_copy(samples1, samples=pixel_ops.interpolate_latents(a, b, ratio)),)


# ----------------------------------------------------------------------------- rebatching (lists)
def _pieces(latent: dict, first_index: int) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """One (samples [1,C,h,w], noise mask [1,1,8h,8w], batch index) per item of a LATENT."""
    s, k = latent["samples"], factor_of(latent)
    mask = latent.get("noise_mask")
    if mask is None:
        mask = torch.ones((1, 1, s.shape[2] * k, s.shape[3] * k))
    mask = ops.mask_to_bchw(mask)
    if mask.shape[-2:] != (s.shape[2] * k, s.shape[3] * k):
        mask = torch.nn.functional.interpolate(mask, size=(s.shape[2] * k, s.shape[3] * k), mode="bilinear")
    mask = ops.repeat_to_batch(mask, s.shape[0])
    index = latent.get("batch_index") or [first_index + i for i in range(s.shape[0])]
    return [(s[i:i + 1], mask[i:i + 1], index[i]) for i in range(s.shape[0])]


def _join(group: list[tuple[torch.Tensor, torch.Tensor, int]]) -> dict:
    out = {"samples": torch.cat([g[0] for g in group]), "batch_index": [g[2] for g in group]}
    mask = torch.cat([g[1] for g in group])
    if float(mask.mean()) != 1.0:  # an all-ones mask means "no mask": leave it out
        out["noise_mask"] = mask
    return out


@node("latent/batch", display_name="Rebatch Latents")
class RebatchLatents:
    """Regroups a list of latent batches into batches of batch_size; a change of latent size
    always starts a new batch. Batch indices (the noise seeds) and noise masks follow their items."""

    INPUT_IS_LIST = True
    INPUTS = [In("latents", "LATENT"), Int("batch_size", 1, min=1, max=4096)]
    OUTPUTS = [Out("LATENT", is_list=True)]

    def run(self, ctx, latents, batch_size):
        size = (batch_size if isinstance(batch_size, list) else [batch_size])[0]
        groups: list[list] = [[]]
        seen = 0
        for latent in latents if isinstance(latents, list) else [latents]:
            for piece in _pieces(latent, seen):
                current = groups[-1]
                if current and (len(current) == size or current[0][0].shape[-2:] != piece[0].shape[-2:]):
                    groups.append(current := [])
                current.append(piece)
            seen += latent["samples"].shape[0]
        return ([_join(g) for g in groups if g],)
