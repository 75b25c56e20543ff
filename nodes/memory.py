"""Memory checks nodes run before they allocate (helpers only; this module declares no node).

`ldm.memory` estimates what a computation needs and what is free; here a refusal becomes an
`engine.errors.NodeError` naming the node and the input at fault, so the user sees an
`execution_error` such as "node 3 (KSampler) input 'latent_image': sampling a 2048×2048 latent
(batch 1, 16384×16384 pixels) needs ~40.8 GiB, 18.0 GiB available; try a smaller size or
batch_size" instead of the server being killed by the OOM killer.
"""
from __future__ import annotations

import torch

from engine.errors import NodeError
from ldm import memory

SMALLER = "try a smaller size or batch_size"


def ensure_fits(ctx, needed: int, *, input_name: str | None, what: str, hint: str = SMALLER,
                device: torch.device | str | None = "cpu") -> None:
    """Raises a NodeError (naming ctx's node and `input_name`) when `needed` bytes do not fit.

    `device` is where the allocation happens: "cpu" for IMAGE/LATENT/MASK tensors (they live in
    RAM), None for the model compute device.
    """
    try:
        memory.check_fits(needed, what, hint, device)
    except memory.MemoryEstimateError as exc:
        raise refusal(ctx, exc, input_name) from None


def refusal(ctx, exc: memory.MemoryEstimateError, input_name: str | None) -> NodeError:
    """The NodeError for a MemoryEstimateError raised while running ctx's node."""
    return NodeError(str(exc), node_id=getattr(ctx, "node_id", None),
                     class_type=getattr(ctx, "class_type", None) or None, input_name=input_name)


def ensure_image_fits(ctx, batch: int, height: int, width: int, channels: int, *,
                      input_name: str | None, what: str, copies: int = 2) -> None:
    """For nodes that build an IMAGE/MASK-shaped result: `copies` float32 tensors of that size
    (the result and one temporary) must fit."""
    needed = copies * memory.image_bytes(batch, height, width, channels) + memory.FIXED_OVERHEAD
    ensure_fits(ctx, needed, input_name=input_name, what=f"{what} ({width}×{height}, batch {batch})")


def ensure_resize_fits(ctx, x_shape: tuple[int, ...], width: int, height: int, method: str, *,
                       input_name: str | None, what: str) -> None:
    """Before resizing a [B,C,h,w] tensor (or IMAGE viewed channel-first) to width×height."""
    b, c, h, w = x_shape
    needed = memory.resize_bytes(b, c, (h, w), (height, width), method) + memory.FIXED_OVERHEAD
    ensure_fits(ctx, needed, input_name=input_name, what=f"{what} to {width}×{height} (batch {b})")


# ------------------------------------------------------------------------------------ VAE
TILES = (512, 256, 128, 64)  # pixel tile sizes tried, largest (fewest seams) first


def _overlap(tile: int) -> int:
    return min(64, tile // 4)


def _compute() -> tuple[torch.device, torch.dtype]:
    from ldm import devices

    device = devices.get_device()
    return device, devices.compute_dtype(device)


def _fit_or_tile(ctx, kind: str, full: int, tiled, size: str, input_name: str,
                 device: torch.device) -> int | None:
    """None when the whole pass fits; else the largest tile size that fits (with a warning);
    else a NodeError with both figures."""
    if memory.fits(full, device):
        return None
    for tile in TILES:
        if memory.fits(tiled(tile), device):
            available = memory.available_bytes(device) or 0
            ctx.warn(f"{kind} the {size} image in one piece needs ~{memory.format_bytes(full)}, "
                     f"{memory.format_bytes(available)} available: {kind} in {tile}-pixel tiles instead")
            return tile
    smallest = TILES[-1]
    exc = memory.MemoryEstimateError(
        tiled(smallest), memory.available_bytes(device) or 0,
        f"{kind} the {size} image even in {smallest}-pixel tiles",
        f"in one piece ~{memory.format_bytes(full)}; {SMALLER}")
    raise refusal(ctx, exc, input_name)


def decode_fitting(ctx, vae, latent: torch.Tensor, input_name: str = "samples") -> torch.Tensor:
    """vae.decode, or vae.decode_tiled when the whole image would not fit (as ComfyUI falls back
    on out-of-memory errors, but decided before allocating); a NodeError when no tiling fits."""
    device, dtype = _compute()
    b, _, h, w = latent.shape
    f = vae.downscale_ratio

    def need(tile: int | None) -> int:
        return memory.vae_decode_bytes(vae.config, b, h, w, dtype, tile=tile,
                                       overlap=_overlap(tile or 0), device=device)

    tile = _fit_or_tile(ctx, "decoding", need(None), need, f"{w * f}×{h * f} (batch {b})",
                        input_name, device)
    if tile is None:
        return vae.decode(latent)
    return vae.decode_tiled(latent, tile=tile, overlap=_overlap(tile))


def encode_fitting(ctx, vae, pixels: torch.Tensor, input_name: str = "pixels") -> torch.Tensor:
    """vae.encode, or vae.encode_tiled when the whole image would not fit (see decode_fitting)."""
    device, dtype = _compute()
    b, h, w = pixels.shape[0], pixels.shape[1], pixels.shape[2]

    def need(tile: int | None) -> int:
        return memory.vae_encode_bytes(vae.config, b, h, w, dtype, tile=tile,
                                       overlap=_overlap(tile or 0), device=device)

    tile = _fit_or_tile(ctx, "encoding", need(None), need, f"{w}×{h} (batch {b})", input_name, device)
    if tile is None:
        return vae.encode(pixels)
    return vae.encode_tiled(pixels, tile=tile, overlap=_overlap(tile))


def ensure_tiled_fits(ctx, vae, shape: tuple[int, ...], tile: int, overlap: int, *,
                      decode: bool) -> None:
    """VAEDecodeTiled / VAEEncodeTiled with the user's tile size (shape: latent or IMAGE)."""
    device, dtype = _compute()
    if decode:
        b, _, h, w = shape
        f = vae.downscale_ratio
        needed = memory.vae_decode_bytes(vae.config, b, h, w, dtype, tile=tile, overlap=overlap,
                                         device=device)
        what, name = f"decoding the {w * f}×{h * f} image (batch {b}) in {tile}-pixel tiles", "samples"
    else:
        b, h, w = shape[0], shape[1], shape[2]
        needed = memory.vae_encode_bytes(vae.config, b, h, w, dtype, tile=tile, overlap=overlap,
                                         device=device)
        what, name = f"encoding the {w}×{h} image (batch {b}) in {tile}-pixel tiles", "pixels"
    ensure_fits(ctx, needed, input_name=name, what=what, device=device,
                hint="try a smaller tile_size or a smaller image")
