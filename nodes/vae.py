"""VAE nodes: decode/encode (plain and tiled) and the inpainting encode (ComfyUI names and inputs)."""
from __future__ import annotations

import math

import torch

from nodes.conditioning import check_mask_size, crop_to_multiple, grey_out, mask_for_pixels
from nodes.memory import decode_fitting, encode_fitting, ensure_tiled_fits
from nodes.latent_space import with_factor
from nodes.registry import In, Int, Out, node


def _tile_inputs(verb: str = "decode", tile_step: int = 32) -> list:
    return [Int("tile_size", 512, min=64, max=4096, step=tile_step),
            Int("overlap", 64, min=0, max=4096, step=32),
            Int("temporal_size", 64, min=8, max=4096, step=4,
                tooltip=f"Only used for video VAEs: Amount of frames to {verb} at a time."),
            Int("temporal_overlap", 8, min=4, max=4096, step=4,
                tooltip="Only used for video VAEs: Amount of frames to overlap.")]


@node("latent", display_name="VAE Decode")
class VAEDecode:
    """Decodes latent images back into pixel space images."""

    INPUTS = [In("samples", "LATENT", tooltip="The latent to be decoded."),
              In("vae", "VAE", tooltip="The VAE model used for decoding the latent.")]
    OUTPUTS = [Out("IMAGE", tooltip="The decoded image.")]

    def run(self, ctx, samples, vae):
        if vae is None:
            raise ValueError("input 'vae': the checkpoint has no VAE; load one with Load VAE")
        return (decode_fitting(ctx, vae, samples["samples"]),)


@node("_for_testing", display_name="VAE Decode (Tiled)")
class VAEDecodeTiled:
    """Decodes latents tile by tile (less memory for large images); seams are feathered."""

    INPUTS = [In("samples", "LATENT"), In("vae", "VAE")] + _tile_inputs()
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, samples, vae, tile_size, overlap, temporal_size=64, temporal_overlap=8):
        overlap = min(overlap, tile_size // 4)
        ensure_tiled_fits(ctx, vae, samples["samples"].shape, tile_size, overlap, decode=True)
        return (vae.decode_tiled(samples["samples"], tile=tile_size, overlap=overlap),)


@node("latent", display_name="VAE Encode")
class VAEEncode:
    """Encodes images into latents (centre-cropped to a multiple of the VAE's factor)."""

    INPUTS = [In("pixels", "IMAGE"), In("vae", "VAE")]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, pixels, vae):
        pixels = crop_to_multiple(pixels, vae.downscale_ratio)
        return (with_factor({"samples": encode_fitting(ctx, vae, pixels[..., :3])}, vae.downscale_ratio),)


@node("_for_testing", display_name="VAE Encode (Tiled)")
class VAEEncodeTiled:
    """Encodes images tile by tile."""

    INPUTS = [In("pixels", "IMAGE"), In("vae", "VAE")] + _tile_inputs("encode", tile_step=64)
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, pixels, vae, tile_size, overlap, temporal_size=64, temporal_overlap=8):
        pixels = crop_to_multiple(pixels, vae.downscale_ratio)
        ensure_tiled_fits(ctx, vae, pixels.shape, tile_size, overlap, decode=False)
        latent = {"samples": vae.encode_tiled(pixels[..., :3], tile=tile_size, overlap=overlap)}
        return (with_factor(latent, vae.downscale_ratio),)


def grow(mask: torch.Tensor, by: int) -> torch.Tensor:
    """Dilates a [B,1,H,W] mask with a by×by box (ComfyUI's grow_mask_by), result clamped to 0..1."""
    if by == 0:
        return mask
    kernel = torch.ones((1, 1, by, by))
    pad = math.ceil((by - 1) / 2)
    grown = torch.nn.functional.conv2d(mask.round(), kernel, padding=pad)
    return grown[..., :mask.shape[-2], :mask.shape[-1]].clamp(0, 1)


@node("latent/inpaint", display_name="VAE Encode (for Inpainting)")
class VAEEncodeForInpaint:
    """Encodes the image with the masked area greyed out and sets a grown noise mask (1 = inpaint)."""

    INPUTS = [In("pixels", "IMAGE"), In("vae", "VAE"), In("mask", "MASK"),
              Int("grow_mask_by", 6, min=0, max=64, step=1)]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, pixels, vae, mask, grow_mask_by):
        check_mask_size(ctx, mask, pixels)
        f = vae.downscale_ratio
        m = mask_for_pixels(mask, pixels)
        pixels = crop_to_multiple(pixels[..., :3], f)
        m = crop_to_multiple(m.movedim(1, -1), f).movedim(-1, 1)
        grown = grow(m, grow_mask_by)
        latent = encode_fitting(ctx, vae, grey_out(pixels, m))
        return (with_factor({"samples": latent, "noise_mask": grown.round()}, f),)
