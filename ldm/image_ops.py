"""Pixel- and latent-space tensor operations shared by the image, mask and latent nodes.

Conventions (ARCHITECTURE.md §1): IMAGE is [B,H,W,C] float 0..1, MASK is [B,H,W], latents are
[B,C,h,w]. Functions here take and return channel-first tensors unless their name says otherwise,
and know nothing of graphs.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

TORCH_MODES = {"nearest-exact", "bilinear", "area", "bicubic"}


def center_crop_to_aspect(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Crops [B,C,H,W] around its centre to the aspect ratio width:height (ComfyUI's crop='center')."""
    old_w, old_h = x.shape[-1], x.shape[-2]
    old_aspect, new_aspect = old_w / old_h, width / height
    x0 = y0 = 0
    if old_aspect > new_aspect:
        x0 = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y0 = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    return x[..., y0:old_h - y0, x0:old_w - x0]


def resize(x: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """Resizes [B,C,H,W] to (height, width) with torch's interpolate, lanczos (PIL) or bislerp."""
    if crop == "center":
        x = center_crop_to_aspect(x, width, height)
    if method == "bislerp":
        return bislerp(x, width, height)
    if method == "lanczos":
        return lanczos(x, width, height)
    if method not in TORCH_MODES:
        raise ValueError(f"unknown upscale method '{method}'")
    return F.interpolate(x, size=(height, width), mode=method)


def lanczos(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Lanczos resampling through Pillow, image by image (8-bit, as Pillow works in bytes)."""
    out = []
    for img in x.movedim(1, -1):
        arr = np.clip(255.0 * img.cpu().numpy(), 0, 255).astype(np.uint8)
        pil = Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr)
        pil = pil.resize((width, height), resample=Image.Resampling.LANCZOS)
        res = torch.from_numpy(np.asarray(pil).astype(np.float32) / 255.0)
        out.append(res.reshape(height, width, -1))
    return torch.stack(out).movedim(-1, 1).to(x.device, x.dtype)


def _slerp_rows(a: torch.Tensor, b: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of row vectors a→b [N,C] by ratios r [N,1]; magnitudes lerp linearly."""
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua = torch.where(na > 0, a / na.clamp_min(1e-30), torch.zeros_like(a))
    ub = torch.where(nb > 0, b / nb.clamp_min(1e-30), torch.zeros_like(b))
    dot = (ua * ub).sum(-1)
    omega = torch.acos(dot.clamp(-1.0, 1.0))
    so = torch.sin(omega)
    wa = torch.sin((1.0 - r.squeeze(1)) * omega) / so
    wb = torch.sin(r.squeeze(1) * omega) / so
    res = wa.unsqueeze(1) * ua + wb.unsqueeze(1) * ub
    res = res * (na * (1.0 - r) + nb * r)
    same = dot > 1 - 1e-5
    opposite = dot < 1e-5 - 1
    res[same] = a[same]
    res[opposite] = (a * (1.0 - r) + b * r)[opposite]
    return res


def _bilinear_taps(n_old: int, n_new: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each new position: left source index, right source index and the ratio between them.

    Positions come from bilinearly resizing the coordinate ramp (align_corners=False), so the taps
    agree with torch's bilinear sampling, clamped at the borders.
    """
    ramp = torch.arange(n_old, dtype=torch.float32).reshape(1, 1, 1, -1)
    pos = F.interpolate(ramp, size=(1, n_new), mode="bilinear").reshape(-1)
    left = pos.floor()
    ratio = (pos - left).reshape(-1, 1)
    right_ramp = ramp + 1
    right_ramp[..., -1] -= 1
    right = F.interpolate(right_ramp, size=(1, n_new), mode="bilinear").reshape(-1)
    return left.long(), right.long(), ratio


def _bislerp_width(x: torch.Tensor, width: int) -> torch.Tensor:
    """Resizes the last axis of [B,C,H,W] with per-pixel channel-vector slerp."""
    b, c, h, w = x.shape
    left, right, ratio = _bilinear_taps(w, width)
    rows = x.permute(0, 2, 3, 1)  # B,H,W,C
    a = rows[:, :, left.clamp(0, w - 1)].reshape(-1, c)
    bb = rows[:, :, right.clamp(0, w - 1)].reshape(-1, c)
    r = ratio.reshape(1, 1, width, 1).expand(b, h, width, 1).reshape(-1, 1)
    out = _slerp_rows(a, bb, r).reshape(b, h, width, c)
    return out.permute(0, 3, 1, 2)


def bislerp(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bilinear-style resize that slerps channel vectors (keeps latent magnitudes; width, then height)."""
    dtype = x.dtype
    out = _bislerp_width(x.float(), width)
    out = _bislerp_width(out.transpose(2, 3), height).transpose(2, 3)
    return out.to(dtype)


def image_to_bchw(image: torch.Tensor) -> torch.Tensor:
    return image.movedim(-1, 1)


def bchw_to_image(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(1, -1)


def resize_image(image: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """IMAGE [B,H,W,C] → resized IMAGE; a 0 width or height keeps the aspect ratio."""
    h, w = image.shape[1], image.shape[2]
    if width == 0 and height == 0:
        return image
    if width == 0:
        width = max(1, round(w * height / h))
    elif height == 0:
        height = max(1, round(h * width / w))
    return bchw_to_image(resize(image_to_bchw(image), width, height, method, crop))


def match_size(x: torch.Tensor, like: torch.Tensor, method: str = "bilinear") -> torch.Tensor:
    """Resizes [B,C,H,W] x to like's spatial size with a centre crop (used when batching/blending)."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return resize(x, like.shape[-1], like.shape[-2], method, "center")


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """A normalised 2-D Gaussian kernel of odd `size`."""
    ax = torch.linspace(-1, 1, size)
    xx, yy = torch.meshgrid(ax, ax, indexing="ij")
    d = torch.sqrt(xx * xx + yy * yy)
    g = torch.exp(-(d * d) / (2.0 * sigma * sigma))
    return g / g.sum()


def filter2d(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolves every channel of IMAGE [B,H,W,C] with `kernel` using reflect padding."""
    c = image.shape[-1]
    k = kernel.to(image.dtype).repeat(c, 1, 1).unsqueeze(1)
    pad = kernel.shape[-1] // 2
    x = F.pad(image_to_bchw(image), (pad, pad, pad, pad), mode="reflect")
    return bchw_to_image(F.conv2d(x, k, groups=c))


def blur(image: torch.Tensor, radius: int, sigma: float) -> torch.Tensor:
    """Gaussian blur of IMAGE with a (2·radius+1)² kernel."""
    if radius == 0:
        return image
    return filter2d(image, gaussian_kernel(radius * 2 + 1, sigma))


def sharpen(image: torch.Tensor, radius: int, sigma: float, alpha: float) -> torch.Tensor:
    """Unsharp-style sharpening: identity plus alpha·10 times the negated Gaussian's detail."""
    if radius == 0:
        return image
    size = radius * 2 + 1
    kernel = gaussian_kernel(size, sigma) * -(alpha * 10)
    c = size // 2
    kernel[c, c] = kernel[c, c] - kernel.sum() + 1.0
    return filter2d(image, kernel).clamp(0, 1)


def composite(dest: torch.Tensor, src: torch.Tensor, x: int, y: int,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pastes src [B,C,h,w] onto a copy of dest [B,C,H,W] at (x, y), optionally through mask [B|1,1,h,w].

    The source is clipped at dest's borders; batches broadcast by repetition.
    """
    out = dest.clone()
    x = max(0, min(x, dest.shape[-1]))
    y = max(0, min(y, dest.shape[-2]))
    w = min(src.shape[-1], dest.shape[-1] - x)
    h = min(src.shape[-2], dest.shape[-2] - y)
    if w <= 0 or h <= 0:
        return out
    src = repeat_to_batch(src, dest.shape[0])[..., :h, :w]
    region = out[..., y:y + h, x:x + w]
    if mask is None:
        out[..., y:y + h, x:x + w] = src
    else:
        m = repeat_to_batch(mask, dest.shape[0])[..., :h, :w]
        out[..., y:y + h, x:x + w] = src * m + region * (1.0 - m)
    return out


def repeat_to_batch(t: torch.Tensor, batch: int) -> torch.Tensor:
    """Repeats (or trims) the batch axis of t to `batch` items."""
    if t.shape[0] == batch:
        return t
    reps = math.ceil(batch / t.shape[0])
    return t.repeat((reps,) + (1,) * (t.dim() - 1))[:batch]


def mask_to_bchw(mask: torch.Tensor) -> torch.Tensor:
    """MASK [H,W] or [B,H,W] (or already [B,1,H,W]) → [B,1,H,W]."""
    return mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1]))


def grow_mask(mask: torch.Tensor, expand: int, tapered_corners: bool) -> torch.Tensor:
    """Dilates (expand > 0) or erodes (expand < 0) MASK [B,H,W] by |expand| 3×3 steps.

    With tapered corners the structuring element is a cross, otherwise a full square; borders
    replicate the edge pixel, so the image edge itself neither grows nor erodes the mask.
    """
    x = mask_to_bchw(mask).float()
    c = 0.0 if tapered_corners else 1.0
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if c or dy == 0 or dx == 0]
    for _ in range(abs(expand)):
        p = F.pad(x, (1, 1, 1, 1), mode="replicate")
        h, w = x.shape[-2:]
        shifted = torch.stack([p[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in offsets])
        x = shifted.amax(0) if expand > 0 else shifted.amin(0)
    return x.reshape(mask.shape[:-2] + x.shape[-2:]) if mask.dim() == 3 else x[:, 0]


def outpaint_pad(image: torch.Tensor, left: int, top: int, right: int, bottom: int,
                 feathering: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pads IMAGE with 0.5 grey and returns (padded image, mask): 1 on the new border, feathered inside.

    Inside the original area, pixels closer than `feathering` to a padded side get (f−d)²/f²,
    d being the distance to the nearest padded side (unpadded sides do not count).
    """
    b, h, w, c = image.shape
    out = torch.full((b, h + top + bottom, w + left + right, c), 0.5, dtype=image.dtype)
    out[:, top:top + h, left:left + w, :] = image
    mask = torch.ones((h + top + bottom, w + left + right), dtype=torch.float32)
    inner = torch.zeros((h, w), dtype=torch.float32)
    if feathering > 0 and feathering * 2 < h and feathering * 2 < w:
        i = torch.arange(h, dtype=torch.float32).reshape(-1, 1).expand(h, w)
        j = torch.arange(w, dtype=torch.float32).reshape(1, -1).expand(h, w)
        far = torch.full_like(i, float(max(h, w)))
        dists = [i if top else far, (h - i) if bottom else far, j if left else far, (w - j) if right else far]
        d = torch.stack(dists).amin(0)
        v = (feathering - d) / feathering
        inner = torch.where(d < feathering, v * v, inner)
    mask[top:top + h, left:left + w] = inner
    return out, mask.unsqueeze(0)
