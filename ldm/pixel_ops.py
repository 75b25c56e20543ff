"""Pixel and latent arithmetic behind the utility nodes: morphology, palette quantisation with
dithering, stitching, alpha split/join and latent interpolation.

Images here are IMAGE tensors [B,H,W,C] float 0..1 (ARCHITECTURE.md §1) unless a docstring says
[B,C,H,W]. The semantics are ComfyUI's (its nodes_morphology / nodes_post_processing /
nodes_images / nodes_compositing / nodes_latent), written from their documented behaviour.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ldm.image_ops import repeat_to_batch, resize

MORPHOLOGY_OPS = ["erode", "dilate", "open", "close", "gradient", "bottom_hat", "top_hat"]
DITHERS = ["none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16"]
STITCH_DIRECTIONS = ["right", "down", "left", "up"]
SPACING_COLORS = {"white": 1.0, "black": 0.0, "red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0),
                  "blue": (0.0, 0.0, 1.0)}


# ------------------------------------------------------------------------------------ morphology
def _window_max(x: torch.Tensor, k: int) -> torch.Tensor:
    """Max over a k×k window of [B,C,H,W], the window's origin at k//2 (so even k reaches one
    pixel further up/left). Outside pixels never win: the 'geodesic' border of kornia, which
    ComfyUI's Morphology node uses."""
    lo, hi = k // 2, k - k // 2 - 1
    padded = F.pad(x, (lo, hi, lo, hi), value=float("-inf"))
    return F.max_pool2d(padded, k, stride=1)


def _dilate(x: torch.Tensor, k: int) -> torch.Tensor:
    return _window_max(x, k)


def _erode(x: torch.Tensor, k: int) -> torch.Tensor:
    return -_window_max(-x, k)


def morphology(image: torch.Tensor, operation: str, kernel_size: int) -> torch.Tensor:
    """Grey-scale morphology of IMAGE with a flat square structuring element of side kernel_size."""
    x = image.movedim(-1, 1)
    k = kernel_size
    if operation == "erode":
        out = _erode(x, k)
    elif operation == "dilate":
        out = _dilate(x, k)
    elif operation == "open":
        out = _dilate(_erode(x, k), k)
    elif operation == "close":
        out = _erode(_dilate(x, k), k)
    elif operation == "gradient":
        out = _dilate(x, k) - _erode(x, k)
    elif operation == "top_hat":
        out = x - _dilate(_erode(x, k), k)
    elif operation == "bottom_hat":
        out = _erode(_dilate(x, k), k) - x
    else:
        raise ValueError(f"unknown morphology operation {operation!r}; one of {', '.join(MORPHOLOGY_OPS)}")
    return out.movedim(1, -1)


# ----------------------------------------------------------------------------------- quantisation
def bayer_matrix(order: int) -> torch.Tensor:
    """The Bayer index matrix of side `order` (a power of two): values 0..order²−1, built by the
    recursion M₂ₙ = [[4M, 4M+2], [4M+3, 4M+1]] from M₁ = [[0]]."""
    m = torch.zeros(1, 1, dtype=torch.float64)
    while m.shape[0] < order:
        m = torch.cat([torch.cat([4 * m, 4 * m + 2], 1), torch.cat([4 * m + 3, 4 * m + 1], 1)], 0)
    return m


def _bayer_dither(img: Image.Image, palette: Image.Image, order: int) -> Image.Image:
    """Ordered dithering: add a centred Bayer threshold of amplitude 2·256/colours to every
    channel, clamp, truncate to bytes, then map to the nearest palette colour."""
    colours = len(palette.getpalette()) // 3
    n2 = order * order
    offsets = (2 * 256 / colours) * (bayer_matrix(order) - (n2 - 1) / 2) / n2 + 0.5
    px = torch.from_numpy(np.asarray(img).astype(np.float32))
    h, w = px.shape[:2]
    tiled = offsets.repeat(math.ceil(h / order), math.ceil(w / order))[:h, :w, None]
    px = (px + tiled).clamp(0, 255).to(torch.uint8)
    return Image.fromarray(px.numpy()).quantize(palette=palette, dither=Image.Dither.NONE)


def quantize(image: torch.Tensor, colors: int, dither: str) -> torch.Tensor:
    """Reduces each RGB image to a palette of at most `colors` (Pillow's median cut) and maps the
    pixels onto it without dithering, with Floyd–Steinberg, or with an ordered Bayer matrix."""
    out = []
    for frame in image[..., :3]:
        arr = (frame.clamp(0, 1) * 255).to(torch.uint8).numpy()
        img = Image.fromarray(arr)
        # Quantising against a palette image (instead of colors= alone) keeps the dither switch
        # effective (Pillow issue 5836).
        palette = img.quantize(colors=colors)
        if dither == "none":
            q = img.quantize(palette=palette, dither=Image.Dither.NONE)
        elif dither == "floyd-steinberg":
            q = img.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
        elif dither.startswith("bayer-"):
            q = _bayer_dither(img, palette, int(dither.split("-")[1]))
        else:
            raise ValueError(f"unknown dither {dither!r}; one of {', '.join(DITHERS)}")
        out.append(torch.from_numpy(np.asarray(q.convert("RGB")).astype(np.float32) / 255.0))
    return torch.stack(out)


# --------------------------------------------------------------------------------------- stitching
def _pad_to(image: torch.Tensor, height: int | None, width: int | None, value: float) -> torch.Tensor:
    """Centres IMAGE in a canvas of the given height or width (the other side kept)."""
    dh = 0 if height is None else height - image.shape[1]
    dw = 0 if width is None else width - image.shape[2]
    return F.pad(image, (0, 0, dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), value=value)


def _with_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """Adds opaque (1.0) channels up to `channels`."""
    extra = channels - image.shape[-1]
    if extra <= 0:
        return image
    return torch.cat([image, torch.ones(*image.shape[:-1], extra, dtype=image.dtype)], -1)


def _spacer(like: torch.Tensor, other: torch.Tensor, horizontal: bool, width: int,
            color: float | tuple) -> torch.Tensor:
    """The strip between stitched images: `width` wide, the spacing colour, opaque alpha."""
    b, c = like.shape[0], like.shape[-1]
    shape = (b, max(like.shape[1], other.shape[1]), width, c) if horizontal else \
        (b, width, max(like.shape[2], other.shape[2]), c)
    strip = torch.zeros(shape, dtype=like.dtype)
    values = color if isinstance(color, tuple) else (color,) * 3
    for i, v in enumerate(values[:min(3, c)]):
        strip[..., i] = v
    if c == 4:
        strip[..., 3] = 1.0
    return strip


def stitch(image1: torch.Tensor, image2: torch.Tensor, direction: str, match_image_size: bool,
           spacing_width: int, spacing_color: str) -> torch.Tensor:
    """Places image2 to the right of / below / left of / above image1.

    Batches are evened out by repeating the shorter one's last image. With match_image_size,
    image2 is resized (lanczos, aspect kept) to image1's height (left/right) or width (up/down);
    otherwise the smaller one is centred on a pad of the spacing colour (black for RGB colours).
    Channels are evened out with opaque alpha; spacing is rounded up to an even width.
    """
    n = max(image1.shape[0], image2.shape[0])
    image1 = torch.cat([image1, image1[-1:].repeat(n - image1.shape[0], 1, 1, 1)])
    image2 = torch.cat([image2, image2[-1:].repeat(n - image2.shape[0], 1, 1, 1)])
    horizontal = direction in ("left", "right")
    color = SPACING_COLORS[spacing_color]
    (h1, w1), (h2, w2) = image1.shape[1:3], image2.shape[1:3]
    if match_image_size:
        th, tw = (h1, int(h1 * w2 / h2)) if horizontal else (int(w1 / (w2 / h2)), w1)
        image2 = resize(image2.movedim(-1, 1), tw, th, "lanczos").movedim(1, -1)
    else:
        pad = 0.0 if isinstance(color, tuple) else color
        if horizontal and h1 != h2:
            image1, image2 = _pad_to(image1, max(h1, h2), None, pad), _pad_to(image2, max(h1, h2), None, pad)
        elif not horizontal and w1 != w2:
            image1, image2 = _pad_to(image1, None, max(w1, w2), pad), _pad_to(image2, None, max(w1, w2), pad)
    channels = max(image1.shape[-1], image2.shape[-1])
    image1, image2 = _with_channels(image1, channels), _with_channels(image2, channels)
    parts = [image2, image1] if direction in ("left", "up") else [image1, image2]
    if spacing_width > 0:
        parts.insert(1, _spacer(image1, image2, horizontal, spacing_width + spacing_width % 2, color))
    return torch.cat(parts, dim=2 if horizontal else 1)


# ------------------------------------------------------------------------------------------- alpha
def split_alpha(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IMAGE → (its RGB, MASK = 1 − alpha); an image without alpha is opaque (mask 0)."""
    alpha = image[..., 3] if image.shape[-1] > 3 else torch.ones_like(image[..., 0])
    return image[..., :3], 1.0 - alpha


def join_alpha(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RGB IMAGE + MASK → RGBA with alpha = 1 − mask (mask resized bilinearly, batches repeated)."""
    mask = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1]))
    n = max(image.shape[0], mask.shape[0])
    image, mask = repeat_to_batch(image, n), repeat_to_batch(mask, n)
    alpha = 1.0 - F.interpolate(mask, size=image.shape[1:3], mode="bilinear")[:, 0]
    return torch.cat([image[..., :3], alpha.unsqueeze(-1)], dim=-1)


# ----------------------------------------------------------------------------------------- latents
def reshape_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B,C,h,w] x resized (bilinear, centre crop) to like's spatial size and repeated to its batch."""
    if x.shape[1:] != like.shape[1:]:
        x = resize(x, like.shape[-1], like.shape[-2], "bilinear", "center")
    return repeat_to_batch(x, like.shape[0])


def interpolate_latents(s1: torch.Tensor, s2: torch.Tensor, ratio: float) -> torch.Tensor:
    """Per-pixel interpolation of channel vectors: directions mixed ratio·s1 + (1−ratio)·s2 and
    renormalised, magnitudes mixed linearly (so a 50/50 mix keeps the latents' energy)."""
    m1 = torch.linalg.vector_norm(s1, dim=1, keepdim=True)
    m2 = torch.linalg.vector_norm(s2, dim=1, keepdim=True)
    t = torch.nan_to_num(s1 / m1) * ratio + torch.nan_to_num(s2 / m2) * (1.0 - ratio)
    direction = torch.nan_to_num(t / torch.linalg.vector_norm(t, dim=1, keepdim=True))
    return direction * (m1 * ratio + m2 * (1.0 - ratio))
