"""Conditioning nodes: text encoding and the ComfyUI conditioning algebra.

CONDITIONING is a list of `[cond, opts]` pairs (ARCHITECTURE.md §1). Every node returns new lists
and new opts dicts; tensors are shared, never modified in place.
"""
from __future__ import annotations

import torch

from nodes.memory import encode_fitting
from nodes.registry import Boolean, Combo, Float, In, Int, Out, String, node

MAX_RES = 16384


def _pass_warnings(ctx, clip) -> None:
    """What the encoder skipped (an embedding missing, refused or unreadable) reaches the user."""
    for w in getattr(clip, "last_warnings", []) or []:
        ctx.warn(w)


def _with(conditioning: list, **changes) -> list:
    """A copy of `conditioning` with `changes` merged into every entry's opts."""
    return [[c, {**opts, **changes}] for c, opts in conditioning]


@node("conditioning", display_name="CLIP Text Encode (Prompt)")
class CLIPTextEncode:
    """Encodes a text prompt using a CLIP model into an embedding that can be used to guide the diffusion model
    towards generating specific images."""

    INPUTS = [String("text", "", multiline=True, dynamic_prompts=True, tooltip="The text to be encoded."),
              In("clip", "CLIP", tooltip="The CLIP model used for encoding the text.")]
    OUTPUTS = [Out("CONDITIONING", tooltip="A conditioning containing the embedded text used to guide the diffusion model.")]

    def run(self, ctx, text, clip):
        if clip is None:
            raise ValueError("input 'clip': the checkpoint has no text encoder (clip is None)")
        cond, pooled = clip.encode(text)
        _pass_warnings(ctx, clip)
        return ([[cond, {"pooled_output": pooled}]],)


@node("advanced/conditioning", display_name="CLIPTextEncodeSDXL")
class CLIPTextEncodeSDXL:
    """SDXL text encoding with separate prompts for the two encoders and size/crop conditioning."""

    INPUTS = [In("clip", "CLIP"),
              Int("width", 1024, min=0, max=MAX_RES), Int("height", 1024, min=0, max=MAX_RES),
              Int("crop_w", 0, min=0, max=MAX_RES), Int("crop_h", 0, min=0, max=MAX_RES),
              Int("target_width", 1024, min=0, max=MAX_RES), Int("target_height", 1024, min=0, max=MAX_RES),
              String("text_g", "", multiline=True, dynamic_prompts=True),
              String("text_l", "", multiline=True, dynamic_prompts=True)]
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx, clip, width, height, crop_w, crop_h, target_width, target_height, text_g, text_l):
        cond, pooled = clip.encode_sdxl(text_g, text_l)
        _pass_warnings(ctx, clip)
        opts = {"pooled_output": pooled, "width": width, "height": height, "crop_w": crop_w,
                "crop_h": crop_h, "target_width": target_width, "target_height": target_height}
        return ([[cond, opts]],)


@node("advanced/conditioning", display_name="CLIPTextEncodeSDXLRefiner")
class CLIPTextEncodeSDXLRefiner:
    """SDXL refiner text encoding with the aesthetic-score conditioning."""

    INPUTS = [Float("ascore", 6.0, min=0.0, max=1000.0, step=0.01),
              Int("width", 1024, min=0, max=MAX_RES), Int("height", 1024, min=0, max=MAX_RES),
              String("text", "", multiline=True, dynamic_prompts=True), In("clip", "CLIP")]
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx, ascore, width, height, text, clip):
        cond, pooled = clip.encode(text)
        _pass_warnings(ctx, clip)
        return ([[cond, {"pooled_output": pooled, "aesthetic_score": ascore, "width": width, "height": height}]],)


@node("conditioning", display_name="Conditioning (Combine)")
class ConditioningCombine:
    """Both conditionings apply; the sampler averages their predictions."""

    INPUTS = [In("conditioning_1", "CONDITIONING"), In("conditioning_2", "CONDITIONING")]
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx, conditioning_1, conditioning_2):
        return (list(conditioning_1) + list(conditioning_2),)


def _fit_tokens(t: torch.Tensor, length: int) -> torch.Tensor:
    """Truncates or zero-pads [1,T,C] to `length` tokens."""
    t = t[:, :length]
    if t.shape[1] < length:
        pad = torch.zeros((t.shape[0], length - t.shape[1], t.shape[2]), dtype=t.dtype)
        t = torch.cat([t, pad], dim=1)
    return t


@node("conditioning", display_name="ConditioningAverage")  # ComfyUI's display mapping key has a stray space
class ConditioningAverage:
    """Interpolates conditioning_to towards the first entry of conditioning_from."""

    INPUTS = [In("conditioning_to", "CONDITIONING"), In("conditioning_from", "CONDITIONING"),
              Float("conditioning_to_strength", 1.0, min=0.0, max=1.0, step=0.01)]
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx, conditioning_to, conditioning_from, conditioning_to_strength):
        if not conditioning_from:
            return (conditioning_to,)
        if len(conditioning_from) > 1:
            ctx.warn("ConditioningAverage: only the first entry of conditioning_from is used")
        src, src_opts = conditioning_from[0]
        s = conditioning_to_strength
        out = []
        for cond, opts in conditioning_to:
            mixed = cond * s + _fit_tokens(src, cond.shape[1]) * (1.0 - s)
            new = dict(opts)
            pa, pb = opts.get("pooled_output"), src_opts.get("pooled_output")
            if pa is not None and pb is not None:
                new["pooled_output"] = pa * s + pb * (1.0 - s)
            elif pb is not None:
                new["pooled_output"] = pb
            out.append([mixed, new])
        return (out,)


@node("conditioning", display_name="Conditioning (Concat)")
class ConditioningConcat:
    """Appends the tokens of conditioning_from's first entry to every entry of conditioning_to."""

    INPUTS = [In("conditioning_to", "CONDITIONING"), In("conditioning_from", "CONDITIONING")]
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx, conditioning_to, conditioning_from):
        if not conditioning_from:
            return (conditioning_to,)
        src = conditioning_from[0][0]
        return ([[torch.cat([c, src], dim=1), dict(o)] for c, o in conditioning_to],)


@node("conditioning", display_name="Conditioning (Set Area)")
class ConditioningSetArea:
    """Restricts the conditioning to a rectangle (pixels) with a strength."""

    INPUTS = [In("conditioning", "CONDITIONING"),
              Int("width", 64, min=64, max=MAX_RES, step=8), Int("height", 64, min=64, max=MAX_RES, step=8),
              Int("x", 0, min=0, max=MAX_RES, step=8), Int("y", 0, min=0, max=MAX_RES, step=8),
              Float("strength", 1.0, min=0.0, max=10.0, step=0.01)]
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx, conditioning, width, height, x, y, strength):
        area = (height // 8, width // 8, y // 8, x // 8)
        return (_with(conditioning, area=area, strength=strength, set_area_to_bounds=False),)


@node("conditioning", display_name="Conditioning (Set Area with Percentage)")
class ConditioningSetAreaPercentage:
    """Like Set Area, in fractions of the image size (resolved when sampling)."""

    INPUTS = [In("conditioning", "CONDITIONING"),
              Float("width", 1.0, min=0, max=1.0, step=0.01), Float("height", 1.0, min=0, max=1.0, step=0.01),
              Float("x", 0, min=0, max=1.0, step=0.01), Float("y", 0, min=0, max=1.0, step=0.01),
              Float("strength", 1.0, min=0.0, max=10.0, step=0.01)]
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx, conditioning, width, height, x, y, strength):
        area = ("percentage", height, width, y, x)
        return (_with(conditioning, area=area, strength=strength, set_area_to_bounds=False),)


@node("conditioning", display_name="ConditioningSetAreaStrength")
class ConditioningSetAreaStrength:
    """Sets the strength of a conditioning."""

    INPUTS = [In("conditioning", "CONDITIONING"), Float("strength", 1.0, min=0.0, max=10.0, step=0.01)]
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx, conditioning, strength):
        return (_with(conditioning, strength=strength),)


@node("conditioning", display_name="Conditioning (Set Mask)")
class ConditioningSetMask:
    """Restricts the conditioning to a mask (or to the mask's bounding box)."""

    INPUTS = [In("conditioning", "CONDITIONING"), In("mask", "MASK"),
              Float("strength", 1.0, min=0.0, max=10.0, step=0.01),
              Combo("set_cond_area", ["default", "mask bounds"])]
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx, conditioning, mask, strength, set_cond_area):
        if mask.dim() < 3:
            mask = mask.unsqueeze(0)
        return (_with(conditioning, mask=mask, set_area_to_bounds=set_cond_area != "default",
                      mask_strength=strength),)


@node("advanced/conditioning", display_name="ConditioningZeroOut")
class ConditioningZeroOut:
    """Zeros the conditioning (and pooled output): an 'empty' conditioning for SDXL-style negatives."""

    INPUTS = [In("conditioning", "CONDITIONING")]
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx, conditioning):
        out = []
        for cond, opts in conditioning:
            new = dict(opts)
            if opts.get("pooled_output") is not None:
                new["pooled_output"] = torch.zeros_like(opts["pooled_output"])
            out.append([torch.zeros_like(cond), new])
        return (out,)


@node("advanced/conditioning", display_name="ConditioningSetTimestepRange")
class ConditioningSetTimestepRange:
    """Applies the conditioning only between two fractions of the sampling schedule."""

    INPUTS = [In("conditioning", "CONDITIONING"),
              Float("start", 0.0, min=0.0, max=1.0, step=0.001), Float("end", 1.0, min=0.0, max=1.0, step=0.001)]
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx, conditioning, start, end):
        return (_with(conditioning, start_percent=start, end_percent=end),)


def crop_to_multiple(pixels: torch.Tensor, m: int) -> torch.Tensor:
    """Centre-crops IMAGE [B,H,W,C] to multiples of m (as VAE encoders require)."""
    h, w = (pixels.shape[1] // m) * m, (pixels.shape[2] // m) * m
    if (h, w) == tuple(pixels.shape[1:3]):
        return pixels
    y0, x0 = (pixels.shape[1] % m) // 2, (pixels.shape[2] % m) // 2
    return pixels[:, y0:y0 + h, x0:x0 + w, :]


def check_mask_size(ctx, mask: torch.Tensor, pixels: torch.Tensor) -> None:
    """A mask of another size is stretched to the image (ComfyUI does the same); a different aspect
    ratio is almost certainly the wrong mask, so that is an error naming the input."""
    mh, mw = mask.shape[-2], mask.shape[-1]
    ih, iw = pixels.shape[1], pixels.shape[2]
    if (mh, mw) == (ih, iw):
        return
    if abs(mw / mh - iw / ih) > 0.02 * (iw / ih):
        raise ValueError(f"input 'mask': the mask is {mw}×{mh} but the image is {iw}×{ih} "
                         "(a different aspect ratio); use a mask made for this image")
    ctx.warn(f"input 'mask': {mw}×{mh} mask resized to the image's {iw}×{ih}")


def mask_for_pixels(mask: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """MASK resized (bilinear) to the image: [B,1,H,W]."""
    m = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).float()
    return torch.nn.functional.interpolate(m, size=(pixels.shape[1], pixels.shape[2]), mode="bilinear")


def grey_out(pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pixels set to 0.5 grey where the (rounded) mask is 1: what inpainting models expect."""
    keep = (1.0 - mask.round()).squeeze(1).unsqueeze(-1)
    if keep.shape[0] != pixels.shape[0]:
        keep = keep.expand(pixels.shape[0], -1, -1, -1)
    return (pixels - 0.5) * keep + 0.5


@node("conditioning/inpaint", display_name="InpaintModelConditioning")
class InpaintModelConditioning:
    """Prepares conditioning (masked-image latent + mask) for inpainting models; works with any model."""

    INPUTS = [In("positive", "CONDITIONING"), In("negative", "CONDITIONING"), In("vae", "VAE"),
              In("pixels", "IMAGE"), In("mask", "MASK"),
              Boolean("noise_mask", True, tooltip="Add a noise mask to the latent so sampling will only happen "
                      "within the mask. Might improve results or completely break things depending on the model.")]
    OUTPUTS = [Out("CONDITIONING", "positive"), Out("CONDITIONING", "negative"), Out("LATENT", "latent")]

    def run(self, ctx, positive, negative, vae, pixels, mask, noise_mask=True):
        check_mask_size(ctx, mask, pixels)
        f = vae.downscale_ratio
        m = mask_for_pixels(mask, pixels)
        pixels = crop_to_multiple(pixels[..., :3], f)
        m = crop_to_multiple(m.movedim(1, -1), f).movedim(-1, 1)
        orig = encode_fitting(ctx, vae, pixels)
        concat = encode_fitting(ctx, vae, grey_out(pixels, m))
        latent = {"samples": orig}
        if noise_mask:
            latent["noise_mask"] = m
        extra = {"concat_latent_image": concat, "concat_mask": m}
        return (_with(positive, **extra), _with(negative, **extra), latent)
