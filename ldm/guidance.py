"""Classifier-free guidance over ComfyUI-style conditioning lists (area, mask, timestep range, adm, concat).

`CFGDenoiser(model, positive, negative, cfg)` is the `denoiser(x, sigma)` the samplers call. Each
conditioning entry `[cond, opts]` (ARCHITECTURE.md §1) predicts x0 on its own area of the latent,
weighted by strength × mask; overlapping predictions are averaged with those weights
(Σ out·mult / Σ mult); then `uncond + cfg·(cond − uncond)` (Ho & Salimans 2022).

Choices that match ComfyUI (so images agree):
- Feathering (entries with an explicit area and no mask): an area edge that is not on the latent
  border is ramped over rr = min(8, size // 4) latent pixels (weights 1/rr … rr/rr), height edges
  first, so area prompts blend into their surroundings instead of leaving seams.
- set_area_to_bounds: the area becomes the bounding box of the mask (at least 8×8; an empty mask
  gives the 8×8 box at the origin), then clamped to the latent.
- Every entry with an area gets a twin on the opposite side (positive ↔ negative) with the same
  area, weights and timestep range but the prompt of the smallest opposite entry enclosing it,
  unless one with exactly that area exists (ComfyUI's create_cond_with_same_area_if_none).
- Latent pixels covered by no active entry get weight 1e-37 and therefore a prediction of 0.
- All active cond and uncond entries whose area shape, adm and concat agree go through ONE model
  forward. Different token lengths are made equal by repeating each context to the least common
  multiple of the lengths (repeating a whole context leaves cross-attention unchanged); when the
  lcm would exceed 4× the shorter length the entries run in separate forwards instead.
- cfg == 1 skips the uncond entries entirely and returns the cond prediction, except when a dict is
  passed as `capture=` (CFG++ samplers): it receives the real `uncond_denoised`.
- start_percent/end_percent become sigmas through model.sampling.percent_to_sigma; an entry is
  skipped while sigma > sigma(start) or sigma < sigma(end).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ldm import upscale_x4 as x4
from ldm.image_ops import resize
from ldm.depth import depth_concat

__all__ = ["CFGDenoiser", "FEATHER", "BLANK_INPAINT_LATENT", "blank_inpaint_latent_like"]

FEATHER = 8  # latent pixels of the linear ramp at inner area edges
_EMPTY = 1e-37


@dataclass
class _Entry:
    """One conditioning entry resolved against the latent size."""

    which: int  # 0 = positive, 1 = negative
    context: Tensor  # [1 or B, T, C]
    area: tuple[int, int, int, int]  # h, w, y, x in latent pixels
    mult: Tensor  # [1 or B, 1, h, w] strength × mask × feather
    sigma_start: float
    sigma_end: float
    y: Tensor | None
    concat: Tensor | None  # [B, k, h, w] cropped to the area
    opts: dict  # the entry's options (a twin keeps its source's prompt options)
    has_area: bool = False  # an explicit area (or set_area_to_bounds) rather than the whole latent


def _mask_to_latent(mask: Tensor, h: int, w: int) -> Tensor:
    """Mask [H,W] / [B,H,W] / [B,1,H,W] → [B,1,h,w] float, bilinear-resized to the latent."""
    m = mask.float()
    m = m.reshape((-1, 1) + tuple(m.shape[-2:]))
    if tuple(m.shape[-2:]) != (h, w):
        m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    return m


def _mask_bounds(mask: Tensor) -> tuple[int, int, int, int]:
    """(h, w, y, x) of the bounding box of |mask| != 0 over the batch, at least 8×8; (8, 8, 0, 0) if empty."""
    nz = torch.nonzero(mask.abs().reshape(-1, *mask.shape[-2:]).amax(dim=0) != 0)
    if nz.numel() == 0:
        return 8, 8, 0, 0
    y0, x0 = nz.min(dim=0).values.tolist()
    y1, x1 = nz.max(dim=0).values.tolist()
    return max(8, y1 - y0 + 1), max(8, x1 - x0 + 1), y0, x0


def _feather(mult: Tensor, area: tuple[int, int, int, int], h: int, w: int) -> Tensor:
    """Ramp the weights at area edges inside the latent over rr = min(FEATHER, size // 4) pixels,
    multiplying in ComfyUI's order (top, bottom, left, right; t = 0..rr−1) so floats agree."""
    ah, aw, ay, ax = area
    mult = mult.clone()
    for dim, (size, off, full) in enumerate(((ah, ay, h), (aw, ax, w))):
        rr = min(FEATHER, mult.shape[2 + dim] // 4)
        if off != 0:
            for t in range(rr):
                mult.narrow(2 + dim, t, 1).mul_((1.0 / rr) * (t + 1))
        if size + off < full:
            for t in range(rr):
                mult.narrow(2 + dim, size - 1 - t, 1).mul_((1.0 / rr) * (t + 1))
    return mult


def _resolve_area(opts: dict, h: int, w: int, mask: Tensor | None) -> tuple[tuple[int, int, int, int], bool]:
    """(the entry's area clamped to the latent, whether it has one); set_area_to_bounds → mask box."""
    if mask is not None and opts.get("set_area_to_bounds"):
        ah, aw, ay, ax = _mask_bounds(mask)
    elif opts.get("area") is not None:
        ah, aw, ay, ax = (int(v) for v in opts["area"])
    else:
        return (h, w, 0, 0), False
    ay, ax = min(max(ay, 0), h - 1), min(max(ax, 0), w - 1)
    return (max(1, min(ah, h - ay)), max(1, min(aw, w - ax)), ay, ax), True


def _area_inside(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> bool:
    return (inner[2] >= outer[2] and inner[3] >= outer[3] and inner[0] + inner[2] <= outer[0] + outer[2]
            and inner[1] + inner[3] <= outer[1] + outer[3])


def _twin_source(candidates: list["_Entry"], e: "_Entry") -> "_Entry | None":
    """The smallest entry of the other side whose area encloses e's (an area-less one as fallback),
    None when there is none or one already has exactly e's area."""
    best = None
    for c in candidates:
        if c.has_area:
            if _area_inside(e.area, c.area):
                if best is None or not best.has_area or best.area[0] * best.area[1] > c.area[0] * c.area[1]:
                    best = c
        elif best is None:
            best = c
    if best is None or (best.has_area and best.area == e.area):
        return None
    return best


class CFGDenoiser:
    """denoiser(x, sigma) → guided x0 for a DiffusionModel and positive/negative conditioning."""

    def __init__(self, model: Any, positive: list, negative: list, cfg: float, *,
                 latent_image: Tensor | None = None, denoise_mask: Tensor | None = None) -> None:
        self.model = model
        self.positive = positive or []
        self.negative = negative or []
        self.cfg = float(cfg)
        self.latent_image = latent_image  # model space, for inpaint-UNet concat defaults
        self.denoise_mask = denoise_mask
        self.forwards = 0  # model forwards so far (benchmarks and tests read it)
        self._entries: list[_Entry] | None = None
        self._shape: tuple[int, ...] | None = None

    # ------------------------------------------------------------------ preparation
    def _prepare(self, x: Tensor) -> list[_Entry]:
        if self._entries is not None and self._shape == tuple(x.shape):
            return self._entries
        sides: list[list[_Entry]] = [[], []]
        for which, conds in ((0, self.positive), (1, self.negative)):
            for cond, opts in conds:
                sides[which].append(self._entry(which, cond, opts or {}, x))
        for which in (0, 1):  # positive areas mirrored into the negative side first, then back
            other = sides[1 - which]
            for e in list(sides[which]):
                if e.has_area:
                    src = _twin_source(other, e)
                    if src is not None:
                        other.append(_Entry(1 - which, src.context, e.area, e.mult, e.sigma_start, e.sigma_end,
                                            src.y, self._concat(src.opts, x, e.area), src.opts, True))
        entries = sides[0] + sides[1]
        self._entries, self._shape = entries, tuple(x.shape)
        return entries

    def _entry(self, which: int, cond: Tensor, opts: dict, x: Tensor) -> _Entry:
        b, _, h, w = x.shape
        mask = opts.get("mask")
        mask = _mask_to_latent(mask, h, w).to(x.device) if mask is not None else None
        area, has_area = _resolve_area(opts, h, w, mask)
        ah, aw, ay, ax = area
        strength = float(opts.get("strength", 1.0))
        if mask is not None:
            mult = mask[..., ay:ay + ah, ax:ax + aw] * float(opts.get("mask_strength", 1.0)) * strength
        else:
            mult = torch.ones((1, 1, ah, aw), device=x.device) * strength
            if has_area:
                mult = _feather(mult, area, h, w)
        if mult.shape[0] not in (1, b):
            mult = _to_batch(mult, b)
        sampling = self.model.sampling
        start = sampling.percent_to_sigma(float(opts.get("start_percent", 0.0)))
        end = sampling.percent_to_sigma(float(opts.get("end_percent", 1.0)))
        # ComfyUI's encode_model_conds: width/height default to the latent size × 8, prompt_type says
        # which side (the SDXL refiner's aesthetic score defaults to 2.5 on the negative side).
        adm_opts = {"width": w * 8, "height": h * 8, "prompt_type": ("positive", "negative")[which], **opts}
        y = self.model.encode_adm(adm_opts, b)
        concat = self._concat(opts, x, area)
        return _Entry(which, cond, area, mult, start, end, y, concat, opts, has_area)

    def _concat(self, opts: dict, x: Tensor, area: tuple[int, int, int, int]) -> Tensor | None:
        """Inpainting UNets: [mask, masked-image latent (model space)] at the latent size, cropped.

        As ComfyUI's concat_cond: the image is concat_latent_image (→ model space), else the sampled
        latent; the mask is concat_mask, else the noise mask, resized (bilinear, centre crop) and
        rounded. With no mask at all the mask is ones and the image the latent of a grey picture
        (BLANK_INPAINT_LATENT), whatever the latent holds.
        """
        config = getattr(self.model, "config", None)
        if getattr(config, "kind", "base") == "depth2img":
            ah, aw, ay, ax = area
            depth = opts.get("concat_depth")
            if depth is None:
                return None
            return depth_concat(depth, x.shape[0], x.shape[2], x.shape[3]).to(x.device)[..., ay:ay + ah, ax:ax + aw]
        if getattr(config, "kind", "base") == "x4_upscaler":
            ah, aw, ay, ax = area
            image = x4.concat_image(opts, x.shape[0], x.shape[2], x.shape[3], x.device)
            return image[..., ay:ay + ah, ax:ax + aw]
        if not getattr(config, "inpaint", False):
            return None
        b, _, h, w = x.shape
        image = opts.get("concat_latent_image")
        if image is not None:
            image = self.model.latent_format.process_in(image.float().to(x.device))
        elif self.latent_image is not None:
            image = self.latent_image.to(x.device)
        else:
            image = torch.zeros_like(x)
        if tuple(image.shape[1:]) != tuple(x.shape[1:]):
            image = _upscale_center(image, h, w)
        image = _resize_to_batch(image, b)
        mask = opts.get("concat_mask", self.denoise_mask)
        if mask is None:
            mask = torch.ones(b, 1, h, w, device=x.device)
            image = blank_inpaint_latent_like(image)
        else:
            mask = mask.float().to(x.device)
            if mask.ndim == 4:
                mask = mask[:, :1]
            mask = mask.reshape((-1, 1) + tuple(mask.shape[-2:]))
            if tuple(mask.shape[-2:]) != (h, w):
                mask = _upscale_center(mask, h, w)
            mask = _resize_to_batch(mask.round(), b)
        ah, aw, ay, ax = area
        return torch.cat([mask, image], dim=1)[..., ay:ay + ah, ax:ax + aw]

    # ------------------------------------------------------------------ evaluation
    def __call__(self, x: Tensor, sigma: Tensor, **extra: Any) -> Tensor:
        entries = self._prepare(x)
        s = float(sigma.reshape(-1)[0])
        capture = extra.get("capture")
        skip_uncond = math.isclose(self.cfg, 1.0) and capture is None
        active = [e for e in entries if e.sigma_end <= s <= e.sigma_start and not (skip_uncond and e.which == 1)]
        sums = [torch.zeros_like(x), torch.zeros_like(x)]
        counts = [torch.full_like(x, _EMPTY), torch.full_like(x, _EMPTY)]
        for group in _batches(active):
            preds = self._forward(x, sigma, group)
            for e, pred in zip(group, preds):
                ah, aw, ay, ax = e.area
                sums[e.which][:, :, ay:ay + ah, ax:ax + aw] += pred * e.mult
                counts[e.which][:, :, ay:ay + ah, ax:ax + aw] += e.mult
        cond = sums[0] / counts[0]
        if skip_uncond:
            return cond
        uncond = sums[1] / counts[1]
        if capture is not None:  # CFG++ samplers step with the unguided prediction
            capture["uncond_denoised"] = uncond
        return uncond + (cond - uncond) * self.cfg

    def _forward(self, x: Tensor, sigma: Tensor, group: list[_Entry]) -> list[Tensor]:
        """One model call for a group of entries sharing area shape, adm and concat layout."""
        b = x.shape[0]
        length = math.lcm(*(e.context.shape[1] for e in group))
        xs, ctxs, ys, cats = [], [], [], []
        for e in group:
            ah, aw, ay, ax = e.area
            xs.append(x[:, :, ay:ay + ah, ax:ax + aw])
            ctx = e.context.to(x.device)
            ctxs.append(_to_batch(ctx.repeat(1, length // ctx.shape[1], 1), b))
            if e.y is not None:
                ys.append(_to_batch(e.y.to(x.device), b))
            if e.concat is not None:
                cats.append(e.concat)
        sig = sigma.reshape(-1).expand(b) if sigma.numel() == 1 else sigma.reshape(-1)
        out = self.model.apply_model(
            torch.cat(xs), sig.repeat(len(group)), context=torch.cat(ctxs),
            y=torch.cat(ys) if ys else None, concat=torch.cat(cats) if cats else None)
        self.forwards += 1
        return list(out.chunk(len(group)))


# Per-channel latent (model space) of an all-grey picture: what ComfyUI's blank_inpaint_image_like
# feeds a 4-channel inpainting UNet as the "masked image" when there is no mask.
BLANK_INPAINT_LATENT = (0.8223, -0.6876, 0.6364, 0.1380)


def blank_inpaint_latent_like(latent: Tensor) -> Tensor:
    """Ones shaped like `latent`, channel k multiplied by BLANK_INPAINT_LATENT[k]."""
    blank = torch.ones_like(latent)
    for k, v in enumerate(BLANK_INPAINT_LATENT[:latent.shape[1]]):
        blank[:, k] *= v
    return blank


def _upscale_center(t: Tensor, h: int, w: int) -> Tensor:
    """Bilinear resize to (h, w) after a centre crop to the target aspect (ComfyUI's common_upscale
    with crop="center")."""
    return resize(t, w, h, "bilinear", "center")


def _resize_to_batch(t: Tensor, b: int) -> Tensor:
    """Batch resize by nearest index (ComfyUI's resize_to_batch_size: [a, b] → 4 gives a, a, b, b)."""
    n = t.shape[0]
    if n == b:
        return t
    if b <= 1:
        return t[:b]
    if b < n:
        scale = (n - 1) / (b - 1)
        idx = [min(round(i * scale), n - 1) for i in range(b)]
    else:
        scale = n / b
        idx = [min(math.floor((i + 0.5) * scale), n - 1) for i in range(b)]
    return t[idx]


def _to_batch(t: Tensor, b: int) -> Tensor:
    """Repeat/truncate the first dimension to b (conditioning tensors usually have batch 1)."""
    if t.shape[0] == b:
        return t
    reps = -(-b // t.shape[0])
    return t.repeat((reps,) + (1,) * (t.ndim - 1))[:b]


def _compatible(a: _Entry, b: _Entry) -> bool:
    if a.area[:2] != b.area[:2] or (a.y is None) != (b.y is None) or (a.concat is None) != (b.concat is None):
        return False
    if a.y is not None and a.y.shape[1:] != b.y.shape[1:]:
        return False
    if a.context.shape[2] != b.context.shape[2]:
        return False
    la, lb = a.context.shape[1], b.context.shape[1]
    return math.lcm(la, lb) // min(la, lb) <= 4


def _batches(entries: list[_Entry]) -> list[list[_Entry]]:
    """Greedy grouping of entries that can share one forward (every pair compatible)."""
    groups: list[list[_Entry]] = []
    for e in entries:
        for g in groups:
            if all(_compatible(e, o) for o in g):
                g.append(e)
                break
        else:
            groups.append([e])
    return groups
